"""The bench's memory and scaling runs: parsing, aggregation, tables."""

import re
import threading

import pytest

from notifbus.bench import command, memory, rows, scaling, table
from notifbus.bench.results import (
    ConsumerMember,
    ConsumerPool,
    MemoryResult,
    MemoryRuns,
    ProducerGroup,
    ProducerMember,
    Report,
    ScalingRuns,
)
from notifbus.cmd import bench, main


def test_parse_counts():
    assert scaling.parse_counts("1,2,4") == [1, 2, 4]
    assert scaling.parse_counts(" 4, 1,1,") == [1, 4]
    for bad in ("0", "1,x", " , ", "-2"):
        with pytest.raises(ValueError, match="--producers"):
            scaling.parse_counts(bad)
    with pytest.raises(ValueError, match="--consumers"):
        scaling.parse_counts("two", "--consumers")


def test_shares_cover_the_count_once():
    assert scaling.shares(10, 3) == [(0, 4), (4, 3), (7, 3)]
    assert scaling.shares(5, 1) == [(0, 5)]
    assert sum(n for _, n in scaling.shares(1000001, 4)) == 1000001


def test_ranges_and_their_union():
    assert scaling.to_ranges([5, 1, 2, 3, 9, 10]) == [[1, 3], [5, 5],
                                                      [9, 10]]
    assert scaling.to_ranges([]) == []
    assert scaling.union_size([[[0, 9]], [[5, 14]], [[20, 20]]]) == 16
    assert scaling.union_size([[[0, 9]], [[2, 3]]]) == 10
    assert scaling.union_size([]) == 0


def test_aggregate_producers_from_common_start_to_last_ack():
    members = [ProducerMember.from_json(m) for m in [
        {"sent": 500, "send_failures": 0, "started_at": 100.0,
         "ended_at": 101.0, "msgs_per_s": 500.0, "error": None},
        {"sent": 500, "send_failures": 2, "started_at": 100.5,
         "ended_at": 102.0, "msgs_per_s": 333.3, "error": None},
    ]]
    found = scaling.aggregate_producers(members, 1000)
    assert found.processes == 2
    assert found.wall_s == pytest.approx(2.0)
    assert found.acked == 998 and found.unacked == 2
    assert found.msgs_per_s == pytest.approx(499.0)
    assert found.per_process_msgs_per_s == [500.0, 333.3]
    assert found.error is None
    broken = scaling.aggregate_producers(
        [ProducerMember.from_json({"member": 0, "error": "timed out",
                                   "sent": 0})], 10)
    assert broken.msgs_per_s is None and broken.unacked == 0
    assert broken.error == "timed out"


def test_aggregate_consumers_counts_the_union():
    members = [
        {"received": 600, "unique": 600, "ranges": [[0, 599]],
         "go_at": 10.0, "started_at": 11.0, "last_at": 12.0},
        {"received": 500, "unique": 500, "ranges": [[500, 999]],
         "go_at": 10.0, "started_at": 11.5, "last_at": 13.0},
    ]
    found = scaling.aggregate_consumers(_consumers(members), 1000)
    assert found.unique == 1000 and found.lost == 0
    assert found.duplicates == 100
    assert found.seconds == pytest.approx(2.0)
    assert found.msgs_per_s == pytest.approx(500.0)
    assert found.join_s == pytest.approx(1.5)
    assert found.drain_s == pytest.approx(3.0)
    assert found.per_member == [600, 500]
    early = _consumers([dict(members[0], first_at=10.5), members[1]])
    assert scaling.aggregate_consumers(early, 1000).seconds == \
        pytest.approx(2.5)
    missing = scaling.aggregate_consumers(_consumers(members[:1]), 1000)
    assert missing.lost == 400


def _consumers(members):
    return [ConsumerMember.from_json(member) for member in members]


def test_steady_rate_counts_what_came_once_all_had_joined():
    # buckets of 0.5 s: [index, count]; the second member joined at 11.0
    members = [
        {"started_at": 10.0, "last_at": 13.0,
         "buckets": [[20, 100], [21, 100], [22, 300], [25, 100]]},
        {"started_at": 11.0, "last_at": 12.9, "buckets": [[23, 200]]},
    ]
    found = scaling.steady_rate(_consumers(members), bucket_s=0.5)
    assert found["count"] == 600  # buckets 22, 23, 25
    assert found["seconds"] == pytest.approx(2.0)
    assert found["msgs_per_s"] == pytest.approx(300.0)
    whole = scaling.aggregate_consumers(_consumers(
        [dict(m, go_at=9.5, unique=1, ranges=[[i, i]])
         for i, m in enumerate(members)]), 2)
    assert whole.after_join is not None
    assert scaling.aggregate_consumers(
        _consumers([{"error": "x"}]), 2).joined_msgs_per_s is None


