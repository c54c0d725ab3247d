"""Tests of the bus over the in-memory backend: group commit, retry and
commit-after-dispatch."""

import collections
import threading
import time
import uuid

import pytest

from notifbus import errors
from notifbus.backends.memory import backend as memory
from notifbus.bus import Counters, Publisher, Subscription
from notifbus.policy import partitioning
from notifbus.policy.batching import BatchPolicy
from notifbus.record import Received, Record
from notifbus.testing.faults import FaultyBackend

TOPIC = "notifications.info"
SHORT = 0.05


@pytest.fixture(autouse=True)
def _clean_clusters():
    memory.reset()
    yield
    memory.reset()


class CountingBackend(FaultyBackend):
    """A memory backend, with faults, that records each produce call's
    batch.

    ``delay`` seconds are spent in each produce call before the records
    are stored, so that concurrent senders pile up behind a batch in
    flight.
    """

    def __init__(self, name, delay=0.0, **options):
        super().__init__(memory.MemoryBackend([(name, None)], options))
        self.delay = delay
        self.batches = []
        self.ensure_calls = []
        self._lock = threading.Lock()

    def produce(self, records, partitions, timeout):
        with self._lock:
            self.batches.append([r.value for r in records])
        if self.delay:
            time.sleep(self.delay)
        return super().produce(records, partitions, timeout)

    def ensure_topic(self, topic, partitions, timeout):
        self.ensure_calls.append((topic, partitions))
        return super().ensure_topic(topic, partitions, timeout)

    @property
    def produce_calls(self):
        return len(self.batches)


def make_backend(delay=0.0, **options):
    return CountingBackend(f"test-{uuid.uuid4().hex}", delay=delay,
                           **options)


def make_publisher(backend, max_records=500, max_bytes=1048576,
                   linger_ms=0.0, partitioner="round_robin",
                   num_partitions=4, max_message_bytes=1048576,
                   backoff_ms=1, backoff_max_ms=10):
    return Publisher(
        backend, BatchPolicy(max_records, max_bytes, linger_ms),
        partitioning.from_name(partitioner), send_timeout_s=1.0,
        num_partitions=num_partitions, max_message_bytes=max_message_bytes,
        backoff_ms=backoff_ms, backoff_max_ms=backoff_max_ms)


def stored_values(backend, topic=TOPIC):
    return [r.value for r in backend.cluster.records(topic)]


