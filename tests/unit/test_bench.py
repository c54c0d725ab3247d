"""The bench's helpers: percentiles, ratios, rows, the table."""

import io
import json
import subprocess
import sys
import time

import pytest

from notifbus.bench import (
    clients,
    listeners,
    progress,
    rowrun,
    rows,
    senders,
    stats,
    table,
)
from notifbus.bench.results import ConsumeResult, RowResult
from notifbus.cmd import main


def test_percentile_interpolates_between_ranks():
    values = [4, 1, 3, 2, 5]
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 50) == 3
    assert stats.percentile(values, 100) == 5
    assert stats.percentile(values, 25) == 2
    assert stats.percentile([1, 2], 50) == 1.5
    assert stats.percentile(range(1, 101), 99) == pytest.approx(99.01)


def test_percentile_of_nothing_and_out_of_range():
    assert stats.percentile([], 50) is None
    assert stats.percentile([7], 99) == 7
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_latency_summary_in_milliseconds():
    summary = stats.latency_summary_ms([0.001, 0.002, 0.003])
    assert summary["p50_ms"] == pytest.approx(2.0)
    assert summary["max_ms"] == pytest.approx(3.0)
    assert stats.latency_summary_ms([]) == {
        "p50_ms": None, "p99_ms": None, "max_ms": None}


def test_rate_and_ratio_are_none_when_not_measurable():
    assert stats.rate(100, 2.0) == 50.0
    assert stats.rate(0, 2.0) is None
    assert stats.rate(100, 0) is None
    assert stats.ratio(50.0, 100.0) == 0.5
    assert stats.ratio(None, 100.0) is None
    assert stats.ratio(50.0, None) is None
    assert stats.ratio(50.0, 0) is None


def test_ratios_against_the_reference_and_the_one_sender_row():
    results = [RowResult.from_json(result) for result in [
        {"kind": "oslo-kafka", "senders": 1, "msgs_per_s": 1000.0},
        {"kind": "notifbus-confirmed", "senders": 1, "msgs_per_s": 250.0},
        {"kind": "notifbus-confirmed", "senders": 64, "msgs_per_s": 750.0},
        {"kind": "oslo-rabbit", "senders": 1, "error": "down"},
    ]]
    stats.add_ratios(results)
    assert [r.vs_reference for r in results] == [1.0, 0.25, 0.75, None]
    assert [r.vs_one_sender for r in results] == [None, None, 3.0, None]


def test_ratios_without_a_reference_row():
    results = [RowResult.from_json(
        {"kind": "noop", "senders": 1, "msgs_per_s": 5.0})]
    stats.add_ratios(results)
    assert results[0].vs_reference is None


