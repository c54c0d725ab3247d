"""Tests of the in-memory reference backend."""

import threading
import time

import pytest

from notifbus import backends, errors, opts
from notifbus.backends.memory import backend as memory
from notifbus.record import Record

TOPIC = "notifications.info"
SHORT = 0.05


@pytest.fixture(autouse=True)
def _clean_clusters():
    memory.reset()
    yield
    memory.reset()


def make_backend(name="test", **options):
    return memory.MemoryBackend([(name, None)], options)


def records(n, topic=TOPIC):
    return [Record(topic=topic, value=b"v%d" % i) for i in range(n)]


def produce_spread(backend, n, partitions=4, topic=TOPIC):
    """Produce ``n`` records round-robin over ``partitions``."""
    recs = records(n, topic)
    result = backend.produce(recs, [i % partitions for i in range(n)], 1.0)
    assert result == [None] * n
    return recs


def settled(consumer, timeout):
    """Wait up to ``timeout`` seconds, without polling, until
    ``consumer.assigned()`` says yes."""
    deadline = time.monotonic() + timeout
    while not consumer.assigned():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        with consumer._cond:
            consumer._cond.wait(min(left, 0.01))
    return True


def drain(consumer, max_polls=20):
    """Poll ``consumer`` until a poll comes back empty."""
    found = []
    for _ in range(max_polls):
        got = consumer.poll(SHORT, 10)
        if not got:
            break
        found.extend(got)
    return found


def values(received):
    return [r.value for r in received]


def test_loaded_through_entry_point():
    assert backends.load("memory") is memory.MemoryBackend


def test_round_trip_with_offsets():
    backend = make_backend()
    assert backend.ensure_topic(TOPIC, 2, 1.0) == 2
    recs = [Record(topic=TOPIC, value=b"a", key=b"k",
                   headers=[("h", b"1")], timestamp_ms=1234),
            Record(topic=TOPIC, value=b"b"),
            Record(topic=TOPIC, value=b"c")]
    assert backend.produce(recs, [1, 1, 0], 1.0) == [None, None, None]
    consumer = backend.subscribe([TOPIC], "g")
    assert settled(consumer, 1.0)
    assert consumer.assignment() == {(TOPIC, 0), (TOPIC, 1)}
    got = sorted(drain(consumer), key=lambda r: r.position)
    assert [r.position for r in got] == [
        (TOPIC, 0, 0), (TOPIC, 1, 0), (TOPIC, 1, 1)]
    first = got[1]
    assert (first.value, first.key, tuple(first.headers),
            first.timestamp_ms) == (b"a", b"k", (("h", b"1"),), 1234)
    assert got[2].timestamp_ms is not None
    assert consumer.poll(SHORT, 10) == []


def test_per_partition_order():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 3, 1.0)
    produce_spread(backend, 60, partitions=3)
    consumer = backend.subscribe([TOPIC], "g")
    got = drain(consumer)
    assert len(got) == 60
    for partition in range(3):
        offsets = [r.offset for r in got if r.partition == partition]
        assert offsets == list(range(20))


def test_poll_is_fair_across_partitions():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 2, 1.0)
    backend.produce(records(50), [0] * 50, 1.0)
    backend.produce([Record(topic=TOPIC, value=b"lone")], [1], 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    got = consumer.poll(SHORT, 5)
    assert len(got) == 5
    assert b"lone" in values(got)


def test_missing_topic_created_with_num_partitions():
    backend = make_backend(num_partitions=3)
    assert backend.produce(records(1), [2], 1.0) == [None]
    assert backend.cluster.partitions(TOPIC) == 3
    # An existing topic keeps its count.
    assert backend.ensure_topic(TOPIC, 8, 1.0) == 3
    backend.subscribe(["other"], "g")
    assert backend.cluster.partitions("other") == 3


def test_defaults_without_options():
    backend = memory.MemoryBackend([], {})
    assert backend.name == memory.DEFAULT_CLUSTER
    backend.produce(records(1), [0], 1.0)
    # the [notifbus] default, declared once: no default of its own
    declared = {o.dest: o.default for o in opts.notifbus_opts}
    assert backend.cluster.partitions(TOPIC) == declared["num_partitions"]
    assert backend.max_message_bytes == declared["max_message_bytes"]


def test_bad_partition_is_not_retriable():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 2, 1.0)
    result = backend.produce(records(3), [0, 2, 1], 1.0)
    assert result[0] is None and result[2] is None
    assert isinstance(result[1], errors.DeliveryError)
    assert not result[1].retriable
    assert len(backend.cluster.records(TOPIC)) == 2


def test_record_too_large():
    backend = make_backend(max_message_bytes=10)
    recs = [Record(topic=TOPIC, value=b"x" * 5),
            Record(topic=TOPIC, value=b"x" * 11),
            Record(topic=TOPIC, value=b"y")]
    result = backend.produce(recs, [0, 0, 0], 1.0)
    assert result[0] is None and result[2] is None
    assert isinstance(result[1], errors.RecordTooLarge)
    assert not result[1].retriable
    assert values(backend.cluster.records(TOPIC)) == [b"x" * 5, b"y"]