def send_all_concurrently(publisher, threads, per_thread, topic=TOPIC,
                          value_size=None):
    """Send from ``threads`` threads at once; return every value sent."""
    start = threading.Barrier(threads)
    failures = []

    def sender(index):
        start.wait()
        for seq in range(per_thread):
            value = b"%d-%d" % (index, seq)
            if value_size is not None:
                value = value.ljust(value_size, b".")
            try:
                publisher.send(Record(topic=topic, value=value), retry=0)
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

    workers = [threading.Thread(target=sender, args=(i,))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
        assert not worker.is_alive()
    assert failures == []
    sent = [b"%d-%d" % (i, s) for i in range(threads)
            for s in range(per_thread)]
    if value_size is not None:
        sent = [v.ljust(value_size, b".") for v in sent]
    return sent


def run_with_timeout(fn, timeout=5.0):
    """Run ``fn`` in a thread; return (result, exception, elapsed)."""
    outcome = {}

    def target():
        started = time.monotonic()
        try:
            outcome["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s"
    return outcome.get("result"), outcome.get("error"), outcome["elapsed"]


# Publisher: delivery and partitioning.


def test_send_returns_once_stored():
    backend = make_backend(delay=0.05)
    publisher = make_publisher(backend)
    publisher.send(Record(topic=TOPIC, value=b"hello", key=b"k"))
    stored = backend.cluster.records(TOPIC)
    assert [(r.value, r.key) for r in stored] == [(b"hello", b"k")]
    assert backend.ensure_calls == [(TOPIC, 4)]
    assert backend.cluster.partitions(TOPIC) == 4


def test_topic_ensured_once():
    backend = make_backend()
    publisher = make_publisher(backend, num_partitions=3)
    for i in range(5):
        publisher.send(Record(topic=TOPIC, value=b"%d" % i))
    publisher.send(Record(topic="other", value=b"x"))
    assert backend.ensure_calls == [(TOPIC, 3), ("other", 3)]


def test_existing_topic_keeps_its_partition_count():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 2, 1.0)
    publisher = make_publisher(backend, num_partitions=8)
    for i in range(6):
        publisher.send(Record(topic=TOPIC, value=b"%d" % i))
    assert backend.cluster.partitions(TOPIC) == 2
    assert {r.partition for r in backend.cluster.records(TOPIC)} == {0, 1}


def test_round_robin_spreads_over_partitions():
    backend = make_backend()
    publisher = make_publisher(backend, num_partitions=4)
    for i in range(12):
        publisher.send(Record(topic=TOPIC, value=b"%d" % i))
    per_partition = [len(backend.cluster.records(TOPIC, p))
                     for p in range(4)]
    assert per_partition == [3, 3, 3, 3]


def test_key_hash_keeps_a_key_in_one_partition():
    backend = make_backend()
    publisher = make_publisher(backend, partitioner="key_hash",
                               num_partitions=8)
    keys = [b"compute.host%d" % i for i in range(6)]
    for round_ in range(4):
        for key in keys:
            publisher.send(Record(topic=TOPIC, value=b"%d" % round_,
                                  key=key))
    by_key = collections.defaultdict(set)
    order = collections.defaultdict(list)
    for rec in backend.cluster.records(TOPIC):
        by_key[rec.key].add(rec.partition)
        order[rec.key].append(rec.value)
    for key in keys:
        assert by_key[key] == {partitioning.kafka_partition(key, 8)}
        assert order[key] == [b"0", b"1", b"2", b"3"]
    assert len(set().union(*by_key.values())) > 1


# Publisher: group commit.


def test_concurrent_senders_share_batches():
    backend = make_backend(delay=0.005)
    publisher = make_publisher(backend)
    sent = send_all_concurrently(publisher, threads=16, per_thread=10)
    stored = stored_values(backend)
    assert sorted(stored) == sorted(sent)
    assert len(stored) == len(set(stored))  # exactly once
    assert backend.produce_calls < len(sent)
    assert max(len(batch) for batch in backend.batches) > 1
    assert sum(len(batch) for batch in backend.batches) == len(sent)
    assert publisher.counters.sent == len(sent)
    assert publisher.counters.acked == len(sent)
    assert publisher.counters.failed == 0


def test_each_sender_is_woken_at_most_twice(monkeypatch):
    """Group commit wakes a sleeping sender once with its result, and at
    most once more to hand it the lead: never the whole crowd per batch."""
    from notifbus import bus

    waits = collections.Counter()
    original = bus._Slot.wait

    def counted(slot):
        waits[slot] += 1  # keeps the slot alive: no id is reused
        original(slot)

    monkeypatch.setattr(bus._Slot, "wait", counted)
    backend = make_backend(delay=0.002)
    publisher = make_publisher(backend, max_records=4)
    sent = send_all_concurrently(publisher, threads=24, per_thread=5)
    assert sorted(stored_values(backend)) == sorted(sent)
    assert max(len(batch) for batch in backend.batches) <= 4
    assert waits and max(waits.values()) <= 2


def test_senders_of_many_records_share_batches_with_single_senders():
    backend = make_backend(delay=0.002)
    publisher = make_publisher(backend, max_records=7, num_partitions=1)
    results = {}

    def many(index):
        records = [Record(topic=TOPIC, value=b"m%d-%d" % (index, i))
                   for i in range(30)]
        results[index] = publisher.attempt(records)

    workers = [threading.Thread(target=many, args=(i,)) for i in range(3)]
    for worker in workers:
        worker.start()
    sent = send_all_concurrently(publisher, threads=8, per_thread=5)
    for worker in workers:
        worker.join(10)
        assert not worker.is_alive()
    assert all(r == [None] * 30 for r in results.values())
    stored = stored_values(backend)
    assert len(stored) == len(sent) + 90 == len(set(stored))
    for index in range(3):
        mine = [v for v in stored if v.startswith(b"m%d-" % index)]
        assert mine == [b"m%d-%d" % (index, i) for i in range(30)]


def test_an_interrupted_leader_leaves_no_sender_asleep():
    class Interrupted(BaseException):
        pass

    backend = make_backend(delay=0.05)
    publisher = make_publisher(backend)
    real_produce = backend.produce
    calls = []

    def interrupted_once(records, partitions, timeout):
        calls.append(len(records))
        if len(calls) == 1:
            time.sleep(0.1)  # the other sender queues behind this batch
            raise Interrupted()
        return real_produce(records, partitions, timeout)

    backend.produce = interrupted_once
    outcome = {}

    def first():
        try:
            publisher.send(Record(topic=TOPIC, value=b"first"), retry=0)
        except Interrupted:
            outcome["first"] = "interrupted"

    leader = threading.Thread(target=first)
    leader.start()
    time.sleep(0.03)
    _, error, _ = run_with_timeout(
        lambda: publisher.send(Record(topic=TOPIC, value=b"second"),
                               retry=None))
    leader.join(5)
    assert outcome == {"first": "interrupted"}
    assert error is None
    assert stored_values(backend) == [b"second"]


def test_batches_keep_each_senders_order():
    backend = make_backend(delay=0.002)
    publisher = make_publisher(backend, num_partitions=1)
    send_all_concurrently(publisher, threads=8, per_thread=10)
    stored = stored_values(backend)
    for index in range(8):
        mine = [v for v in stored if v.startswith(b"%d-" % index)]
        assert mine == [b"%d-%d" % (index, s) for s in range(10)]


def test_batch_max_records():
    backend = make_backend(delay=0.005)
    publisher = make_publisher(backend, max_records=3)
    sent = send_all_concurrently(publisher, threads=12, per_thread=5)
    sizes = [len(batch) for batch in backend.batches]
    assert max(sizes) == 3
    assert sorted(stored_values(backend)) == sorted(sent)


def test_batch_max_bytes():
    backend = make_backend(delay=0.005)
    publisher = make_publisher(backend, max_bytes=25)
    sent = send_all_concurrently(publisher, threads=12, per_thread=5,
                                 value_size=10)
    sizes = [sum(len(v) for v in batch) for batch in backend.batches]
    assert max(sizes) == 20
    assert sorted(stored_values(backend)) == sorted(sent)


def test_record_over_max_bytes_travels_alone():
    backend = make_backend()
    publisher = make_publisher(backend, max_bytes=4)
    publisher.send(Record(topic=TOPIC, value=b"0123456789"))
    assert backend.batches == [[b"0123456789"]]


def test_linger_gathers_a_batch():
    backend = make_backend()
    publisher = make_publisher(backend, linger_ms=200, max_records=4)
    sent = send_all_concurrently(publisher, threads=4, per_thread=1)
    # The leader waited for the three others: one full batch.
    assert [sorted(b) for b in backend.batches] == [sorted(sent)]


# Publisher: the oslo retry contract.


def test_retry_zero_fails_after_one_attempt():
    backend = make_backend()
    publisher = make_publisher(backend)
    backend.faults.fail_next(1)
    with pytest.raises(errors.DeliveryError) as info:
        publisher.send(Record(topic=TOPIC, value=b"x"), retry=0)
    assert info.value.retriable
    assert "injected failure" in str(info.value)
    assert backend.produce_calls == 1
    assert stored_values(backend) == []
    assert publisher.counters.as_dict() == dict(
        Counters().as_dict(), sent=1, failed=1)


def test_retry_two_survives_two_failures():
    backend = make_backend()
    publisher = make_publisher(backend)
    backend.faults.fail_next(2)
    publisher.send(Record(topic=TOPIC, value=b"x"), retry=2)
    assert backend.produce_calls == 3
    assert stored_values(backend) == [b"x"]
    assert publisher.counters.as_dict() == dict(
        Counters().as_dict(), sent=1, acked=1, retried=2)


def test_retry_two_gives_up_after_three_failures():
    backend = make_backend()
    publisher = make_publisher(backend)
    backend.faults.fail_next(3)
    with pytest.raises(errors.DeliveryError):
        publisher.send(Record(topic=TOPIC, value=b"x"), retry=2)
    assert backend.produce_calls == 3
    assert stored_values(backend) == []
    assert publisher.counters.as_dict() == dict(
        Counters().as_dict(), sent=1, failed=1, retried=2)
    # The next send is not affected.
    publisher.send(Record(topic=TOPIC, value=b"y"), retry=0)
    assert stored_values(backend) == [b"y"]


@pytest.mark.parametrize("retry", [None, -1])
@pytest.mark.parametrize("topic_known", [True, False])
def test_retry_forever_until_the_cluster_is_back(retry, topic_known):
    backend = make_backend()
    publisher = make_publisher(backend)
    if topic_known:
        publisher.send(Record(topic=TOPIC, value=b"first"))
    backend.faults.set_down(True)
    sending = []  # when the send began, in the sending thread
    stop = threading.Event()

    def bring_up():
        # Up again once the sender retried a few times, 0.3 s after the
        # send began (not after this thread did: on a busy machine the
        # sending thread may start later).
        while not stop.is_set():
            if (publisher.counters.retried >= 2 and sending
                    and time.monotonic() - sending[0] >= 0.3):
                backend.faults.set_down(False)
                return
            time.sleep(0.01)

    def send():
        sending.append(time.monotonic())
        return publisher.send(Record(topic=TOPIC, value=b"x"), retry=retry)

    helper = threading.Thread(target=bring_up)
    helper.start()
    try:
        _, error, elapsed = run_with_timeout(send)
    finally:
        stop.set()
        helper.join()
    assert error is None
    assert elapsed >= 0.25
    assert stored_values(backend)[-1] == b"x"
    assert publisher.counters.retried >= 2
    assert publisher.counters.failed == 0


def test_retry_forever_with_backoff_cap():
    backend = make_backend()
    publisher = make_publisher(backend, backoff_ms=1, backoff_max_ms=20)
    backend.faults.fail_next(12)
    _, error, elapsed = run_with_timeout(
        lambda: publisher.send(Record(topic=TOPIC, value=b"x")))
    assert error is None
    assert backend.produce_calls == 13
    # 1+2+4+8+16 ms, then 20 ms each: well under a second.
    assert elapsed < 1.0


def test_non_retriable_error_is_not_retried():
    backend = make_backend()
    publisher = make_publisher(backend)
    backend.faults.fail_next(1, retriable=False)
    _, error, _ = run_with_timeout(
        lambda: publisher.send(Record(topic=TOPIC, value=b"x"),
                               retry=None))
    assert isinstance(error, errors.DeliveryError)
    assert not error.retriable
    assert backend.produce_calls == 1
    assert publisher.counters.retried == 0
    assert publisher.counters.failed == 1


def test_record_too_large_before_any_backend_call():
    backend = make_backend()
    publisher = make_publisher(backend, max_message_bytes=10)
    record = Record(topic=TOPIC, value=b"x" * 8, key=b"abc")
    assert record.size == 11
    with pytest.raises(errors.RecordTooLarge) as info:
        publisher.send(record, retry=None)
    message = str(info.value)
    assert "11 bytes" in message and "10 bytes" in message
    assert repr(TOPIC) in message
    assert not info.value.retriable
    assert backend.produce_calls == 0
    assert backend.ensure_calls == []
    assert publisher.counters.as_dict() == dict(
        Counters().as_dict(), failed=1)


def test_record_at_the_limit_is_sent():
    backend = make_backend()
    publisher = make_publisher(backend, max_message_bytes=10)
    publisher.send(Record(topic=TOPIC, value=b"x" * 10))
    assert stored_values(backend) == [b"x" * 10]


def test_backend_too_large_is_not_retried():
    backend = make_backend(max_message_bytes=5)
    publisher = make_publisher(backend)
    with pytest.raises(errors.RecordTooLarge):
        publisher.send(Record(topic=TOPIC, value=b"x" * 6), retry=None)
    assert backend.produce_calls == 1


def test_one_failed_record_does_not_fail_its_batch_mates():
    backend = make_backend(delay=0.01, max_message_bytes=5)
    publisher = make_publisher(backend)
    start = threading.Barrier(4)
    outcomes = {}

    def sender(value):
        start.wait()
        try:
            publisher.send(Record(topic=TOPIC, value=value), retry=0)
            outcomes[value] = None
        except errors.DeliveryError as exc:
            outcomes[value] = exc

    values = [b"a", b"b", b"toolarge", b"c"]
    threads = [threading.Thread(target=sender, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert isinstance(outcomes.pop(b"toolarge"), errors.RecordTooLarge)
    assert outcomes == {b"a": None, b"b": None, b"c": None}
    assert sorted(stored_values(backend)) == [b"a", b"b", b"c"]


def test_backend_exception_fails_the_batch_without_hanging():
    backend = make_backend()
    publisher = make_publisher(backend)

    def broken(records, partitions, timeout):
        raise RuntimeError("backend bug")

    backend.produce = broken
    _, error, _ = run_with_timeout(
        lambda: publisher.send(Record(topic=TOPIC, value=b"x"), retry=None))
    assert isinstance(error, RuntimeError)
    assert publisher.counters.failed == 1


def test_closed_publisher_refuses():
    backend = make_backend()
    publisher = make_publisher(backend)
    publisher.close()
    _, error, _ = run_with_timeout(
        lambda: publisher.send(Record(topic=TOPIC, value=b"x"), retry=None))
    assert isinstance(error, errors.DeliveryError)
    assert not error.retriable
    assert "closed" in str(error)
    assert backend.produce_calls == 0
    assert stored_values(backend) == []


def test_counters_after_a_mix():
    backend = make_backend()
    publisher = make_publisher(backend, max_message_bytes=100)
    publisher.send(Record(topic=TOPIC, value=b"ok"))
    backend.faults.fail_next(1)
    publisher.send(Record(topic=TOPIC, value=b"retried"), retry=1)
    backend.faults.fail_next(1)
    with pytest.raises(errors.DeliveryError):
        publisher.send(Record(topic=TOPIC, value=b"lost"), retry=0)
    with pytest.raises(errors.RecordTooLarge):
        publisher.send(Record(topic=TOPIC, value=b"x" * 101))
    assert publisher.counters.as_dict() == {
        "sent": 3, "acked": 2, "failed": 2, "retried": 1,
        "delivered": 0, "committed": 0, "invalid": 0, "dead_lettered": 0,
        "spooled": 0, "redelivered": 0}


# Subscription.


def fill(backend, values, partitions=1, topic=TOPIC):
    """Store ``values`` round robin over a topic of ``partitions``."""
    backend.ensure_topic(topic, partitions, 1.0)
    records = [Record(topic=topic, value=v) for v in values]
    assert backend.produce(
        records, [i % partitions for i in range(len(values))],
        1.0) == [None] * len(values)


def subscribe(backend, group="g", topics=(TOPIC,), read_ahead=1):
    subscription = Subscription(backend, topics, group,
                                read_ahead=read_ahead)
    assert subscription.wait_assigned(1.0)
    return subscription


def test_fetch_ack_commit():
    backend = make_backend()
    fill(backend, [b"a", b"b", b"c"])
    subscription = subscribe(backend)
    got = subscription.fetch(SHORT, 10)
    assert [r.value for r in got] == [b"a", b"b", b"c"]
    assert subscription.counters.delivered == 3
    subscription.commit()
    assert backend.cluster.committed("g") == {}
    subscription.ack(got[0])
    subscription.ack(got[1])
    assert backend.cluster.committed("g") == {}  # not before commit()
    subscription.commit()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 2}
    assert subscription.counters.committed == 1
    subscription.ack(got[2])
    assert subscription.fetch(SHORT, 10) == []  # fetch commits first
    assert backend.cluster.committed("g") == {(TOPIC, 0): 3}


def test_out_of_order_ack():
    backend = make_backend()
    fill(backend, [b"a", b"b", b"c"])
    subscription = subscribe(backend)
    got = subscription.fetch(SHORT, 10)
    subscription.ack(got[2])
    subscription.ack(got[1])
    subscription.commit()
    assert backend.cluster.committed("g") == {}
    subscription.ack(got[0])
    subscription.commit()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 3}


def test_acks_per_partition():
    backend = make_backend()
    # Round robin: partition 0 gets p0o0 and p0o1, partition 1 the others.
    fill(backend, [b"p0o0", b"p1o0", b"p0o1", b"p1o1"], partitions=2)
    subscription = subscribe(backend)
    got = {r.value: r for r in subscription.fetch(SHORT, 10)}
    assert {v: (r.partition, r.offset) for v, r in got.items()} == {
        b"p0o0": (0, 0), b"p1o0": (1, 0), b"p0o1": (0, 1), b"p1o1": (1, 1)}
    for value in (b"p0o0", b"p1o1", b"p1o0"):
        subscription.ack(got[value])
    subscription.commit()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 1, (TOPIC, 1): 2}


