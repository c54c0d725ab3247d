"""Tests of notifbus.testing.faults: faults injected into a backend."""

import threading
import time

import pytest
from oslo_config import cfg

from notifbus import errors, settings
from notifbus.backends.memory import backend as memory
from notifbus.testing.faults import Faults, FaultyBackend
from tests.unit.test_backend_memory import (  # noqa: F401 - a fixture
    SHORT,
    TOPIC,
    _clean_clusters,
    drain,
    records,
    values,
)


def make_backend(name="test", **options):
    return FaultyBackend(memory.MemoryBackend([(name, None)], options))


def test_fail_next():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.faults.fail_next(2)
    for _ in range(2):
        result = backend.produce(records(3), [0, 0, 0], 1.0)
        assert all(isinstance(e, errors.DeliveryError) and e.retriable
                   for e in result)
    assert backend.produce(records(1), [0], 1.0) == [None]
    backend.faults.fail_next(1, retriable=False)
    (error,) = backend.produce(records(1), [0], 1.0)
    assert isinstance(error, errors.DeliveryError) and not error.retriable
    assert len(backend.cluster.records(TOPIC)) == 1


def test_set_down():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(2), [0, 0], 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    assert consumer.assigned()
    backend.faults.set_down(True)
    assert not consumer.assigned()
    assert backend.faults.down
    result = backend.produce(records(2), [0, 0], 1.0)
    assert all(isinstance(e, errors.DeliveryError) and e.retriable
               for e in result)
    assert "is down" in str(result[0])
    with pytest.raises(errors.DeliveryError):
        backend.ensure_topic("new", 1, 1.0)
    with pytest.raises(errors.DeliveryError):
        consumer.commit({(TOPIC, 0): 1})
    assert consumer.poll(SHORT, 10) == []

    backend.faults.set_down(False)
    assert values(drain(consumer)) == [b"v0", b"v1"]
    consumer.commit({(TOPIC, 0): 2})
    assert backend.produce(records(1), [0], 1.0) == [None]


def test_wakeup_ends_a_poll_waiting_while_down():
    backend = make_backend()
    consumer = backend.subscribe([TOPIC], "g")
    backend.faults.set_down(True)
    consumer.wakeup()
    started = time.monotonic()
    assert consumer.poll(5.0, 10) == []
    assert time.monotonic() - started < 1.0


def test_poll_reads_once_up_again_within_its_timeout():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.produce(records(1), [0], 1.0)
    consumer = backend.subscribe([TOPIC], "g")
    backend.faults.set_down(True)
    timer = threading.Timer(SHORT, backend.faults.set_down, args=(False,))
    timer.start()
    try:
        assert values(consumer.poll(5.0, 10)) == [b"v0"]
    finally:
        timer.cancel()


def test_backends_of_transports_share_the_faults():
    faults = Faults()
    conf = cfg.ConfigOpts()
    conf([])
    with faults.wrapping_loaded_backends():
        first, _ = settings.open_backend(conf, "notifbus+memory://test/")
        second, _ = settings.open_backend(conf, "notifbus+memory://test/")
    assert isinstance(first, FaultyBackend)
    assert first.faults is second.faults is faults
    assert first.name == "test"
    faults.set_down(True)
    assert "is down" in str(second.produce(records(1), [0], 1.0)[0])
    faults.set_down(False)
    assert second.produce(records(1), [0], 1.0) == [None]


def test_refuse_fails_the_matching_records_and_stores_the_others():
    backend = make_backend()
    backend.ensure_topic(TOPIC, 1, 1.0)
    backend.faults.refuse(lambda record: record.value == b"v1")
    result = backend.produce(records(3), [0, 0, 0], 1.0)
    assert result[0] is None and result[2] is None
    assert isinstance(result[1], errors.DeliveryError)
    assert not result[1].retriable
    assert values(backend.cluster.records(TOPIC)) == [b"v0", b"v2"]
    backend.faults.refuse(None)
    assert backend.produce(records(3), [0, 0, 0], 1.0) == [None] * 3
