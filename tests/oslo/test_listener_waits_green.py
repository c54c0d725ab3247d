"""Under eventlet, a listener that waits for its broker leaves the hub
running: its start returns, its member's attempts to join (a thread of
its own, green here) and its polls wait cooperatively, and it stops at
once. Then the broker comes up and the listener receives."""

import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.embedded import EmbeddedBroker, free_port
from tests.functional import natsserver
from tests.oslo.hub import MAX_STALL_S, Endpoint, Ticker


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


class Tansu:
    """The embedded broker, on a port chosen before it starts."""

    def __init__(self):
        self.port = free_port()
        self._broker = None

    def url(self, backend):
        return (f"notifbus+{backend}://127.0.0.1:{self.port}/"
                f"?broker_quirks=tansu&bootstrap_timeout_ms=1000"
                f"&session_timeout_ms=1000&heartbeat_interval_ms=200"
                f"&retry_backoff_max_ms=1000")

    def start(self):
        self._broker = EmbeddedBroker(port=self.port).start()

    def stop(self):
        if self._broker is not None:
            self._broker.stop()


class Nats:
    def __init__(self):
        self.server = natsserver.NatsServer()

    def url(self, backend):
        return natsserver.url("green", self.server.address,
                              connect_timeout_s=1, retry_backoff_max_ms=1000)

    def start(self):
        self.server.start()

    def stop(self):
        self.server.stop()


BROKERS = {"kafka": Tansu, "rdkafka": Tansu, "nats": Nats}


@pytest.mark.parametrize("backend", sorted(BROKERS))
def test_listener_waiting_for_the_broker_does_not_block_the_hub(backend):
    broker = BROKERS[backend]()
    topic = f"waits{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(
        _conf(), url=broker.url(backend))
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="eventlet", pool=topic)
    ticker = Ticker()
    try:
        started = time.monotonic()
        server.start()
        assert time.monotonic() - started < 5
        time.sleep(1.5)  # failed attempts to join, polls
        broker.start()
        notifier = oslo_messaging.Notifier(transport, topic,
                                           driver="messaging",
                                           topics=[topic], retry=-1)
        notifier.info({}, "green.event", 1)
        deadline = time.monotonic() + 30
        while not endpoint.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert endpoint.seen == [1]
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        ticker.stop()
        broker.stop()
    assert ticker.worst < MAX_STALL_S, \
        f"the hub stalled for {ticker.worst:.3f} s"