def test_requeue_redelivers_only_the_requeued_record():
    backend = make_backend()
    fill(backend, [b"a", b"b", b"c", b"d"])
    subscription = subscribe(backend)
    got = subscription.fetch(SHORT, 10)
    subscription.ack(got[0])
    subscription.requeue(got[1])
    subscription.ack(got[2])
    subscription.ack(got[3])
    again = subscription.fetch(SHORT, 10)
    assert [(r.offset, r.value) for r in again] == [(1, b"b")]
    assert subscription.counters.redelivered == 1
    # the commit stays below the requeued record, whatever follows it
    assert backend.cluster.committed("g") == {(TOPIC, 0): 1}
    subscription.ack(again[0])
    subscription.commit()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 4}
    assert subscription.fetch(SHORT, 10) == []


def test_records_after_a_requeued_one_go_on_being_dispatched():
    backend = make_backend()
    fill(backend, [b"bad"])
    subscription = Subscription(backend, [TOPIC], "g",
                                requeue_backoff_ms=60000)
    assert subscription.wait_assigned(1.0)
    [bad] = subscription.fetch(SHORT, 10)
    subscription.requeue(bad)
    fill(backend, [b"%d" % i for i in range(9)])
    got = subscription.fetch(SHORT, 100)
    assert [r.value for r in got] == [b"%d" % i for i in range(9)]
    for received in got:
        subscription.ack(received)
    subscription.commit()
    assert backend.cluster.committed("g") == {}  # still below "bad"
    assert subscription.fetch(SHORT, 10) == []  # its backoff is not over
    assert subscription.pending_redeliveries() == 1
    subscription.close(1.0)
    # a crash, or a stop, reads it again from the commit (at least once)
    again = subscribe(backend)
    assert [r.value for r in again.fetch(SHORT, 100)][0] == b"bad"


