"""Helpers shared by the fault tests of every backend."""

import queue
import threading
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.embedded import EmbeddedBroker


class Endpoint:
    """Notification endpoint queueing the payloads it receives."""

    def __init__(self):
        self.seen = queue.Queue()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.put(payload)


def conf():
    """A fresh, parsed configuration."""
    found = cfg.ConfigOpts()
    found([])
    return found


def target(topic):
    """Where oslo's Notifier sends ``info`` notifications of ``topic``."""
    return oslo_messaging.Target(topic=f"{topic}.info")


def message(payload):
    """A notification as the Notifier hands it to the transport."""
    return {"publisher_id": "faults", "event_type": "fault.test",
            "payload": payload, "priority": "INFO"}


def send_through_a_restart(url_of):
    """retry=0 fails once the broker is gone; a forever-retrying send made
    while it is down returns once a broker is back on the same port; the
    next send goes through at once. ``url_of(broker)`` is the transport
    URL of the backend under test."""
    broker = EmbeddedBroker().start()
    restarted = EmbeddedBroker(port=broker.port)
    topic = f"back{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(
        conf(), url=url_of(broker))
    try:
        transport._send_notification(target(topic), {}, message(1),
                                     version=2.0, retry=0)
        broker.stop(kill=True)
        with pytest.raises(oslo_messaging.MessageDeliveryFailure):
            transport._send_notification(target(topic), {}, message(2),
                                         version=2.0, retry=0)
        timer = threading.Timer(1.0, restarted.start)
        timer.start()
        started = time.monotonic()
        transport._send_notification(target(topic), {}, message(3),
                                     version=2.0, retry=None)
        assert time.monotonic() - started >= 0.9
        timer.join()
        transport._send_notification(target(topic), {}, message(4),
                                     version=2.0, retry=0)
    finally:
        transport.cleanup()
        broker.stop()
        restarted.stop()
