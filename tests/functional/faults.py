"""Helpers shared by the fault tests of every backend."""

import queue

import oslo_messaging
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