def test_speedups_against_one_process_of_the_same_row():
    entries = [
        ProducerGroup(row="a", processes=1, msgs_per_s=100.0),
        ProducerGroup(row="a", processes=2, msgs_per_s=150.0),
        ProducerGroup(row="b", processes=2, msgs_per_s=80.0),
        ProducerGroup(row="b", processes=1, msgs_per_s=40.0),
        ProducerGroup(row="a", processes=4, msgs_per_s=None),
    ]
    scaling.add_speedups(entries, "processes")
    assert [e.speedup for e in entries] == [1.0, 1.5, 2.0, 1.0, None]


def test_rss_is_read_from_proc():
    value = memory.rss_mb()
    if value is not None:  # Linux
        assert 1 < value < 100000
    assert memory.rss_mb("/nonexistent/statm") is None


def test_sampler_takes_a_sample_at_every_step():
    done = [0]
    sampler = memory.Sampler(200, lambda: done[0], step=10)
    sampler.sample()
    assert sampler.samples == []
    done[0] = 25
    sampler.sample()
    assert [s[:2] for s in sampler.samples] == [[10, 25]]
    done[0] = 200
    sampler.sample()
    assert [s[0] for s in sampler.samples] == list(range(10, 101, 10))
    assert all(s[1] == 200 for s in sampler.samples[1:])
    assert sampler.max_mb == max(s[2] for s in sampler.samples) or \
        memory.rss_mb() is None


def test_long_summary_growth_from_10_to_100_percent():
    samples = [[5, 50, 60.0], [10, 100, 61.0], [50, 500, 61.5],
               [100, 1000, 62.5]]
    summary = memory.long_summary(samples, 62.0, 63.0)
    assert summary["p10_mb"] == 61.0 and summary["p50_mb"] == 61.5
    assert summary["p100_mb"] == 62.5
    assert summary["growth_mb"] == pytest.approx(1.5)
    assert summary["flushed_mb"] == 62.0 and summary["max_mb"] == 63.0
    assert memory.long_summary([], None, 0)["growth_mb"] is None
    assert memory.at_mark([[15, 1, 1.0]], 10) == 1.0
    held = memory.long_summary([[10, 100, 61.0, 90], [100, 1000, 61.0, 7]],
                               61.0, 61.0)
    assert (held["held_p10"], held["held_p100"]) == (90, 7)
    assert summary["held_p10"] is None


def test_sampler_notes_what_is_held():
    done, held = [0], [0]
    sampler = memory.Sampler(10, lambda: done[0], step=50,
                             held=lambda: held[0])
    done[0], held[0] = 5, 3
    sampler.sample()
    done[0], held[0] = 10, 1
    sampler.sample()
    assert [(s[0], s[1], s[3]) for s in sampler.samples] == [(50, 5, 3),
                                                             (100, 10, 1)]


def test_senders_count_without_keeping_anything_per_send():
    seen = []
    lock = threading.Lock()

    def send(seq):
        with lock:
            seen.append(seq)

    sending = memory.Senders(send, 100, 3).start()
    assert sending.join(5.0)
    assert sorted(seen) == list(range(100)) and sending.done() == 100

    def failing(seq):
        if seq == 7:
            raise RuntimeError("broker gone")

    sending = memory.Senders(failing, 20, 1).start()
    assert sending.join(5.0)
    assert sending.done() == 7
    assert sending.errors == ["RuntimeError: broker gone"]


def test_memory_runs_take_the_notifbus_rows_only():
    memory.check_rows(rows.parse_rows(bench.MEMORY_ROWS))
    with pytest.raises(ValueError, match="kafka-python-ack"):
        memory.check_rows(rows.parse_rows("kafka-python-ack"))


def test_stall_bound_is_the_buffer_or_the_senders():
    class Target:
        delivery = "buffered"

    spec = {"row": {"senders": 4}, "max_buffer_records": 500}
    assert memory.stall_bound(spec, Target()) == {
        "max_buffer_records": 500, "max_buffer_bytes": 16777216}
    Target.delivery = "confirmed"
    assert memory.stall_bound(spec, Target()) == {"senders": 4}


