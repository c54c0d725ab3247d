"""Checks that a transport never blocks the eventlet hub, and where oslo's
functional harness finds its broker.

A :class:`Ticker` greenthread wakes every 10 ms and records its worst
lateness; :func:`green_round_trip` runs a listener and 16 green senders
over a transport while one ticks. If any call blocked the hub (a real
socket wait, a real lock), the ticker would stall for as long.
"""

import os
import time

import eventlet
import oslo_messaging

MAX_STALL_S = 0.5

#: Where oslo's functional harness reads its transport URLs.
VARIABLES = ("NOTIFY_TRANSPORT_URL", "RPC_TRANSPORT_URL")


def set_transport_urls(url):
    """Point :data:`VARIABLES` at ``url``; returns the function that
    restores them as they were (for ``addCleanup`` or a ``finally``)."""
    saved = {name: os.environ.get(name) for name in VARIABLES}
    os.environ.update(dict.fromkeys(VARIABLES, url))

    def restore():
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore


class Ticker:
    def __init__(self):
        self.worst = 0.0
        self._running = True
        self._thread = eventlet.spawn(self._run)

    def _run(self):
        last = time.monotonic()
        while self._running:
            eventlet.sleep(0.01)
            now = time.monotonic()
            self.worst = max(self.worst, now - last - 0.01)
            last = now

    def stop(self):
        self._running = False
        self._thread.wait()


class Endpoint:
    def __init__(self):
        self.seen = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append(payload)


def green_round_trip(transport, count=200, topic="green"):
    """Listen with the eventlet executor and send ``count`` notifications
    from green senders; returns ``(payloads seen, worst hub stall)``."""
    endpoint = Endpoint()
    ticker = Ticker()
    try:
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [endpoint],
            executor="eventlet", pool=topic)
        server.start()
        notifier = oslo_messaging.Notifier(transport, topic,
                                           driver="messaging",
                                           topics=[topic])
        pool = eventlet.GreenPool(16)
        for seq in range(count):
            pool.spawn_n(notifier.info, {}, "green.event", seq)
        pool.waitall()
        deadline = time.monotonic() + 15
        while len(endpoint.seen) < count and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        server.stop()
        server.wait()
    finally:
        ticker.stop()
        transport.cleanup()
    return endpoint.seen, ticker.worst
