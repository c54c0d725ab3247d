"""Read a row's notifications back with oslo notification listeners.

Both of oslo's listener styles, with the threading executor: plain
(``get_notification_listener``, one notification per endpoint call) and
batch (``get_batch_notification_listener``). Each listener reads every
notification of the row, in a pool (consumer group, or queue) of its own.
A wait is bounded: a listener that receives nothing new for ``wait_s``
seconds is given up on, and the result says so.
"""

import threading
import time

BATCH_SIZE = 500
BATCH_TIMEOUT_S = 0.1
MODES = ("plain", "batch")


class Collector:
    """Endpoint of a plain listener: counts sequence numbers in
    ``range(count)`` (the warm-up notification, -1, is ignored)."""

    def __init__(self, count):
        self.count = count
        self.seen = set()
        self.received = 0
        self.last_at = None
        self.complete = threading.Event()
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.add([payload])

    def add(self, payloads):
        with self._lock:
            for payload in payloads:
                seq = payload.get("seq") if isinstance(payload, dict) \
                    else None
                if isinstance(seq, int) and 0 <= seq < self.count:
                    self.received += 1
                    self.seen.add(seq)
            self.last_at = time.monotonic()
            if len(self.seen) >= self.count:
                self.complete.set()


class BatchCollector(Collector):
    """Endpoint of a batch listener."""

    def info(self, messages):
        self.add([message.get("payload") for message in messages])


def new_listener(transport, topic, mode, collector, pool):
    import oslo_messaging

    targets = [oslo_messaging.Target(topic=topic)]
    if mode == "batch":
        return oslo_messaging.get_batch_notification_listener(
            transport, targets, [collector], executor="threading",
            pool=pool, batch_size=BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_S)
    return oslo_messaging.get_notification_listener(
        transport, targets, [collector], executor="threading", pool=pool)


def declare_pool(transport, topic, pool):
    """Start and stop a listener in ``pool``, so that a broker that
    routes to queues (RabbitMQ) has the pool's queue before publishing."""
    server = new_listener(transport, topic, "batch", BatchCollector(0), pool)
    server.start()
    server.stop()
    server.wait()


def read_back(transport, topic, mode, count, pool, *, wait_s, deadline,
              publish=None, on_start=None):
    """Start a ``mode`` listener, wait for ``count`` notifications, stop
    it; returns what it received, as a dict.

    Without ``publish``, the notifications are already on the broker and
    the rate runs from the listener's start (once ``start()`` returned) to
    the last notification. With ``publish``, a callable run once the
    listener started, the rate runs from the start of that publishing
    (end to end).
    """
    collector = (BatchCollector if mode == "batch" else Collector)(count)
    server = new_listener(transport, topic, mode, collector, pool)
    began = time.monotonic()
    server.start()
    started = time.monotonic()
    if on_start is not None:
        on_start(lambda: len(collector.seen))
    note = None
    quiet_from = started
    try:
        if publish is not None:
            publish()
            quiet_from = time.monotonic()
        while not collector.complete.wait(0.05):
            now = time.monotonic()
            quiet_since = max(collector.last_at or quiet_from, quiet_from)
            if now - quiet_since > wait_s:
                note = (f"no delivery within {wait_s:.0f} s"
                        if collector.last_at is None else
                        f"nothing new for {wait_s:.0f} s")
                break
            if now > deadline:
                note = "row time limit reached while consuming"
                break
    finally:
        server.stop()
        server.wait()
    unique = len(collector.seen)
    seconds = (collector.last_at - started
               if collector.last_at is not None else None)
    return {
        "mode": mode, "pool": pool, "received": collector.received,
        "unique": unique, "lost": count - unique,
        "duplicates": collector.received - unique,
        "start_s": started - began, "seconds": seconds,
        "msgs_per_s": (unique / seconds if unique and seconds
                       and seconds > 0 else None),
        "end_to_end": publish is not None, "note": note}
