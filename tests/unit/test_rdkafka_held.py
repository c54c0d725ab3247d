"""The rdkafka backend's attempts against a scripted librdkafka producer:
a retried record that librdkafka still holds is not produced again, and
an attempt waiting on a partition short of in-sync replicas ends early,
naming NOT_ENOUGH_REPLICAS."""

import time
import types

import pytest
from confluent_kafka import KafkaError

from notifbus.backends.rdkafka import backend as rdkafka
from notifbus.backends.rdkafka.backend import RdkafkaBackend
from notifbus.backends.rdkafka.delivery import Delivery, HeldRecords
from notifbus.record import Record


class ScriptedProducer:
    """librdkafka's producer as far as ``produce`` uses it: it keeps what
    it is given, and reports it when the test says so."""

    def __init__(self, isrs=(1, 2, 3)):
        self.produced = []  # (record value, on_delivery), in order
        self.isrs = list(isrs)

    def produce(self, topic, value=None, on_delivery=None, **_):
        self.produced.append((value, on_delivery))

    def poll(self, timeout):
        return 0

    def __len__(self):
        return len(self.produced)

    def purge(self, in_queue=True, in_flight=True, blocking=True):
        """Everything was sent: nothing to take back."""

    def list_topics(self, topic, timeout):
        partition = types.SimpleNamespace(isrs=self.isrs,
                                          replicas=[1, 2, 3])
        return types.SimpleNamespace(topics={topic: types.SimpleNamespace(
            error=None, partitions={0: partition})})

    def deliver(self, value, err=None):
        """Report every copy of ``value`` that librdkafka was given."""
        for produced, report in self.produced:
            if produced == value:
                report(err, None)


@pytest.fixture
def backend(monkeypatch):
    found = RdkafkaBackend([("127.0.0.1", 9)], {})
    producer = ScriptedProducer()
    monkeypatch.setattr(found, "_get_producer", lambda: producer)
    monkeypatch.setattr(found, "_min_isr_of", lambda topic, deadline: 2)
    monkeypatch.setattr(found, "_why_down", lambda since: None)
    found.producer = producer
    return found


def record(value):
    return Record(topic="held.info", value=value)


def test_a_retry_waits_for_the_record_librdkafka_holds(backend):
    first = record(b"one")
    (error,) = backend.produce([first], [0], 0.1)
    assert "did not acknowledge" in str(error)
    (error,) = backend.produce([first], [0], 0.1)
    assert error is not None
    assert len(backend.producer.produced) == 1  # not produced again
    backend.producer.deliver(b"one")  # acknowledged meanwhile
    assert backend.produce([first], [0], 0.1) == [None]
    assert len(backend.producer.produced) == 1


def test_a_retry_hears_of_the_acknowledgement_while_it_waits(backend,
                                                             monkeypatch):
    first = record(b"one")
    backend.produce([first], [0], 0.1)
    serve = backend._serve

    def acknowledge(producer, timeout):
        producer.deliver(b"one")
        serve(producer, 0)

    monkeypatch.setattr(backend, "_serve", acknowledge)
    assert backend.produce([first], [0], 5.0) == [None]
    assert len(backend.producer.produced) == 1


def test_a_record_whose_first_delivery_failed_is_produced_again(backend):
    first = record(b"one")
    backend.produce([first], [0], 0.1)
    backend.producer.deliver(b"one", KafkaError(KafkaError._MSG_TIMED_OUT))
    backend.produce([first], [0], 0.1)
    assert len(backend.producer.produced) == 2


def test_an_equal_record_of_another_send_is_produced(backend):
    backend.produce([record(b"one")], [0], 0.1)
    backend.produce([record(b"one")], [0], 0.1)
    assert len(backend.producer.produced) == 2


def test_acknowledged_records_are_forgotten(backend):
    first = record(b"one")
    backend.produce([first], [0], 0.1)
    backend.producer.deliver(b"one")
    backend.produce([first], [0], 0.1)
    assert len(backend._held) == 0


def test_too_few_in_sync_replicas_end_the_attempt_naming_the_cause(
        backend, monkeypatch):
    monkeypatch.setattr(rdkafka, "_PROBE_AFTER_S", 0.1)
    backend.producer.isrs = [1]
    (error,) = backend.produce([record(b"one")], [0], 10.0)
    text = str(error)
    assert "NOT_ENOUGH_REPLICAS" in text
    assert "'held.info' partition 0: 1 in sync, min.insync.replicas is 2" \
        in text
    assert error.retriable
    assert len(backend.producer.produced) == 1


def test_enough_in_sync_replicas_wait_for_the_broker(backend, monkeypatch):
    monkeypatch.setattr(rdkafka, "_PROBE_AFTER_S", 0.05)
    backend.producer.isrs = [1, 2]
    (error,) = backend.produce([record(b"one")], [0], 0.3)
    assert "did not acknowledge" in str(error)


def test_a_follower_hears_of_an_outcome_reported_before_it_followed():
    delivery = Delivery(1, lambda: None)
    delivery.report(0, None, None)
    heard = []
    delivery.follow(0, lambda err, msg: heard.append(err))
    assert heard == [None]


def test_held_records_are_forgotten_after_keep_s(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    held = HeldRecords(keep_s=5.0)
    first = record(b"one")
    held.hold([first], Delivery(1, lambda: None))
    clock[0] += 6.0
    held.hold([record(b"two")], Delivery(1, lambda: None))
    assert not held.follow(first, lambda err, msg: None)
    assert len(held) == 1
