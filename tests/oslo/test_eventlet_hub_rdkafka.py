"""The rdkafka backend under eventlet: librdkafka blocks in C, so its waits
run in eventlet's native thread pool or poll without waiting, and the hub
keeps running.

Here: a send to a broker that is gone, and the close after it, with a
ticker greenthread that would stall if any wait blocked the hub. The green
round trip runs on every backend in test_eventlet_hub.py.
"""

import time
import uuid

import pytest
from oslo_config import cfg

from notifbus import settings
from notifbus.embedded import EmbeddedBroker
from notifbus.record import Record
from notifbus.testing.kafka import KafkaCluster
from tests.oslo.hub import MAX_STALL_S, Ticker

#: A broker of its own for each kind, which the test kills.
BROKERS = {"apache-kafka": KafkaCluster, "tansu": EmbeddedBroker}


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


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