def test_bounded_target_puts_the_bounds_in_the_url():
    spec = {"topic": "t", "count": 1, "size": 200,
            "bootstrap": "127.0.0.1:9092",
            "partitions": 2, "acks": "all", "linger_ms": 0,
            "consume_wait_s": 5, "max_buffer_records": 700,
            "max_buffer_bytes": None,
            "row": {"kind": "notifbus-confirmed", "senders": 1,
                    "kafka": True}}
    target = memory.make_target(spec)
    assert "max_buffer_records=700" in target.url()
    assert "max_buffer_bytes" not in target.url()
    assert "max_buffer_records" not in target.url(listener=True)


def _parse(argv):
    return command.resolve(main.build_parser().parse_args(["bench"] + argv))


def test_mode_defaults():
    args = _parse(["--memory"])
    assert args.count == bench.MEMORY_COUNT
    assert args.partitions == 2
    assert args.row_timeout > 120 + 1000000 / 1000
    assert args.stall == bench.STALL_S
    normal = _parse([])
    assert (normal.count, normal.partitions, normal.row_timeout) == (
        20000, 2, 120.0)
    assert normal.producer_counts == [] and normal.consumer_counts == []
    scaled = _parse(["--producers", "2,1", "--consumers", "1,2,4",
                     "--count", "100"])
    assert scaled.producer_counts == [1, 2]
    assert scaled.consumer_counts == [1, 2, 4]
    assert scaled.partitions == 4 and scaled.count == 100
    assert _parse(["--consumers", "4", "--partitions", "3"]).partitions == 3


@pytest.mark.parametrize("argv, message", [
    (["--memory", "--producers", "1,2"], "--memory runs alone"),
    (["--memory", "--rows", "kafka-python-ack"], "not 'kafka-python-ack'"),
    (["--memory", "--kafka", "127.0.0.1:1"], "with --kafka, use --stall 0"),
    (["--producers", "1,0"], "not a positive count"),
])
def test_modes_refuse_what_does_not_fit(argv, message, capsys):
    assert main.main(["bench"] + argv) == 2
    assert message in capsys.readouterr().err


def _report(**extra):
    return Report(settings={"count": 1000000, "size": 200, "acks": "all",
                            "partitions": 2, "kafka": "127.0.0.1:9092",
                            "stall_s": 15.0, "stall_count": 20000,
                            "stall_at": 0.1},
                  machine={"cpus": 2, "system": "Linux x86_64",
                           "python": "3.11.7"},
                  reference="oslo-kafka", **extra)


def _aligned(text, header_start):
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines)
              if line.startswith(header_start))
    header = lines[at]
    body = []
    for line in lines[at + 2:]:
        if not line.strip():
            break
        body.append(line)
    return header, body


def test_memory_tables():
    long = {"row": "notifbus-buffered", "senders": 1, "sent": 1000000,
            "msgs_per_s": 20000.0, "rss_start_mb": 70.0,
            "rss": {"p10_mb": 74.5, "p50_mb": 74.6, "p100_mb": 74.75,
                    "growth_mb": 0.25, "max_mb": 75.0, "held_p10": 9000,
                    "held_p100": 10000},
            "counters": {"sent": 1000001, "acked": 1000001},
            "consume": {"lost": 0, "duplicates": 0}, "error": None}
    failed = {"row": "notifbus-confirmed-x64", "senders": 64,
              "error": "timed out after 120 s (publish); stopped"}
    stall = {"row": "notifbus-buffered", "senders": 1, "stall_s": 15.0,
             "bound": {"max_buffer_records": 10000,
                       "max_buffer_bytes": 16777216},
             "held_max": 10500, "sent_in_stall": 9000,
             "rss_start_mb": 75.0, "rss_stall_max_mb": 80.0,
             "growth_mb": 5.0, "all_acked_after_s": 1.5,
             "msgs_per_s": 900.0,
             "counters": {"sent": 20001, "acked": 20001, "retried": 3},
             "consume": {"lost": 0, "duplicates": 2}, "error": None}
    confirmed = dict(stall, row="notifbus-confirmed-x64", senders=64,
                     bound={"senders": 64})
    text = table.format_memory(_report(memory=MemoryRuns(
        long=[MemoryResult.from_json(r) for r in (long, failed)],
        stall=[MemoryResult.from_json(r) for r in (stall, confirmed)])))
    header, body = _aligned(text, "row ")
    for heading in table.LONG_COLUMNS:
        assert heading in header
    assert body[0].startswith("notifbus-buffered ")
    assert all(len(line) == len(header) for line in body[:1])
    assert "74.8" in body[0] and "+0.2" in body[0]
    assert "9000/10000" in body[0]
    assert "FAILED: timed out" in body[1]
    assert "1,000,000 notifications per row" in text
    assert "stopped (SIGSTOP) for 15 s once 10% were sent" in text
    assert "10000 rec/16 MB" in text and "64 snd" in text
    assert "notifbus-confirmed-x64: FAILED: timed out" in text
    assert "2 CPUs" in text
    stall_header = next(line for line in text.splitlines()
                        if "held max" in line)
    for heading in table.STALL_COLUMNS:
        assert heading in stall_header