def test_requeue_backoff_doubles():
    backend = make_backend()
    fill(backend, [b"a"])
    subscription = Subscription(backend, [TOPIC], "g",
                                requeue_backoff_ms=150,
                                requeue_backoff_max_ms=10000)
    assert subscription.wait_assigned(1.0)
    [record] = subscription.fetch(SHORT, 1)
    waits = []
    for _ in range(3):
        requeued_at = time.monotonic()
        subscription.requeue(record)
        found = []
        while not found:
            found = subscription.fetch(0.01, 1)
        waits.append(time.monotonic() - requeued_at)
        record = found[0]
    assert 0.15 <= waits[0] < 0.3
    assert 0.3 <= waits[1] < 0.45
    assert 0.6 <= waits[2] < 0.75
    assert subscription.counters.redelivered == 3


class DeadLetterLog:
    def __init__(self):
        self.given_up = []

    def give_up(self, received, group, attempts, reason=None):
        self.given_up.append((received.value, group, attempts, reason))


def test_dead_lettered_after_max_redeliveries():
    backend = make_backend()
    fill(backend, [b"bad", b"good"])
    dead = DeadLetterLog()
    subscription = Subscription(backend, [TOPIC], "pool", max_redeliveries=2,
                                dead_letters=dead)
    assert subscription.wait_assigned(1.0)
    bad, good = subscription.fetch(SHORT, 10)
    subscription.ack(good)
    deliveries = 1
    subscription.requeue(bad, reason="ValueError: ten")
    while True:
        got = subscription.fetch(SHORT, 10)
        if not got:
            break
        assert [r.value for r in got] == [b"bad"]
        deliveries += 1
        subscription.requeue(got[0], reason="ValueError: ten")
    assert deliveries == 3  # the first delivery and two redeliveries
    assert dead.given_up == [(b"bad", "pool", 3, "ValueError: ten")]
    assert subscription.counters.redelivered == 2
    subscription.commit()
    assert backend.cluster.committed("pool") == {(TOPIC, 0): 2}


