"""``tools/bench_page.py``: the benchmark page's results section, written
from the JSON reports of bench runs."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

MACHINE = {"cpus": 2, "usable_cpus": 2, "cpu_model": "Some CPU @ 2.0GHz",
           "memory_mb": 24105, "system": "Linux x86_64", "kernel": "6.1.0",
           "python": "3.11.7", "time": "2026-12-01T04:40:00+0000",
           "versions": {"notifbus": "1.2.3", "oslo.messaging": "18.3.1",
                        "kafka-python": "3.0.12", "eventlet": None,
                        "apache-kafka": "4.4.0"},
           "commit": "0123456789abcdef0123456789abcdef01234567"}
SETTINGS = {"count": 20000, "size": 200, "green": False, "acks": "all",
            "partitions": 2, "broker": "apache-kafka",
            "kafka": "127.0.0.1:9092", "embedded": False}


def _row(name, rate, **extra):
    row = {"row": name, "kind": name.split("-x")[0], "senders": 1,
           "count": 20000, "msgs_per_s": rate, "error": None}
    row.update(extra)
    return row


THREADS = {"settings": SETTINGS, "machine": MACHINE,
           "reference": "oslo-kafka", "rows": [
               _row("oslo-kafka", 10000.0, vs_reference=1.0,
                    cpu_us_per_msg=56.0, driver_cpu_us_per_msg=46.0),
               _row("notifbus-buffered", 24150.0, vs_reference=2.415,
                    cpu_us_per_msg=30.4, driver_cpu_us_per_msg=20.4,
                    consume={"batch": {"mode": "batch", "unique": 20000,
                                       "lost": 0, "duplicates": 0,
                                       "msgs_per_s": 45000.0},
                             "plain": {"mode": "plain", "unique": 19000,
                                       "lost": 1000, "duplicates": 0,
                                       "msgs_per_s": 9000.0,
                                       "note": "nothing new for 20 s"}}),
               {"row": "oslo-rabbit", "kind": "oslo-rabbit", "senders": 1,
                "error": "RabbitMQ at 127.0.0.1:5672 did not answer"}]}
SCALING = {"settings": dict(SETTINGS, partitions=4, replication_factor=3,
                            broker="apache-kafka-cluster",
                            listener="batch"),
           "machine": MACHINE, "reference": "oslo-kafka", "scaling": {
               "producers": [
                   {"row": "notifbus-buffered", "senders": 1,
                    "processes": n, "count": 20000, "sent": 20000,
                    "unacked": 0, "msgs_per_s": rate, "speedup": up,
                    "wall_s": 20000 / rate,
                    "per_process_msgs_per_s": [rate / n] * n}
                   for n, rate, up in ((1, 10000.0, 1.0),
                                       (2, 15000.0, 1.5))],
               "consumers": [
                   {"row": "batch listeners", "listener": "batch",
                    "consumers": n, "partitions": 4, "count": 20000,
                    "unique": 20000, "msgs_per_s": rate, "speedup": up,
                    "join_s": 1.0, "drain_s": 2.5, "lag": 0,
                    "joined_msgs_per_s": rate, "after_join": 19000,
                    "per_member": [20000 // n] * n}
                   for n, rate, up in ((1, 30000.0, 1.0),
                                       (4, 60000.0, 2.0))],
               "fill": {"sent": 20000, "error": None}}}


def _tool():
    spec = importlib.util.spec_from_file_location(
        "bench_page", ROOT / "tools" / "bench_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def reports(tmp_path):
    paths = {}
    for name, report in (("threads", THREADS), ("scaling", SCALING)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(report))
    return paths


def _written(tmp_path, reports, *extra):
    out = tmp_path / "out"
    assert _tool().main(["--threads", str(reports["threads"]), "--green",
                         "", "--scaling", str(reports["scaling"]),
                         "--note", "shared", "--out", str(out),
                         *extra]) == 0
    return out


def test_the_page_says_when_where_and_from_which_commit(tmp_path, reports):
    text = (_written(tmp_path, reports, "--no-plot") /
            "results.inc").read_text()
    assert "Measured on 2026-12-01, from commit ``0123456789ab``." in text
    assert "Machine: Some CPU @ 2.0GHz, 2 cores, shared, 24 GiB RAM; " \
        "Linux x86_64, kernel 6.1.0; Python 3.11.7." in text
    assert "oslo.messaging 18.3.1" in text and "apache-kafka 4.4.0" in text
    assert "eventlet" not in text  # not installed: not said
    assert "scaling.svg" not in text
    assert "local changes" not in text
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(dict(THREADS, machine=dict(
        MACHINE, commit=MACHINE["commit"] + "+changes"))))
    tool = _tool()
    assert "from commit ``0123456789ab`` with local changes." in \
        tool.render(threads=tool.load(changed))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(dict(THREADS, machine=dict(
        MACHINE, commit=None))))
    assert "from commit unknown (notifbus 1.2.3)." in tool.render(
        threads=tool.load(unknown))
    repeated = tmp_path / "repeated.json"
    repeated.write_text(json.dumps(dict(THREADS, settings=dict(
        SETTINGS, repeat=3))))
    assert "threads, median of 3 runs; broker:" in tool.render(
        threads=tool.load(repeated))
    assert "median of" not in tool.render(
        threads=tool.load(reports["threads"]))
    # runs from different commits: each commit with its runs
    assert "from commits ``0123456789ab`` (threads, scaling); " \
        "unknown (notifbus 1.2.3) (greenthreads)." in tool.render(
            threads=tool.load(reports["threads"]),
            green=tool.load(unknown),
            scaling=tool.load(reports["scaling"]))


def test_the_rate_table_keeps_the_ratio_to_the_builtin_driver(tmp_path,
                                                              reports):
    text = (_written(tmp_path, reports, "--no-plot") /
            "results.inc").read_text()
    assert "Threads: 20,000 notifications of 200 bytes per row, acks=all, " \
        "2 partitions, threads; broker: Apache Kafka (started by the " \
        "bench)." in text
    buffered = text.split("   * - notifbus-buffered\n")[1].split("   * -")[0]
    assert buffered.splitlines() == [
        "     - 1", "     - 24,150", "     - 30", "     - 20", "     - \\-",
        "     - \\-", "     - 1000/0", "     - 0/0", "     - partial\\*",
        "     - 45,000", "     - 2.42x"]
    assert "   * - oslo-rabbit\n     - FAILED: RabbitMQ at 127.0.0.1:5672 " \
        "did not answer\n     - \n" in text
    assert "* notifbus-buffered: plain listener: nothing new for 20 s " \
        "(19000 of 20000 received)" in text


def test_the_scaling_tables_give_rates_and_lag(tmp_path, reports):
    text = (_written(tmp_path, reports, "--no-plot") /
            "results.inc").read_text()
    assert "replication factor 3; broker: Apache Kafka, 3 nodes, 3 " \
        "replicas (started by the bench)." in text
    assert ".. list-table:: Producer processes" in text
    assert ".. list-table:: Listeners in one pool" in text
    listeners = text.split("Listeners in one pool")[1]
    header = listeners.split("   * - batch listeners")[0]
    assert "     - drain s\n     - lag\n" in header
    pool = listeners.split("   * - batch listeners\n")[2].split("\n\n")[0]
    assert pool.splitlines()[:4] == ["     - 4", "     - 4",
                                     "     - 60,000", "     - 2.00x"]


def test_the_plot(tmp_path, reports):
    pytest.importorskip("matplotlib")
    out = _written(tmp_path, reports)
    svg = (out / "scaling.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    assert ".. figure:: /bench/scaling.svg" in (
        out / "results.inc").read_text()
    # the same reports give the same file
    assert (_written(tmp_path, reports) / "scaling.svg").read_text() == svg


def test_rates_against_senders_come_from_rows_of_one_kind(tmp_path):
    report = dict(THREADS, rows=THREADS["rows"] + [
        _row("notifbus-confirmed", 1300.0),
        _row("notifbus-confirmed-x64", 6600.0, senders=64)])
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(report))
    tool = _tool()
    assert tool.senders_points(tool.load(path)) == {
        "notifbus-confirmed": [(1, 1300.0), (64, 6600.0)]}


def test_a_file_that_is_no_report(tmp_path):
    path = tmp_path / "other.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="no machine, settings"):
        _tool().load(path)