def test_bound_cells():
    assert table.bound_cell({"senders": 64}) == "64 snd"
    assert table.bound_cell({"max_buffer_records": 10000,
                             "max_buffer_bytes": 1000000}) == \
        "10000 rec/0.954 MB"
    assert table.bound_cell(None) == "-"


def test_scaling_tables():
    producers = scaling.add_speedups([
        ProducerGroup(row="notifbus-confirmed", senders=1, processes=1,
                      msgs_per_s=1000.0, wall_s=2.0,
                      per_process_msgs_per_s=[1000.0], unacked=0),
        ProducerGroup(row="notifbus-confirmed", senders=1, processes=2,
                      sent=3000, msgs_per_s=1500.0, wall_s=1.33,
                      per_process_msgs_per_s=[760.0, 755.5], unacked=0),
    ], "processes")
    consumers = scaling.add_speedups([
        ConsumerPool(row="batch listeners", consumers=1, partitions=2,
                     msgs_per_s=9000.0, join_s=1.1, per_member=[2000],
                     lost=0, duplicates=0),
        ConsumerPool(row="batch listeners", consumers=4, partitions=2,
                     count=2000, after_join=1500, joined_msgs_per_s=12000.0,
                     msgs_per_s=9900.0, join_s=1.3, drain_s=2.25, lag=7,
                     per_member=[1000, 1000, 0, 0], lost=0, duplicates=0),
    ], "consumers")
    consumers[1].joined_speedup = 1.5
    failed = ProducerGroup(row="notifbus-buffered", senders=1, processes=4,
                           error="timed out")
    text = table.format_scaling(_report(scaling=ScalingRuns(
        producers=producers + [failed], consumers=consumers,
        fill=ProducerMember())))
    assert re.search(r"\nnotifbus-buffered +FAILED \(4 procs\): timed out",
                     text)
    assert "notifbus-buffered: FAILED (4 procs): timed out" in text
    header, body = _aligned(text, "row ")
    for heading in table.SCALE_PRODUCER_COLUMNS:
        assert heading in header
    assert all(len(line) == len(header) for line in body[:2])
    assert "1.50x" in body[1] and "760/756" in body[1]
    assert " 3000 " in body[1]
    header, body = _aligned(text, "listener ")
    for heading in table.SCALE_CONSUMER_COLUMNS:
        assert heading in header
    assert "1.10x" in body[1] and "1000/1000/0/0" in body[1]
    assert "12,000 (75%)" in body[1] and "1.50x" in body[1]
    assert " 2.25 " in body[1] and " 7 " in body[1]
    assert "4 consumers for 2 partitions" in text
    assert "2 CPUs (os.cpu_count())" in text
    assert "broker: Kafka at 127.0.0.1:9092" in text
    only = table.format_scaling(_report(scaling=ScalingRuns(
        consumers=consumers)))
    assert "producer processes" not in only


def test_group_display_sums_the_members():
    shown = []

    class Display:
        def update(self, state):
            shown.append(state)

    group = scaling.GroupDisplay(Display(), 2, total=100)
    first, second = group.member(0), group.member(1)
    first.update({"phase": "ready"})
    assert shown[-1] == {"phase": "ready/starting", "done": 0, "total": 0}
    second.update({"phase": "publish", "done": 30, "total": 50})
    first.update({"phase": "publish", "done": 20, "total": 50})
    assert shown[-1] == {"phase": "publish", "done": 50, "total": 100}
    assert group.done() == 50