def test_row_result_gives_back_the_json_it_read_with_the_ratios():
    found = {"mode": "plain", "pool": "p", "received": 3, "unique": 3,
             "lost": 0, "duplicates": 0, "start_s": 0.1, "seconds": 1.0,
             "msgs_per_s": 3.0, "end_to_end": False, "note": None,
             "latency": None}
    e2e = dict(found, end_to_end=True,
               latency={"p50_ms": 4.0, "p99_ms": 9.0, "max_ms": 9.5})
    child = {"row": "r", "kind": "notifbus-confirmed", "senders": 1,
             "green": False, "count": 3, "size": 200, "sent": 3,
             "error": None, "consume": {"plain": found, "e2e": e2e},
             "config": {"a": 1},
             "publish_s": 1.0, "finish_s": 0.0, "msgs_per_s": 3.0,
             "mb_per_s": None,
             "latency": {"p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0},
             "send_failures": 0, "peak_rss_mb": 50.0, "cpu_us_per_msg": 80.0,
             "peak_rss_total_mb": 51.0, "wall_s": 2.5}
    failed = {"row": "f", "kind": "noop", "senders": 2, "green": False,
              "count": 3, "size": 200, "sent": 0, "consume": None,
              "error": "timed out"}
    results = [RowResult.from_json(child), RowResult.from_json(failed)]
    assert results[0].consume["plain"].unique == 3
    assert results[0].latency.p99_ms == 2.0
    assert results[0].consume["e2e"].latency.p50_ms == 4.0
    stats.add_ratios(results)
    ratios = {"vs_reference": None, "vs_one_sender": None,
              "driver_cpu_us_per_msg": None}
    assert [json.dumps(r.to_json()) for r in results] == [
        json.dumps(dict(child, **ratios)), json.dumps(dict(failed, **ratios))]


def _cpu_row(kind, senders, cpu):
    return RowResult.from_json({"row": kind, "kind": kind,
                                "senders": senders, "cpu_us_per_msg": cpu})


def test_driver_cpu_is_the_row_s_minus_the_noop_row_s():
    results = stats.add_ratios([
        _cpu_row("noop", 1, 20.0), _cpu_row("noop", 64, 30.0),
        _cpu_row("oslo-kafka", 1, 120.0),
        _cpu_row("notifbus-confirmed", 64, 100.0),
        # no noop row with 8 senders: the first noop row's
        _cpu_row("notifbus-buffered", 8, 50.0),
        # not through oslo's Notifier, or not measured
        _cpu_row("kafka-python-ack", 1, 300.0),
        _cpu_row("notifbus-rdkafka-buffered", 1, None)])
    assert [r.driver_cpu_us_per_msg for r in results] == [
        None, None, 100.0, 70.0, 30.0, None, None]
    alone = stats.add_ratios([_cpu_row("oslo-kafka", 1, 120.0)])
    assert alone[0].driver_cpu_us_per_msg is None


def test_a_row_measures_its_cpu_per_notification():
    spec = {"row": {"name": "noop", "kind": "noop", "senders": 2,
                    "kafka": False, "rabbit": False, "consume": None},
            "count": 2000, "size": 200, "budget_s": 60, "topic": "t"}
    result = rowrun.run(spec, progress.Reporter(io.StringIO()))
    assert result["error"] is None and result["sent"] == 2000
    # oslo's Notifier costs microseconds per notification, not nothing
    assert 0 < result["cpu_us_per_msg"] < 100000
    assert result["consume"] is None


def test_stamped_payloads_carry_their_send_time():
    plain = clients.payload_maker(200)(5)
    assert "sent_at" not in plain
    before = time.time()
    stamped = clients.payload_maker(200, stamped=True)(5)
    assert before <= stamped["sent_at"] <= time.time()
    assert abs(len(json.dumps(stamped)) - 200) <= 3


def test_the_collector_times_send_to_dispatch_and_sees_probes():
    collector = listeners.Collector(3)
    collector.add([{"seq": 0, "sent_at": time.time() - 0.25},
                   {"seq": 1}, {"seq": 7, "sent_at": time.time()}])
    assert not collector.probed.is_set()
    assert collector.seen == {0, 1}
    assert len(collector.delays_s) == 1
    assert 0.25 <= collector.delays_s[0] < 5
    collector.add([{"seq": -1, "sent_at": time.time()}])
    assert collector.probed.is_set() and collector.seen == {0, 1}
    assert len(collector.delays_s) == 1


def test_a_live_read_probes_until_the_listener_receives(monkeypatch):
    # a listener that only receives what is sent once it was assigned:
    # the third probe, then the row's notifications
    class Server:
        def start(self):
            pass

        def stop(self):
            pass

        def wait(self):
            pass

    collectors = []

    def new_listener(transport, topic, mode, collector, pool):
        collectors.append(collector)
        return Server()

    monkeypatch.setattr(listeners, "new_listener", new_listener)
    monkeypatch.setattr(listeners, "PROBE_EVERY_S", 0.01)
    probes = []

    def probe():
        probes.append(1)
        if len(probes) >= 3:
            time.sleep(0.3)  # a slow join is not counted in the rate
            collectors[0].add([{"seq": -1}])

    def publish():
        assert len(probes) == 3  # not before the listener received
        collectors[0].add([{"seq": seq, "sent_at": time.time() - 0.01}
                           for seq in range(4)])

    found = listeners.read_back(None, "t", "plain", 4, "p", wait_s=5,
                                deadline=time.monotonic() + 30,
                                publish=publish, probe=probe)
    assert found["unique"] == 4 and found["lost"] == 0
    assert found["note"] is None and found["end_to_end"]
    assert found["latency"]["p50_ms"] >= 10
    assert found["seconds"] < 0.3
    never = listeners.read_back(None, "t", "plain", 1, "p", wait_s=0.05,
                                deadline=time.monotonic() + 30,
                                publish=lambda: None, probe=lambda: None)
    assert never["note"].startswith("no probe received within 0 s")
    assert never["latency"] is None


def test_probes_run_while_the_listener_starts(monkeypatch):
    # oslo's kafka:// listener: start() polls until something arrives
    collectors = []

    class Server:
        def start(self):
            assert collectors[0].probed.wait(5)

        def stop(self):
            pass

        def wait(self):
            pass

    def new_listener(transport, topic, mode, collector, pool):
        collectors.append(collector)
        return Server()

    monkeypatch.setattr(listeners, "new_listener", new_listener)
    monkeypatch.setattr(listeners, "PROBE_EVERY_S", 0.01)

    def publish():
        collectors[0].add([{"seq": 0}])

    began = time.monotonic()
    found = listeners.read_back(
        None, "t", "plain", 1, "p", wait_s=5, deadline=began + 30,
        publish=publish, probe=lambda: collectors[0].add([{"seq": -1}]))
    assert found["unique"] == 1 and found["note"] is None
    assert time.monotonic() - began < 2

    def failing():
        raise ConnectionError("broker gone")

    found = listeners.read_back(None, "t", "plain", 1, "p", wait_s=0.1,
                                deadline=began + 30, probe=failing)
    assert found["note"].startswith(
        "probing failed: ConnectionError: broker gone")


def test_blocks_cover_every_sequence_number_once():
    ranges = senders.blocks(10, 3)
    assert [len(r) for r in ranges] == [4, 3, 3]
    assert [seq for r in ranges for seq in r] == list(range(10))
    assert [len(r) for r in senders.blocks(2, 4)] == [1, 1, 0, 0]


def test_senders_time_every_send_and_stop_at_the_first_error():
    seen = []
    outcome = senders.run(seen.append, 50, 4)
    assert sorted(seen) == list(range(50))
    assert outcome.sent == 50 and len(outcome.latencies_s) == 50
    assert outcome.error is None

    def failing(seq):
        if seq == 3:
            raise RuntimeError("broker gone")

    outcome = senders.run(failing, 10, 1)
    assert outcome.sent == 3
    assert outcome.error == "RuntimeError: broker gone"


def test_default_rows():
    names = [row.name for row in rows.default_rows()]
    assert names[:3] == ["noop", "oslo-kafka", "oslo-rabbit"]
    assert "notifbus-confirmed" in names
    assert "notifbus-confirmed-x64" in names
    assert "notifbus-buffered" in names
    assert {"notifbus-rdkafka-confirmed", "notifbus-rdkafka-confirmed-x64",
            "notifbus-rdkafka-buffered"} <= set(names)
    assert len(names) == len(set(names))
    with_8 = [row.name for row in rows.default_rows(8)]
    assert {"notifbus-confirmed", "notifbus-confirmed-x8",
            "notifbus-confirmed-x64", "notifbus-buffered",
            "oslo-kafka-x8", "kafka-python-ack-x8"} <= set(with_8)


def test_parse_rows():
    parsed = rows.parse_rows("notifbus-confirmed, notifbus-confirmed-x64,"
                             "kafka-python-ack", senders=2)
    assert [(r.kind, r.senders) for r in parsed] == [
        ("notifbus-confirmed", 2), ("notifbus-confirmed", 64),
        ("kafka-python-ack", 2)]
    assert [r.name for r in rows.parse_rows("noop,noop-x1")] == ["noop"]
    assert [(r.kind, r.senders) for r in rows.parse_rows(
        "notifbus-rdkafka-buffered,notifbus-rdkafka-confirmed-x8")] == [
        ("notifbus-rdkafka-buffered", 1), ("notifbus-rdkafka-confirmed", 8)]
    with pytest.raises(ValueError, match="unknown row 'kafka'"):
        rows.parse_rows("kafka")
    with pytest.raises(ValueError):
        rows.parse_rows(" , ")
    with pytest.raises(ValueError):
        rows.parse_rows("noop-x0")


def test_payload_has_the_requested_size():
    make = clients.payload_maker(200)
    for seq in (-1, 0, 7, 12345):
        assert len(json.dumps(make(seq))) == 200
    assert len(json.dumps(clients.payload_maker(5)(3))) > 5  # at least
    assert b"oslo.message" in clients.encoded_notification(200)


def test_progress_lines_round_trip():
    stream = io.StringIO()
    reporter = progress.Reporter(stream)
    reporter.phase("publish", total=10, done=lambda: 4)
    reporter.emit()  # unchanged: not written twice
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert progress.parse(lines[0]) == {"phase": "publish", "done": 4,
                                        "total": 10}
    assert progress.parse("WARNING kafka: something") is None


def _result(name, kind, rate, **extra):
    result = {"row": name, "kind": kind, "senders": 1, "count": 300,
              "msgs_per_s": rate, "mb_per_s": rate and rate * 200 / 1e6,
              "latency": {"p50_ms": 0.5, "p99_ms": 12.5},
              "peak_rss_mb": 60.0, "consume": None}
    result.update(extra)
    return RowResult.from_json(result)


def test_table_rows_failures_and_notes():
    found = {"unique": 300, "lost": 0, "duplicates": 0,
             "msgs_per_s": 1500.0, "note": None}
    none = {"unique": 0, "lost": 300, "duplicates": 0, "msgs_per_s": None,
            "note": "no delivery within 20 s", "end_to_end": True}
    results = stats.add_ratios([
        _result("oslo-kafka", "oslo-kafka", 4000.0,
                consume={"plain": none, "batch": none}),
        _result("notifbus-confirmed", "notifbus-confirmed", 1000.0,
                consume={"plain": found, "batch": dict(found, lost=2)}),
        _result("oslo-rabbit", "oslo-rabbit", None,
                error="ConnectionError: RabbitMQ did not answer"),
    ])
    text = table.format_table(results, title="a title")
    lines = text.splitlines()
    assert lines[0] == "a title"
    header = lines[2]
    for heading in table.COLUMNS:
        assert heading in header
    confirmed = next(line for line in lines
                     if line.startswith("notifbus-confirmed "))
    assert "1,000" in confirmed and "0.25x" in confirmed
    assert "0/2" in confirmed and "1,500" in confirmed
    kafka = next(line for line in lines if line.startswith("oslo-kafka "))
    assert "none in 20s" in kafka and "1.00x" in kafka
    rabbit = next(line for line in lines if line.startswith("oslo-rabbit "))
    assert "FAILED: ConnectionError: RabbitMQ did not answer" in rabbit
    assert "oslo-kafka: plain listener: no delivery within 20 s (0 of 300 " \
           "received)" in text
    # every data line is as wide as the header: the columns line up
    assert all(len(line) == len(header) for line in lines[4:6])


def test_table_shows_cpu_and_end_to_end_latency():
    e2e = {"unique": 300, "lost": 0, "duplicates": 0, "msgs_per_s": 500.0,
           "end_to_end": True, "note": None,
           "latency": {"p50_ms": 3.25, "p99_ms": 41.5, "max_ms": 60.0}}
    results = stats.add_ratios([
        _result("noop", "noop", 9000.0, cpu_us_per_msg=20.0),
        _result("notifbus-buffered", "notifbus-buffered", 4000.0,
                cpu_us_per_msg=95.0, consume={"e2e": e2e})])
    lines = table.format_table(results).splitlines()
    by_heading = dict(zip(["row"] + list(table.COLUMNS), lines[3].split()))
    assert by_heading["row"] == "notifbus-buffered"
    assert by_heading["CPU us"] == "95" and by_heading["drv us"] == "75"
    assert by_heading["e2e p50"] == "3.25"
    assert by_heading["e2e p99"] == "41.5"
    noop = dict(zip(["row"] + list(table.COLUMNS), lines[2].split()))
    assert noop["CPU us"] == "20" and noop["drv us"] == "-"
    assert noop["e2e p50"] == "-"
    # the e2e pass is end to end by design: no note about it
    assert "e2e listener" not in "\n".join(lines)


def test_table_cells():
    assert table.number(None) == "-"
    assert table.number(12345.6) == "12,346"
    assert table.times(0.123) == "0.12x"
    assert table.short_ms(0.1234) == "0.12"
    assert table.short_ms(123.44) == "123.4"
    assert table.consume_cell(None) == "-"
    assert table.consume_cell(ConsumeResult.from_json(
        {"msgs_per_s": 10.0, "note": "x"})) == "10*"
    assert table.consume_cell(ConsumeResult.from_json(
        {"msgs_per_s": 0.1, "note": "nothing new", "unique": 1,
         "lost": 299})) == "partial*"


def test_rdkafka_rows_publish_through_notifbus_rdkafka():
    spec = {"row": {"kind": "notifbus-rdkafka-buffered", "senders": 1},
            "bootstrap": "127.0.0.1:9092", "partitions": 2, "acks": "all",
            "linger_ms": 2.0, "size": 200, "topic": "t", "count": 1}
    target = clients.make(spec)
    url = target.url()
    assert url.startswith("notifbus+rdkafka://127.0.0.1:9092/?")
    assert "delivery=buffered" in url and "producer_linger_ms=2.0" in url
    target.close()
    spec["row"]["kind"] = "notifbus-confirmed"
    plain = clients.make(spec)
    assert plain.url().startswith("notifbus+kafka://")
    assert "producer_linger_ms" not in plain.url()


def test_other_commands_do_not_import_the_bench():
    # the bench is loaded by `notifbus bench` only, not on every host that
    # runs another command
    code = ("import sys\n"
            "from notifbus.cmd import main\n"
            "try:\n"
            "    main.main(['topics', '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(sorted(m for m in sys.modules\n"
            "             if m.split('.')[:2] == ['notifbus', 'bench']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=60, check=True)
    assert "usage: notifbus topics" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"


def _repeated(monkeypatch, rates):
    """runner.run_rows over two rows and three rounds, each run of a
    child answering the next of ``rates`` (``None``: a failed run)."""
    from notifbus.bench import runner

    answers = iter(rates)
    topics = []

    def run_child(spec, row_timeout, display, debug=False):
        topics.append(spec["topic"])
        rate = next(answers)
        row = {"row": spec["row"]["name"], "kind": spec["row"]["kind"]}
        if rate is None:
            return dict(row, error="the row's process exited with code 1")
        return dict(row, msgs_per_s=rate)

    monkeypatch.setattr(runner, "run_child", run_child)
    chosen = runner.run_rows(
        rows.parse_rows("noop,notifbus-buffered"),
        {"run_id": "bench-r"}, 60.0, progress.Display(2 * 3, io.StringIO()),
        repeat=3)
    return chosen, topics


def test_repeated_rows_report_their_median_run(monkeypatch):
    # rounds: (noop, buffered) x 3, each round on topics of its own
    chosen, topics = _repeated(monkeypatch, [90.0, 20.0, 70.0, 35.0,
                                             110.0, 25.0])
    assert topics == ["bench-r-noop", "bench-r-notifbus-buffered",
                      "bench-r-noop-2", "bench-r-notifbus-buffered-2",
                      "bench-r-noop-3", "bench-r-notifbus-buffered-3"]
    assert [r.msgs_per_s for r in chosen] == [90.0, 25.0]
    assert chosen[1].runs_msgs_per_s == [20.0, 35.0, 25.0]
    assert chosen[1].to_json()["runs_msgs_per_s"] == [20.0, 35.0, 25.0]
    assert "notifbus-buffered: runs at 20, 35, 25 msgs/s" in \
        table.notes(chosen)


def test_a_repeated_row_with_a_failed_run_is_reported_failed(monkeypatch):
    chosen, _ = _repeated(monkeypatch, [90.0, 20.0, 70.0, None,
                                        110.0, 25.0])
    assert chosen[0].error is None
    assert chosen[1].error == "the row's process exited with code 1"
    assert chosen[1].runs_msgs_per_s == [20.0, None, 25.0]
    assert "notifbus-buffered: runs at 20, failed, 25 msgs/s" in \
        table.notes(chosen)


@pytest.mark.parametrize("argv, message", [
    (["--broker", "tansu", "--kafka", "127.0.0.1:1"], "give one of them"),
    (["--repeat", "3", "--memory", "--stall", "0"], "not with --memory"),
    (["--repeat", "2", "--producers", "1,2"], "not with --memory"),
    (["--memory", "--broker", "apache-kafka"], "use --stall 0"),
    (["--memory", "--broker", "apache-kafka-cluster"],
     "with --broker apache-kafka-cluster, use --stall 0"),
])
def test_broker_options_that_do_not_fit(argv, message, capsys):
    assert main.main(["bench"] + argv) == 2
    assert message in capsys.readouterr().err


def test_apache_kafka_without_its_jars(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOTIFBUS_KAFKA_LIBS", str(tmp_path))
    assert main.main(["bench", "--broker", "apache-kafka", "--rows",
                      "kafka-python-ack"]) == 2
    err = capsys.readouterr().err
    assert "no Apache Kafka jars" in err and "make kafka" in err


class FakeCluster:
    made = []

    def __init__(self, nodes, heap_mb, broker_config):
        self.nodes = nodes
        self.broker_config = broker_config
        self.libs = "/jars"
        self.bootstrap_servers = "127.0.0.1:19092"
        self.running = False
        FakeCluster.made.append(self)

    def start(self):
        self.running = True
        return self

    def stop(self):
        self.running = False


def _bench_specs(monkeypatch, argv):
    from notifbus.bench import command, runner
    from notifbus.testing import kafka

    FakeCluster.made = []
    monkeypatch.setattr(kafka, "KafkaCluster", FakeCluster)
    specs = []

    def run_rows(rows, base, row_timeout, display, debug=False, repeat=1):
        specs.append(dict(base, running=[c.running
                                         for c in FakeCluster.made]))
        return [RowResult.from_json({"row": r.name, "kind": r.kind,
                                     "msgs_per_s": 10.0}) for r in rows]

    monkeypatch.setattr(runner, "run_rows", run_rows)
    assert command.run(main.build_parser().parse_args(
        ["bench", "--rows", "notifbus-confirmed"] + argv)) == 0
    return specs[0]


def test_the_bench_starts_apache_kafka_itself(monkeypatch, capsys):
    spec = _bench_specs(monkeypatch, ["--broker", "apache-kafka"])
    cluster, = FakeCluster.made
    assert spec["running"] == [True] and not cluster.running
    assert cluster.nodes == 1
    assert cluster.broker_config["group.min.session.timeout.ms"] <= 1000
    assert spec["bootstrap"] == "127.0.0.1:19092"
    assert spec["broker_quirks"] == "none"
    assert spec["session_timeout_ms"] == 1000
    out = capsys.readouterr()
    assert "broker: Apache Kafka (started by the bench) at 127.0.0.1:19092" \
        in out.out
    assert "Apache Kafka 4.4.0 at 127.0.0.1:19092" in out.err
    # a broker of one's own keeps the library's session timeout, which a
    # broker's default group.min.session.timeout.ms (6 s) accepts
    spec = _bench_specs(monkeypatch, ["--kafka", "127.0.0.1:9"])
    assert FakeCluster.made == [] and spec["bootstrap"] == "127.0.0.1:9"
    assert spec["session_timeout_ms"] is None
    assert spec["broker_quirks"] == "none"


def test_the_bench_starts_a_cluster_of_three_nodes(monkeypatch, capsys):
    spec = _bench_specs(monkeypatch, ["--broker", "apache-kafka-cluster"])
    cluster, = FakeCluster.made
    assert spec["running"] == [True] and not cluster.running
    assert cluster.nodes == 3
    assert cluster.broker_config["default.replication.factor"] == 3
    assert cluster.broker_config["min.insync.replicas"] == 2
    assert cluster.broker_config["group.min.session.timeout.ms"] <= 1000
    assert spec["replication_factor"] == 3
    assert spec["broker_quirks"] == "none"
    out = capsys.readouterr()
    assert "broker: Apache Kafka, 3 nodes, 3 replicas (started by the " \
        "bench) at 127.0.0.1:19092" in out.out
    assert "(3 nodes, jars in /jars)" in out.err
    assert _bench_specs(monkeypatch, ["--broker", "apache-kafka"])[
        "replication_factor"] == 1


def test_the_bench_creates_topics_with_the_replication_factor(monkeypatch):
    created = []
    monkeypatch.setattr(clients, "create_topic",
                        lambda *args: created.append(args))
    spec = {"row": {"kind": "kafka-python-ack", "senders": 1,
                    "kafka": True},
            "bootstrap": "127.0.0.1:9092", "partitions": 4, "size": 200,
            "topic": "t", "count": 1}
    clients.make(dict(spec, replication_factor=3)).prepare()
    clients.make(spec).prepare()
    assert created == [("127.0.0.1:9092", "t.info", 4, 3),
                       ("127.0.0.1:9092", "t.info", 4, 1)]


def test_the_session_timeout_reaches_the_notifbus_urls():
    spec = {"row": {"kind": "notifbus-confirmed", "senders": 1},
            "bootstrap": "127.0.0.1:9092", "partitions": 2, "acks": "all",
            "linger_ms": 0, "size": 200, "topic": "t", "count": 1}
    assert "session_timeout_ms" not in clients.make(spec).url()
    url = clients.make(dict(spec, session_timeout_ms=1000)).url()
    assert "session_timeout_ms=1000&heartbeat_interval_ms=100" in url


def test_a_failed_e2e_pass_keeps_what_the_listeners_read(monkeypatch):
    class Transport:
        def cleanup(self):
            pass

    class Target:
        topic = "t"

        def listener_transport(self):
            return Transport()

    def end_to_end(spec, reporter, deadline):
        raise ConnectionError("broker gone")

    monkeypatch.setattr(listeners, "read_back",
                        lambda transport, topic, mode, *args, **kwargs:
                        {"mode": mode, "unique": 5})
    monkeypatch.setattr(rowrun, "_end_to_end", end_to_end)
    spec = {"count": 5, "consume_wait_s": 1,
            "row": {"kind": "notifbus-confirmed", "consume": "drain",
                    "kafka": True}}
    found = rowrun._read_back(spec, Target(), progress.Reporter(
        io.StringIO()), time.monotonic() + 10)
    assert found["plain"]["unique"] == found["batch"]["unique"] == 5
    assert found["e2e"]["note"] == "failed: ConnectionError: broker gone"
    assert found["e2e"]["lost"] == 5
    # --e2e-count 0: no such pass
    found = rowrun._read_back(dict(spec, e2e_count=0), Target(),
                              progress.Reporter(io.StringIO()),
                              time.monotonic() + 10)
    assert set(found) == {"plain", "batch"}