def test_revoke_drops_pending_redeliveries():
    backend = make_backend()
    fill(backend, [b"a", b"b"])
    subscription = subscribe(backend)
    a, b = subscription.fetch(SHORT, 10)
    subscription.ack(b)
    subscription.requeue(a)
    subscription._on_revoke({(TOPIC, 0)})
    assert subscription.pending_redeliveries() == 0
    subscription.requeue(a)  # late: its partition is gone
    assert subscription.pending_redeliveries() == 0
    assert backend.cluster.committed("g") == {}


def test_requeue_during_a_poll_does_not_commit_past_it():
    backend = make_backend()
    fill(backend, [b"a", b"b"])
    consumers = []
    real_subscribe = backend.subscribe

    def subscribe_and_keep(topics, group, on_revoke=None):
        consumers.append(real_subscribe(topics, group, on_revoke))
        return consumers[-1]

    backend.subscribe = subscribe_and_keep
    subscription = subscribe(backend)
    [first] = subscription.fetch(SHORT, 1)
    [consumer] = consumers
    real_poll = consumer.poll

    def poll_while_requeued(timeout, max_records):
        found = real_poll(timeout, max_records)
        # The dispatcher requeues "a" while the poller holds "b".
        subscription.requeue(first)
        return found

    consumer.poll = poll_while_requeued
    [second] = subscription.fetch(SHORT, 1)
    consumer.poll = real_poll
    assert second.value == b"b"
    subscription.ack(second)
    subscription.commit()
    assert backend.cluster.committed("g") == {}
    again = subscription.fetch(SHORT, 10)
    assert [r.value for r in again] == [b"a"]
    subscription.ack(again[0])
    subscription.commit()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 2}


