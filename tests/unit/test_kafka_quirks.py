"""The broker_quirks seam of the Kafka backends."""

import dataclasses
import logging

import pytest
from kafka.coordinator.assignors.range import RangePartitionAssignor
from oslo_config import cfg

from notifbus import settings
from notifbus.backends.kafka.assignor import (
    PartitionCountAssignor,
    RoundRobinAssignor,
)
from notifbus.backends.kafka.backend import KafkaConsumer
from notifbus.backends.kafka_common import options as kafka_options
from notifbus.backends.kafka_common import quirks as kafka_quirks
from notifbus.embedded import EmbeddedBroker


def _open(url):
    conf = cfg.ConfigOpts()
    conf([])
    backend, _ = settings.open_backend(conf, url)
    return backend


@pytest.mark.parametrize("scheme", ["kafka", "rdkafka"])
def test_apache_kafka_runs_no_workaround_by_default(scheme):
    backend = _open(f"notifbus+{scheme}://127.0.0.1:9/")
    try:
        assert backend.quirks == kafka_quirks.APACHE_KAFKA
        fields = dataclasses.fields(kafka_quirks.BrokerQuirks)
        assert not any(getattr(backend.quirks, field.name)
                       for field in fields if field.name != "name")
    finally:
        backend.close(1)


@pytest.mark.parametrize("scheme", ["kafka", "rdkafka"])
def test_tansu_is_named_in_the_url(scheme):
    backend = _open(f"notifbus+{scheme}://127.0.0.1:9/?broker_quirks=tansu")
    try:
        assert backend.quirks == kafka_quirks.TANSU
        assert backend.quirks.end_offsets_per_batch
    finally:
        backend.close(1)


def test_an_unknown_broker_is_refused_with_the_choices():
    with pytest.raises(Exception) as info:
        _open("notifbus+kafka://127.0.0.1:9/?broker_quirks=redpanda")
    assert "broker_quirks" in str(info.value)
    assert "tansu" in str(info.value) and "none" in str(info.value)


def test_the_embedded_broker_url_names_tansu():
    url = EmbeddedBroker(port=9).url(session_timeout_ms=1000)
    assert "broker_quirks=tansu" in url
    assert "session_timeout_ms=1000" in url


class _Recorder:
    """Stands in for the backend's connect: records the consumer's
    settings instead of connecting."""

    def __init__(self, backend):
        self.backend = backend
        self.config = None

    def __call__(self, factory, what, **config):
        self.config = config
        raise RuntimeError("not connecting")


@pytest.mark.parametrize("quirks, expected", [
    ("none", [RoundRobinAssignor, RangePartitionAssignor]),
    ("tansu", [PartitionCountAssignor]),
])
def test_listeners_assign_with_kafkas_assignors_on_apache_kafka(
        quirks, expected):
    backend = _open(f"notifbus+kafka://127.0.0.1:9/?broker_quirks={quirks}")
    recorder = backend._connect = _Recorder(backend)
    with pytest.raises(RuntimeError):
        KafkaConsumer(backend, ["t"], "g", None)
    found = recorder.config["partition_assignment_strategy"]
    assert [a if isinstance(a, type) else type(a) for a in found][
        :len(expected)] == expected
    backend.close(1)


@pytest.mark.parametrize("scheme", ["kafka", "rdkafka"])
@pytest.mark.parametrize("query, expected", [
    ("", True),
    ("?acks=1", False),
    ("?enable_idempotence=false", False),
    ("?broker_quirks=tansu", False),
])
def test_idempotence_needs_acks_all_and_a_broker_that_keeps_it(
        scheme, query, expected):
    backend = _open(f"notifbus+{scheme}://127.0.0.1:9/{query}")
    try:
        options = backend.opts
        assert kafka_options.idempotent(options, backend.quirks,
                                        logging.getLogger("t")) is expected
    finally:
        backend.close(timeout=0)


def test_quirks_that_turn_idempotence_off_say_so_once(caplog, monkeypatch):
    monkeypatch.setattr(kafka_quirks, "_TOLD_IDEMPOTENCE_OFF", set())
    log = logging.getLogger("t")
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(3):
            assert kafka_quirks.TANSU.idempotence(True, log) is False
        assert kafka_quirks.TANSU.idempotence(False, log) is False
        assert kafka_quirks.APACHE_KAFKA.idempotence(True, log) is True
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "broker_quirks=tansu" in said[0]
