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


def send_through_a_restart(url, stop, start, listen=False):
    """retry=0 fails once the server is gone; a forever-retrying send made
    while it is down returns once the server is back on the same address;
    the next send goes through at once. ``url`` is the transport URL of the
    backend under test, ``stop`` and ``start`` stop its server and start it
    again on its store. With ``listen``, a listener started before the
    outage, which keeps polling through it, gets the sends before and after
    it."""
    topic = f"back{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    listener = None
    try:
        if listen:
            endpoint = Endpoint()
            listener = oslo_messaging.get_notification_listener(
                transport, [oslo_messaging.Target(topic=topic)], [endpoint],
                executor="threading", pool="back")
            listener.start()
        transport._send_notification(target(topic), {}, message(1),
                                     version=2.0, retry=0)
        if listen:
            assert endpoint.seen.get(timeout=10) == 1
        stop()
        with pytest.raises(oslo_messaging.MessageDeliveryFailure):
            transport._send_notification(target(topic), {}, message(2),
                                         version=2.0, retry=0)
        timer = threading.Timer(1.0, start)
        timer.start()
        started = time.monotonic()
        transport._send_notification(target(topic), {}, message(3),
                                     version=2.0, retry=None)
        assert time.monotonic() - started >= 0.9
        timer.join()
        transport._send_notification(target(topic), {}, message(4),
                                     version=2.0, retry=0)
        if listen:
            got = set()
            deadline = time.monotonic() + 15
            while not {3, 4} <= got and time.monotonic() < deadline:
                try:
                    got.add(endpoint.seen.get(timeout=0.5))
                except queue.Empty:
                    pass
            assert {3, 4} <= got
    finally:
        if listener is not None:
            listener.stop()
            listener.wait()
        transport.cleanup()