def _counting_polls(backend):
    """Subscribe through ``backend`` and count the consumer's polls."""
    polls = []
    real_subscribe = backend.subscribe

    def subscribe_and_count(topics, group, on_revoke=None):
        consumer = real_subscribe(topics, group, on_revoke)
        real_poll = consumer.poll

        def poll(timeout, max_records):
            found = real_poll(timeout, max_records)
            polls.append((max_records, len(found)))
            return found

        consumer.poll = poll
        return consumer

    backend.subscribe = subscribe_and_count
    return polls


def test_read_ahead_serves_single_fetches_from_one_poll():
    backend = make_backend()
    fill(backend, [b"%d" % i for i in range(10)])
    polls = _counting_polls(backend)
    subscription = subscribe(backend, read_ahead=4)
    got = [subscription.fetch(SHORT, 1) for _ in range(10)]
    assert [r.value for batch in got for r in batch] == [
        b"%d" % i for i in range(10)]
    assert polls == [(4, 4), (4, 4), (4, 2)]
    # a caller asking for more than the read-ahead gets what it asked for
    fill(backend, [b"x"] * 6)
    assert len(subscription.fetch(SHORT, 6)) == 6
    assert polls[-1] == (6, 6)


def test_read_ahead_is_not_committed_until_dispatched_and_acked():
    backend = make_backend()
    fill(backend, [b"a", b"b", b"c", b"d"])
    first = subscribe(backend, read_ahead=10)
    [a] = first.fetch(SHORT, 1)
    first.ack(a)
    first.close(1.0)  # b, c and d were read ahead, never dispatched
    assert backend.cluster.committed("g") == {(TOPIC, 0): 1}
    second = subscribe(backend, read_ahead=10)
    assert [r.value for r in second.fetch(SHORT, 10)] == [b"b", b"c", b"d"]
    second.close(1.0)


