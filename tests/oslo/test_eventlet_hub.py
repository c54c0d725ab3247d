"""The driver under eventlet: green senders and listeners, hub never blocked.

A ticker greenthread wakes every 10 ms while a listener joins its group,
green senders publish and the listener consumes; if any call blocked the
hub (a real socket wait, a real lock), the ticker would stall for as long.
"""

import os
import time

import eventlet
import oslo_messaging
from eventlet import patcher
from oslo_config import cfg

from notifbus import opts

MAX_STALL_S = 0.5


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


def test_process_is_patched():
    assert patcher.is_monkey_patched("thread")
    assert patcher.is_monkey_patched("socket")


def test_green_send_and_listen_do_not_block_the_hub():
    conf = cfg.ConfigOpts()
    conf([])
    opts.register_opts(conf)
    conf.set_override("session_timeout_ms", 1000, group="notifbus_kafka")
    conf.set_override("heartbeat_interval_ms", 100, group="notifbus_kafka")
    url = os.environ["NOTIFY_TRANSPORT_URL"]
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    endpoint = Endpoint()
    ticker = Ticker()
    try:
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic="green")], [endpoint],
            executor="eventlet", pool="green")
        server.start()
        notifier = oslo_messaging.Notifier(transport, "green",
                                           driver="messaging",
                                           topics=["green"])
        pool = eventlet.GreenPool(16)
        for seq in range(200):
            pool.spawn_n(notifier.info, {}, "green.event", seq)
        pool.waitall()
        deadline = time.monotonic() + 15
        while len(endpoint.seen) < 200 and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        server.stop()
        server.wait()
    finally:
        ticker.stop()
        transport.cleanup()
    assert sorted(endpoint.seen) == list(range(200))
    assert ticker.worst < MAX_STALL_S, (
        f"the hub stalled for {ticker.worst:.3f} s")