def test_backends_share_a_cluster_by_name():
    notifier = make_backend("shared")
    listener = make_backend("shared")
    elsewhere = make_backend("elsewhere")
    notifier.produce(records(2), [0, 0], 1.0)
    assert len(drain(listener.subscribe([TOPIC], "g"))) == 2
    assert drain(elsewhere.subscribe([TOPIC], "g")) == []
    notifier.close()
    assert len(listener.cluster.records(TOPIC)) == 2


def test_hosts_are_checked():
    with pytest.raises(errors.ConfigError):
        memory.MemoryBackend([("a", None), ("b", None)], {})
    with pytest.raises(errors.ConfigError):
        memory.MemoryBackend([("a", 9092)], {})
    with pytest.raises(errors.ConfigError):
        memory.MemoryBackend([], {"auto_offset_reset": "middle"})


def test_two_groups_each_get_everything():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 4, 1.0)
    first = backend.subscribe([TOPIC], "g1")
    second = backend.subscribe([TOPIC], "g2")
    recs = produce_spread(backend, 20)
    expected = sorted(values(recs))
    assert sorted(values(drain(first))) == expected
    assert sorted(values(drain(second))) == expected


def test_members_split_partitions_without_overlap_or_loss():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 4, 1.0)
    one = backend.subscribe([TOPIC], "g")
    two = backend.subscribe([TOPIC], "g")
    produce_spread(backend, 100)
    seen = {one: set(), two: set()}
    for _ in range(100):
        for consumer in (one, two):
            for r in consumer.poll(SHORT / 5, 7):
                assert r.position not in seen[consumer]
                seen[consumer].add(r.position)
        if len(seen[one]) + len(seen[two]) == 100:
            break
    assert len(seen[one] | seen[two]) == 100
    assert not seen[one] & seen[two]
    assert one.assignment() == {(TOPIC, 0), (TOPIC, 2)}
    assert two.assignment() == {(TOPIC, 1), (TOPIC, 3)}


def test_members_with_different_topics():
    backend = make_backend()
    backend.ensure_topic("a", 2, 1.0)
    backend.ensure_topic("b", 2, 1.0)
    only_a = backend.subscribe(["a"], "g")
    both = backend.subscribe(["a", "b"], "g")
    assert settled(only_a, 1.0)
    assert settled(both, 1.0)
    assert only_a.assignment() == {("a", 0)}
    assert both.assignment() == {("a", 1), ("b", 0), ("b", 1)}


def test_commit_then_new_member_resumes_from_commit():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(10), [0] * 10, 1.0)
    first = backend.subscribe([TOPIC], "g")
    got = first.poll(SHORT, 6)
    assert [r.offset for r in got] == list(range(6))
    first.commit({(TOPIC, 0): 4})
    first.close()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 4}
    second = backend.subscribe([TOPIC], "g")
    assert [r.offset for r in drain(second)] == list(range(4, 10))


def test_commit_of_unowned_partition_is_ignored():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    assert settled(consumer, 1.0)
    consumer.commit({(TOPIC, 0): 3, ("elsewhere", 0): 7})
    assert backend.cluster.committed("g") == {(TOPIC, 0): 3}


def test_seek_rewinds():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(5), [0] * 5, 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    assert len(drain(consumer)) == 5
    consumer.seek(TOPIC, 0, 2)
    assert [r.offset for r in drain(consumer)] == [2, 3, 4]


def test_seek_before_assignment_applies_when_taken():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(5), [0] * 5, 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    consumer.seek(TOPIC, 0, 3)
    assert [r.offset for r in drain(consumer)] == [3, 4]


def test_on_revoke_called_before_partitions_move():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 4, 1.0)
    revoked = []
    first = backend.subscribe([TOPIC], "g", on_revoke=revoked.append)
    assert settled(first, 1.0)
    produce_spread(backend, 8)
    assert len(drain(first)) == 8
    assert first.assignment() == {(TOPIC, p) for p in range(4)}

    second = backend.subscribe([TOPIC], "g")
    # The first member still holds every partition until it polls.
    assert not settled(second, SHORT)
    assert second.assignment() == set()
    assert first.poll(SHORT, 10) == []
    assert revoked == [{(TOPIC, 1), (TOPIC, 3)}]
    assert first.assignment() == {(TOPIC, 0), (TOPIC, 2)}
    assert settled(second, 1.0)
    assert second.assignment() == {(TOPIC, 1), (TOPIC, 3)}
    # Nothing was committed: the new owner re-reads those partitions.
    assert len(drain(second)) == 4