def test_requeue_keeps_what_was_read_ahead_of_its_partition():
    backend = make_backend()
    fill(backend, [b"p0o0", b"p1o0", b"p0o1", b"p1o1", b"p0o2", b"p1o2"],
         partitions=2)
    subscription = subscribe(backend, read_ahead=10)
    first = subscription.fetch(SHORT, 2)
    assert len(subscription._ahead) == 4
    requeued = first[0]
    subscription.ack(first[1])
    subscription.requeue(requeued)
    rest = subscription.fetch(SHORT, 10)
    rest += subscription.fetch(SHORT, 10)
    values = [r.value for r in rest]
    # the requeued record comes again, first; what was read ahead comes
    # once
    assert values[0] == requeued.value
    assert sorted(values) == sorted(
        {b"p0o0", b"p1o0", b"p0o1", b"p1o1", b"p0o2", b"p1o2"}
        - {first[1].value})


def test_revoke_drops_what_was_read_ahead_of_revoked_partitions():
    backend = make_backend()
    fill(backend, [b"p0o0", b"p1o0", b"p0o1", b"p1o1"], partitions=2)
    first = subscribe(backend, read_ahead=10)
    [one] = first.fetch(SHORT, 1)
    first.ack(one)
    second = Subscription(backend, [TOPIC], "g", read_ahead=10)
    first._on_revoke({(TOPIC, 0), (TOPIC, 1)})
    assert first._ahead == collections.deque()
    assert backend.cluster.committed("g") == {(TOPIC, one.partition): 1}
    first.close(1.0)
    assert second.wait_assigned(1.0)
    got = second.fetch(SHORT, 10) + second.fetch(SHORT, 10)
    assert sorted(r.value for r in got) == sorted(
        {b"p0o0", b"p1o0", b"p0o1", b"p1o1"} - {one.value})
    second.close(1.0)


