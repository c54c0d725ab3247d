"""The consumers of both Kafka backends against a real broker: wakeup,
seek, and commits from ``on_revoke`` before a rebalance gives partitions
away (kafka-python 3.0 calls ``on_revoke`` on its IO thread, where a
commit cannot wait; librdkafka on the polling thread)."""

import threading
import time
import uuid

import pytest
from oslo_config import cfg

from notifbus import settings
from notifbus.bus import poll_until_assigned
from notifbus.record import Record
from tests.functional.conftest import FAST_GROUP


@pytest.fixture(params=["kafka", "rdkafka"])
def backend(request, rdkafka_broker):
    conf = cfg.ConfigOpts()
    conf([])
    found, _ = settings.open_backend(conf, rdkafka_broker.url(
        request.param, **FAST_GROUP))
    yield found
    found.close(2)


def _group(name):
    """A group of its own: on Tansu, a group keeps the assignment protocol
    of the backend that used it first."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic(backend):
    name = f"rdc{uuid.uuid4().hex[:10]}"
    assert backend.ensure_topic(name, 2, 10) == 2
    return name


def _produce(backend, topic, count, partition=None):
    records = [Record(topic=topic, value=str(i).encode())
               for i in range(count)]
    partitions = [partition if partition is not None else i % 2
                  for i in range(count)]
    assert backend.produce(records, partitions, 10) == [None] * count


def _poll_all(consumer, count, timeout=10):
    found, deadline = [], time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        found += consumer.poll(0.2, count - len(found))
    return found


def test_wakeup_ends_a_poll_soon(backend, topic):
    consumer = backend.subscribe([topic], _group("wake"))
    try:
        assert poll_until_assigned(consumer, 10, [].extend)
        assert consumer.assignment() == {(topic, 0), (topic, 1)}
        timer = threading.Timer(0.3, consumer.wakeup)
        started = time.monotonic()
        timer.start()
        assert consumer.poll(10, 10) == []
        took = time.monotonic() - started
        timer.join()
    finally:
        consumer.close(2)
    assert 0.25 < took < 1.0


def test_seek_reads_again(backend, topic):
    _produce(backend, topic, 4, partition=0)
    consumer = backend.subscribe([topic], _group("seek"))
    try:
        first = []
        assert poll_until_assigned(consumer, 10, first.extend)
        first += _poll_all(consumer, 4 - len(first))
        assert [r.offset for r in first] == [0, 1, 2, 3]
        assert sorted(r.value for r in first) == [b"0", b"1", b"2", b"3"]
        consumer.seek(topic, 0, 1)
        again = _poll_all(consumer, 3)
    finally:
        consumer.close(2)
    # the same records at the same offsets; without the idempotent
    # producer, a retried request may have stored them in another order
    assert [(r.offset, r.value) for r in again] == [
        (r.offset, r.value) for r in first[1:]]


def test_on_revoke_commits_before_the_partitions_go(backend, topic):
    """The first member commits from on_revoke when a second one joins;
    the commit is made at once (not held until the rebalance ends) and
    the group resumes from it."""
    _produce(backend, topic, 10)
    revoked, commit_s = [], []
    first = None

    def on_revoke(partitions):
        revoked.append(partitions)
        started = time.monotonic()
        first.commit({(topic, 0): 3, (topic, 1): 2})
        commit_s.append(time.monotonic() - started)

    group = _group("revoke")
    first = backend.subscribe([topic], group, on_revoke=on_revoke)
    second = None
    try:
        polled = []
        assert poll_until_assigned(first, 10, polled.extend)
        assert len(polled + _poll_all(first, 10 - len(polled))) == 10
        second = backend.subscribe([topic], group)
        resumed, deadline = [], time.monotonic() + 15
        while len(resumed) < 5 and time.monotonic() < deadline:
            resumed += first.poll(0.1, 10) + second.poll(0.1, 10)
    finally:
        for consumer in (first, second):
            if consumer is not None:
                consumer.close(2)
    assert revoked and revoked[0] == {(topic, 0), (topic, 1)}
    assert commit_s[0] < 1.0, f"the commit took {commit_s[0]:.1f} s"
    assert sorted((r.partition, r.offset) for r in resumed) == [
        (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]


@pytest.mark.parametrize("scheme", ["kafka", "rdkafka"])
def test_close_is_bounded_when_the_broker_is_gone(restartable_broker, scheme):
    broker = restartable_broker
    conf = cfg.ConfigOpts()
    conf([])
    gone, _ = settings.open_backend(conf, broker.url(scheme, **FAST_GROUP))
    gone.ensure_topic("t", 1, 10)
    consumer = gone.subscribe(["t"], "gone")
    assert poll_until_assigned(consumer, 10, [].extend)
    broker.kill()
    started = time.monotonic()
    consumer.close(2)
    gone.close(2)
    assert time.monotonic() - started < 6


def test_a_member_with_topics_of_its_own_joins_in_one_rebalance(
        apache_kafka):
    """As oslo's listeners without a pool do: the second member subscribes
    to a topic the leader has no metadata for. The leader assigns it from
    the count the member announced, and the metadata arriving afterwards
    does not rebalance the group again (kafka-python's leader did, moving
    the partitions just after the new member started)."""
    backends = []
    for _ in range(2):
        conf = cfg.ConfigOpts()
        conf([])
        backends.append(settings.open_backend(
            conf, apache_kafka.url("kafka", **FAST_GROUP))[0])
    shared, own_a, own_b = (f"rr{uuid.uuid4().hex[:10]}" for _ in range(3))
    group = _group("own-topics")
    revocations = []
    first = second = None
    try:
        for name in (shared, own_a):
            backends[0].ensure_topic(name, 2, 10)
        first = backends[0].subscribe([shared, own_a], group,
                                      on_revoke=revocations.append)
        assert poll_until_assigned(first, 10, [].extend)
        backends[1].ensure_topic(own_b, 2, 10)
        second = backends[1].subscribe([shared, own_b], group)
        joined, deadline = False, time.monotonic() + 15
        while not joined and time.monotonic() < deadline:
            first.poll(0.05, 10)
            joined = poll_until_assigned(second, 0.05, [].extend)
        assert joined
        assert {(own_b, 0), (own_b, 1)} <= second.assignment()
        settle = time.monotonic() + 3
        while time.monotonic() < settle:
            first.poll(0.05, 10)
            second.poll(0.05, 10)
        assert {(own_a, 0), (own_a, 1)} <= first.assignment()
        rebalances = len(revocations)  # closing revokes too
    finally:
        for consumer in (first, second):
            if consumer is not None:
                consumer.close(2)
        for found in backends:
            found.close(2)
    assert rebalances == 1, revocations
