"""``notifbus bench`` end to end: a few rows on Apache Kafka (``--kafka``)
and on the embedded broker.

Correctness only (rows present, numbers there, nothing lost); never how
fast anything was, on a shared machine.
"""

import contextlib
import io
import json

import pytest

from notifbus.cmd import main
from notifbus.embedded import free_port
from tests.functional.conftest import KAFKA_BROKERS

pytestmark = pytest.mark.functional

ROWS = ["notifbus-confirmed", "notifbus-buffered",
        "notifbus-rdkafka-buffered", "kafka-python-ack", "noop"]
#: oslo's builtin driver's consumer, which works on Apache Kafka only
APACHE_KAFKA_ROWS = ["oslo-kafka"]


def _number(value):
    return isinstance(value, (int, float)) and value > 0


@pytest.fixture(scope="module", params=KAFKA_BROKERS)
def bench_run(request, tmp_path_factory):
    """One bench run on Apache Kafka (the session's node, ``--kafka``) or
    with its own embedded broker, and a RabbitMQ row pointed at a port
    where nothing listens: it must fail alone."""
    out = tmp_path_factory.mktemp("bench") / "out.json"
    closed = f"rabbit://guest:guest@127.0.0.1:{free_port()}/"
    # the end-to-end latency pass runs on Apache Kafka only: shorter
    broker, rows = ["--e2e-count", "0"], list(ROWS)
    if request.param == "apache-kafka":
        broker = ["--kafka", request.getfixturevalue(
            "apache_kafka").bootstrap_servers]
        rows += APACHE_KAFKA_ROWS
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        code = main.main(["bench", "--count", "300", "--rows",
                          ",".join(rows + ["oslo-rabbit"]),
                          "--rabbit", closed, "--consume-wait", "15",
                          "--json", str(out), *broker])
    return {"broker": request.param, "code": code, "rows": rows,
            "stdout": stdout.getvalue(),
            "stderr": stderr.getvalue(),
            "report": json.loads(out.read_text())}


def test_every_row_is_reported_with_numbers(bench_run):
    report = bench_run["report"]
    by_name = {row["row"]: row for row in report["rows"]}
    assert list(by_name) == bench_run["rows"] + ["oslo-rabbit"]
    for name in bench_run["rows"]:
        row = by_name[name]
        assert row["error"] is None, row
        assert row["sent"] == 300
        assert _number(row["msgs_per_s"]) and _number(row["mb_per_s"])
        assert row["latency"]["p50_ms"] is not None
        assert row["latency"]["p99_ms"] >= row["latency"]["p50_ms"]
        assert _number(row["peak_rss_mb"])
        assert _number(row["cpu_us_per_msg"])
    assert by_name["noop"]["driver_cpu_us_per_msg"] is None
    assert by_name["notifbus-confirmed"]["driver_cpu_us_per_msg"] == \
        pytest.approx(by_name["notifbus-confirmed"]["cpu_us_per_msg"] -
                      by_name["noop"]["cpu_us_per_msg"])
    assert report["settings"]["count"] == 300
    assert report["settings"]["embedded"] is (bench_run["broker"] == "tansu")


def test_notifbus_rows_lose_nothing(bench_run):
    by_name = {row["row"]: row for row in bench_run["report"]["rows"]}
    for name in ("notifbus-confirmed", "notifbus-buffered",
                 "notifbus-rdkafka-buffered"):
        consume = by_name[name]["consume"]
        if bench_run["broker"] == "tansu":  # --e2e-count 0
            assert set(consume) == {"plain", "batch"}
        else:
            assert set(consume) == {"plain", "batch", "e2e"}
        for found in consume.values():
            assert found["unique"] == 300, (name, found)
            assert found["lost"] == 0 and found["duplicates"] == 0
            assert _number(found["msgs_per_s"])
        if "e2e" not in consume:
            continue
        latency = consume["e2e"]["latency"]
        assert 0 < latency["p50_ms"] <= latency["p99_ms"], (name, latency)
        assert consume["plain"]["latency"] is None
    assert by_name["kafka-python-ack"]["consume"] is None


def test_the_builtin_driver_s_listeners_receive_on_apache_kafka(bench_run):
    if bench_run["broker"] != "apache-kafka":
        pytest.skip("oslo's kafka:// consumer does not receive on Tansu")
    row = {row["row"]: row for row in bench_run["report"]["rows"]}[
        "oslo-kafka"]
    assert row["error"] is None, row
    assert set(row["consume"]) == {"plain", "batch", "e2e"}
    for found in row["consume"].values():
        assert found["unique"] == 300 and found["lost"] == 0, found
        assert found["note"] is None and found["end_to_end"]
    assert row["consume"]["e2e"]["latency"]["p50_ms"] > 0


def test_a_failing_row_is_shown_and_the_bench_goes_on(bench_run):
    rabbit = bench_run["report"]["rows"][-1]
    assert "RabbitMQ" in rabbit["error"]
    assert "did not answer" in rabbit["error"]
    assert bench_run["code"] == 1
    line = next(line for line in bench_run["stdout"].splitlines()
                if line.startswith("oslo-rabbit "))
    assert "FAILED: ConnectionError: RabbitMQ" in line


def test_the_table_and_the_progress_are_printed(bench_run):
    out = bench_run["stdout"]
    assert "msgs/s" in out and "vs oslo-kafka" in out
    for name in ROWS:
        assert any(line.startswith(name + " ")
                   for line in out.splitlines()), name
    ratios = {row["row"]: row["vs_reference"]
              for row in bench_run["report"]["rows"]}
    if "oslo-kafka" in bench_run["rows"]:
        assert ratios["oslo-kafka"] == 1.0
        assert _number(ratios["notifbus-confirmed"])
    else:  # no oslo-kafka row in this run: no ratio to it
        assert all(ratio is None for ratio in ratios.values())
    err = bench_run["stderr"]
    if bench_run["broker"] == "tansu":
        assert "embedded broker: Tansu at 127.0.0.1:" in err
    else:
        assert "embedded broker" not in err
    assert f"[1/{len(bench_run['rows']) + 1}] notifbus-confirmed: " \
        f"publish" in err


def test_a_row_is_stopped_at_its_time_limit(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = main.main(["bench", "--rows", "noop", "--count", "100000000",
                      "--row-timeout", "6", "--json", str(out)])
    row = json.loads(out.read_text())["rows"][0]
    assert code == 1
    assert "time" in row["error"]
    assert row["sent"] < 100000000
    assert "noop" in capsys.readouterr().out


def test_unknown_row_is_refused(capsys):
    assert main.main(["bench", "--rows", "kafka"]) == 2
    assert "unknown row 'kafka'" in capsys.readouterr().err
