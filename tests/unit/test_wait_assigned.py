"""``Subscription.wait_assigned``: the bus polls until
``Consumer.assigned`` says the group placed the member, and owns what
those polls return (read ahead, delivered in order, committed after
dispatch)."""

import time

import pytest

from notifbus.backends import base
from notifbus.bus import Subscription
from notifbus.record import Received


def received(offset, partition=0):
    return Received(topic="t", partition=partition, offset=offset,
                    value=str(offset).encode())


class Joining(base.Consumer):
    """Says it is assigned after ``polls`` polls; each poll returns the
    next of ``batches``."""

    def __init__(self, batches, polls):
        self.batches = list(batches)
        self.polls = polls
        self.polled = 0
        self.committed = []

    def poll(self, timeout, max_records):
        self.polled += 1
        return self.batches.pop(0) if self.batches else []

    def assigned(self):
        return self.polled >= self.polls

    def commit(self, offsets):
        self.committed.append(dict(offsets))

    def wakeup(self):
        pass

    def close(self, timeout=5.0):
        pass


class Backend:
    def __init__(self, consumer):
        self.consumer = consumer

    def subscribe(self, topics, group, on_revoke=None):
        self.on_revoke = on_revoke
        return self.consumer


def test_records_polled_while_joining_are_fetched_in_order():
    consumer = Joining([[received(0), received(1)], [], [received(2)]],
                       polls=3)
    subscription = Subscription(Backend(consumer), ["t"], "g")
    assert subscription.wait_assigned(1.0)
    assert consumer.polled == 3
    got = subscription.fetch(0.0, 1) + subscription.fetch(0.0, 5)
    assert [r.offset for r in got] == [0, 1, 2]
    assert consumer.polled == 3  # handed out from the read-ahead
    subscription.commit()
    assert consumer.committed == []  # nothing dispatched yet
    for record in got:
        subscription.ack(record)
    subscription.commit()
    assert consumer.committed == [{("t", 0): 3}]


def test_records_of_a_partition_revoked_while_joining_are_dropped():
    consumer = Joining([[received(0, 0), received(0, 1)]], polls=2)
    backend = Backend(consumer)
    subscription = Subscription(backend, ["t"], "g")
    assert subscription.wait_assigned(1.0)
    backend.on_revoke({("t", 1)})
    assert [r.position for r in subscription.fetch(0.0, 5)] == [("t", 0, 0)]


def test_wait_assigned_gives_up_at_its_timeout():
    consumer = Joining([], polls=10 ** 9)
    subscription = Subscription(Backend(consumer), ["t"], "g")
    started = time.monotonic()
    assert not subscription.wait_assigned(0.2)
    assert time.monotonic() - started < 1.0


def test_a_consumer_assigned_at_once_is_not_polled():
    consumer = Joining([[received(0)]], polls=0)
    assert Subscription(Backend(consumer), ["t"], "g").wait_assigned(1.0)
    assert consumer.polled == 0


class EarlierContract(Joining):
    """A consumer written for the earlier contract: no ``assigned``, a
    ``wait_assigned(timeout)`` instead."""

    assigned = base.Consumer.assigned

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waits = []

    def wait_assigned(self, timeout):
        self.waits.append(timeout)
        return self.polled >= self.polls


def test_a_consumer_of_the_earlier_contract_is_asked_without_waiting():
    consumer = EarlierContract([[received(0)]], polls=1)
    subscription = Subscription(Backend(consumer), ["t"], "g")
    with pytest.warns(DeprecationWarning, match="Define assigned"):
        assert subscription.wait_assigned(1.0)
    assert consumer.waits == [0, 0]
    assert [r.offset for r in subscription.fetch(0.0, 5)] == [0]


def test_the_default_is_assigned_at_once():
    class Placed(Joining):
        assigned = base.Consumer.assigned

    assert Placed([], polls=5).assigned()


def test_what_the_bus_does_not_call_is_optional():
    consumer = Joining([], polls=0)  # no seek, assignment nor lag
    assert consumer.assignment() is None
    assert consumer.lag() is None
    with pytest.raises(NotImplementedError, match="Joining consumer cannot "
                                                  "seek"):
        consumer.seek("t", 0, 0)
