"""The rdkafka backend under eventlet: librdkafka blocks in C, so its waits
run in eventlet's native thread pool or poll without waiting, and the hub
keeps running.

A ticker greenthread wakes every 10 ms while a listener joins its group,
green senders publish and the listener consumes; if any call blocked the
hub (a wait inside librdkafka, a real lock), the ticker would stall for as
long. On Apache Kafka with the default settings, and on Tansu.
"""

import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import settings
from notifbus.embedded import EmbeddedBroker
from notifbus.record import Record
from notifbus.testing.kafka import KafkaCluster
from tests.oslo.hub import MAX_STALL_S, Ticker, green_round_trip

#: A broker of its own for each kind, which the test kills.
BROKERS = {"apache-kafka": KafkaCluster, "tansu": EmbeddedBroker}


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def test_green_send_and_listen_do_not_block_the_hub(rdkafka_url):
    transport = oslo_messaging.get_notification_transport(_conf(),
                                                           url=rdkafka_url)
    seen, worst = green_round_trip(transport, topic="green-rdkafka")
    assert sorted(seen) == list(range(200))
    assert worst < MAX_STALL_S, f"the hub stalled for {worst:.3f} s"


@pytest.mark.parametrize("kind", sorted(BROKERS))
def test_send_to_a_stopped_broker_and_close_do_not_block_the_hub(kind):
    """Waiting for a broker that is gone (a failing send, then a close)
    leaves the hub running."""
    broker = BROKERS[kind]().start()
    backend, _ = settings.open_backend(
        _conf(), broker.url("rdkafka", bootstrap_timeout_ms=1000))
    topic = f"gone{uuid.uuid4().hex[:8]}"
    ticker = Ticker()
    try:
        assert backend.ensure_topic(topic, 1, 10) == 1
        assert backend.produce([Record(topic=topic, value=b"1")], [0],
                               5) == [None]
        broker.stop(kill=True)
        started = time.monotonic()
        results = backend.produce([Record(topic=topic, value=b"2")], [0],
                                  3)
        failed_in = time.monotonic() - started
        started = time.monotonic()
        backend.close(2.0)
        closed_in = time.monotonic() - started
    finally:
        ticker.stop()
        broker.stop()
    assert results[0] is not None and results[0].retriable
    assert failed_in < 4
    assert closed_in < 4
    assert ticker.worst < MAX_STALL_S, \
        f"the hub stalled for {ticker.worst:.3f} s"
