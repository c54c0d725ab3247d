"""A topic's metadata that no broker answers for ends the wait at
bootstrap_timeout_ms, even while librdkafka has not reported every broker
down (it may take longer than that to)."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from notifbus import errors
from notifbus.backends.rdkafka.backend import RdkafkaBackend


class RefusingProducer:
    """librdkafka's producer as ``list_topics`` sees a broker that
    refuses connections: a transport error each time, after the wait."""

    def __init__(self):
        self.calls = 0

    def list_topics(self, topic, timeout):
        self.calls += 1
        time.sleep(min(timeout, 0.05))
        raise KafkaException(KafkaError(KafkaError._TRANSPORT,
                                        "Connection refused"))

    def poll(self, timeout):
        return 0


def test_no_answer_ends_at_the_bootstrap_timeout(monkeypatch):
    backend = RdkafkaBackend([("127.0.0.1", 9)],
                             {"bootstrap_timeout_ms": 300})
    producer = RefusingProducer()
    monkeypatch.setattr(backend, "_get_producer", lambda: producer)
    monkeypatch.setattr(backend, "_why_down", lambda since: None)
    assert backend.events.down_since is None

    started = time.monotonic()
    with pytest.raises(errors.DeliveryError) as caught:
        backend.ensure_topic("t", 1, timeout=10.0)
    took = time.monotonic() - started

    assert took < 2.0
    assert producer.calls > 1
    message = str(caught.value)
    assert "no Kafka broker answered at 127.0.0.1:9 within 300 ms" in message
    assert "Connection refused" in message
    assert caught.value.retriable
