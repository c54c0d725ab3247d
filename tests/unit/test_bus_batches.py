"""Tests of a publisher attempt given a whole batch (the buffered sender's
way): sent as it is when no other sender leads, within the batching
limits, and sharing the lead with concurrent senders."""

import threading

import pytest

from notifbus import bus
from notifbus.record import Record
from tests.unit.test_bus import TOPIC, make_backend, make_publisher


@pytest.fixture
def slots(monkeypatch):
    """Counts the records that waited for their batch at a gate."""
    made = []

    class CountedSlot(bus._Slot):
        __slots__ = ()

        def __init__(self, record):
            super().__init__(record)
            made.append(record)

    monkeypatch.setattr(bus, "_Slot", CountedSlot)
    return made


def records(count, size=1):
    return [Record(topic=TOPIC, value=bytes([65 + i % 26]) * size)
            for i in range(count)]


def test_a_batch_alone_is_sent_as_it_is(slots):
    backend = make_backend()
    publisher = make_publisher(backend)
    batch = records(5)
    assert publisher.attempt(batch) == [None] * 5
    assert backend.batches == [[r.value for r in batch]]
    assert slots == []  # no record waited at a gate
    assert publisher.attempt(records(1)) == [None]  # the lead was given up
    assert len(backend.batches) == 2


@pytest.mark.parametrize("limits, sizes", [
    ({"max_records": 2}, [2, 2, 1]),
    ({"max_bytes": 25}, [2, 2, 1]),
])
def test_a_batch_over_the_limits_is_split(slots, limits, sizes):
    backend = make_backend()
    publisher = make_publisher(backend, **limits)
    assert publisher.attempt(records(5, size=10)) == [None] * 5
    assert [len(b) for b in backend.batches] == sizes
    assert len(slots) == 5


def test_a_batch_waits_for_others_when_lingering(slots):
    backend = make_backend()
    publisher = make_publisher(backend, linger_ms=1)
    assert publisher.attempt(records(3)) == [None] * 3
    assert len(slots) == 3


def test_a_failed_batch_fails_each_record_and_hands_the_lead_on():
    backend = make_backend()
    publisher = make_publisher(backend)
    backend.faults.set_down(True)
    results = publisher.attempt(records(3))
    assert len(results) == 3 and all(results)
    assert publisher.link.connected is False
    backend.faults.set_down(False)
    assert publisher.attempt(records(2)) == [None, None]
    assert publisher.link.connected is True


def test_batches_and_confirmed_senders_share_the_lead():
    backend = make_backend(delay=0.02)
    publisher = make_publisher(backend)
    errors = []

    def confirmed(index):
        try:
            publisher.send(Record(topic=TOPIC, value=b"c%d" % index))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=confirmed, args=(i,))
               for i in range(8)]
    for thread in threads[:4]:
        thread.start()
    assert publisher.attempt(records(10)) == [None] * 10
    for thread in threads[4:]:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    stored = [r.value for r in backend.cluster.records(TOPIC)]
    assert sorted(stored) == sorted([r.value for r in records(10)] +
                                    [b"c%d" % i for i in range(8)])