def test_on_revoke_can_commit():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 2, 1.0)
    produce_spread(backend, 10, partitions=2)
    positions = {}

    def on_revoke(lost):
        first.commit({tp: positions[tp] for tp in lost})

    first = backend.subscribe([TOPIC], "g", on_revoke=on_revoke)
    for r in drain(first):
        positions[(r.topic, r.partition)] = r.offset + 1
    second = backend.subscribe([TOPIC], "g")
    first.poll(SHORT, 10)
    assert settled(second, 1.0)
    assert drain(second) == []
    assert backend.cluster.committed("g") == {(TOPIC, 1): 5}


def test_assigned_gives_up_unread_partitions_itself():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 2, 1.0)
    revoked = []
    first = backend.subscribe([TOPIC], "g", on_revoke=revoked.append)
    assert settled(first, 1.0)
    second = backend.subscribe([TOPIC], "g")
    # Nothing was read from the partition the first member loses, so its
    # assigned() releases it without a revoke.
    assert settled(first, 1.0)
    assert settled(second, 1.0)
    assert revoked == []
    assert first.assignment() | second.assignment() == {
        (TOPIC, 0), (TOPIC, 1)}


def test_close_hands_partitions_to_the_others():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 4, 1.0)
    one = backend.subscribe([TOPIC], "g")
    two = backend.subscribe([TOPIC], "g")
    assert settled(one, 1.0) and settled(two, 1.0)
    two.close()
    assert settled(one, 1.0)
    assert one.assignment() == {(TOPIC, p) for p in range(4)}
    assert two.poll(SHORT, 10) == []


def test_more_members_than_partitions():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    one = backend.subscribe([TOPIC], "g")
    two = backend.subscribe([TOPIC], "g")
    assert settled(one, 1.0) and settled(two, 1.0)
    assert len(one.assignment()) + len(two.assignment()) == 1


def test_concurrent_joins_settle():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 8, 1.0)
    results = {}
    consumers = {}
    stop = threading.Event()

    def member(i):
        consumer = backend.subscribe([TOPIC], "g")
        consumers[i] = consumer
        results[i] = settled(consumer, 5.0)
        # Keep polling, as a listener does, so that rebalances complete.
        while not stop.is_set():
            consumer.poll(SHORT / 5, 10)

    threads = [threading.Thread(target=member, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5.0
    while len(results) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results == {i: True for i in range(4)}
    for consumer in consumers.values():
        assert settled(consumer, 5.0)
    stop.set()
    for thread in threads:
        thread.join(5.0)
    owned = [consumer.assignment() for consumer in consumers.values()]
    assert sorted(len(tps) for tps in owned) == [2, 2, 2, 2]
    assert set().union(*owned) == {(TOPIC, p) for p in range(8)}


def test_wakeup_unblocks_poll():
    backend = make_backend()
    consumer = backend.subscribe([TOPIC], "g")
    timer = threading.Timer(SHORT, consumer.wakeup)
    start = time.monotonic()
    timer.start()
    try:
        assert consumer.poll(10.0, 10) == []
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2.0


def test_wakeup_before_poll_makes_next_poll_return():
    backend = make_backend()
    consumer = backend.subscribe([TOPIC], "g")
    consumer.wakeup()
    start = time.monotonic()
    assert consumer.poll(10.0, 10) == []
    assert time.monotonic() - start < 2.0


def test_poll_wakes_on_new_records():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    timer = threading.Timer(
        SHORT, backend.produce, args=(records(1), [0], 1.0))
    start = time.monotonic()
    timer.start()
    try:
        assert values(consumer.poll(10.0, 10)) == [b"v0"]
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2.0


def test_poll_times_out_empty():
    consumer = make_backend().subscribe([TOPIC], "g")
    start = time.monotonic()
    assert consumer.poll(SHORT, 10) == []
    assert time.monotonic() - start >= SHORT * 0.9


def test_auto_offset_reset_latest():
    backend = make_backend(auto_offset_reset="latest")
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(3), [0] * 3, 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    assert settled(consumer, 1.0)
    assert consumer.poll(SHORT, 10) == []
    backend.produce([Record(topic=TOPIC, value=b"new")], [0], 1.0)
    got = consumer.poll(SHORT, 10)
    assert [(r.offset, r.value) for r in got] == [(3, b"new")]


def test_committed_offset_wins_over_latest():
    backend = make_backend(auto_offset_reset="latest")
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(3), [0] * 3, 1.0)
    first = make_backend().subscribe([TOPIC], "g")
    assert len(drain(first)) == 3
    first.commit({(TOPIC, 0): 1})
    first.close()
    second = backend.subscribe([TOPIC], "g")
    assert [r.offset for r in drain(second)] == [1, 2]


def test_reset_drops_clusters():
    backend = make_backend()
    backend.produce(records(1), [0], 1.0)
    memory.reset("test")
    assert backend.cluster.partitions(TOPIC) == 0
    assert memory.cluster("test") is backend.cluster


def test_list_opts():
    # partitions and the size limit are [notifbus] options: no duplicates
    # that a URL query would set without effect
    opts = {opt.name: opt for opt in memory.MemoryBackend.list_opts()}
    assert set(opts) == {"auto_offset_reset"}
    assert opts["auto_offset_reset"].default == "earliest"
