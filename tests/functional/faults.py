"""Helpers shared by the fault tests of every backend."""

import queue
import threading
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg


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


def send_through_a_restart(broker, url):
    """retry=0 fails once the broker is gone; a forever-retrying send made
    while it is down returns once the broker is back on the same address;
    the next send goes through at once. ``broker`` is a started
    ``restartable_broker``, ``url`` the transport URL of the backend under
    test."""
    topic = f"back{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    try:
        transport._send_notification(target(topic), {}, message(1),
                                     version=2.0, retry=0)
        broker.kill()
        with pytest.raises(oslo_messaging.MessageDeliveryFailure):
            transport._send_notification(target(topic), {}, message(2),
                                         version=2.0, retry=0)
        timer = threading.Timer(1.0, broker.start_again)
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