def test_close_commits_so_the_group_resumes():
    backend = make_backend()
    fill(backend, [b"a", b"b", b"c", b"d", b"e"])
    first = subscribe(backend)
    got = first.fetch(SHORT, 10)
    assert len(got) == 5
    for received in got[:3]:
        first.ack(received)
    first.close(1.0)
    assert backend.cluster.committed("g") == {(TOPIC, 0): 3}
    second = subscribe(backend)
    assert [r.value for r in second.fetch(SHORT, 10)] == [b"d", b"e"]
    second.close(1.0)


def test_other_group_reads_everything():
    backend = make_backend()
    fill(backend, [b"a", b"b"])
    first = subscribe(backend, group="g1")
    for received in first.fetch(SHORT, 10):
        first.ack(received)
    first.close(1.0)
    other = subscribe(backend, group="g2")
    assert [r.value for r in other.fetch(SHORT, 10)] == [b"a", b"b"]


def test_revoke_commits_what_was_acked():
    backend = make_backend()
    fill(backend, [b"p0o0", b"p1o0", b"p0o1", b"p1o1"], partitions=2)
    first = subscribe(backend)
    for received in first.fetch(SHORT, 10):
        if received.offset == 0:
            first.ack(received)
    second = Subscription(backend, [TOPIC], "g")
    # The first member gives a partition up in its next fetch, committing
    # what it acked before it does.
    assert first.fetch(SHORT, 10) == []
    assert second.wait_assigned(1.0)
    assert backend.cluster.committed("g") == {(TOPIC, 0): 1, (TOPIC, 1): 1}
    # The new owner starts after what was committed: offset 1 of the one
    # partition it took.
    got = second.fetch(SHORT, 10)
    assert [(r.offset, r.value) for r in got] in (
        [(1, b"p0o1")], [(1, b"p1o1")])
    first.close(1.0)
    second.close(1.0)


def test_commit_while_down_is_kept_for_later():
    backend = make_backend()
    fill(backend, [b"a", b"b"])
    subscription = subscribe(backend)
    got = subscription.fetch(SHORT, 10)
    subscription.ack(got[0])
    backend.faults.set_down(True)
    subscription.commit()
    assert subscription.counters.committed == 0
    backend.faults.set_down(False)
    subscription.ack(got[1])
    subscription.commit()
    assert backend.cluster.committed("g") == {(TOPIC, 0): 2}
    assert subscription.counters.committed == 1


def test_wakeup_returns_fetch_early():
    backend = make_backend()
    subscription = subscribe(backend)
    timer = threading.Timer(0.05, subscription.wakeup)
    timer.start()
    records, error, elapsed = run_with_timeout(
        lambda: subscription.fetch(5.0, 10))
    assert (records, error) == ([], None)
    assert elapsed < 2.0


def test_a_poll_is_handed_out_in_time_order_each_partition_in_its_own():
    from notifbus.bus import in_time_order

    def rec(partition, offset, ts):
        return Received(topic="t", partition=partition, offset=offset,
                        value=b"", timestamp_ms=ts)

    polled = [rec(1, 0, 20), rec(1, 1, 40), rec(0, 0, 10), rec(0, 1, 30),
              rec(0, 2, 5)]  # a clock that went back: still after (0, 1)
    assert [(r.partition, r.offset) for r in in_time_order(polled)] == [
        (0, 0), (1, 0), (0, 1), (0, 2), (1, 1)]
    single = [rec(0, 0, 9), rec(0, 1, 1)]
    assert in_time_order(single) == single
