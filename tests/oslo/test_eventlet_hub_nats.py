"""The NATS backend under eventlet: nats-py runs on its own OS thread and
green callers wait for it without blocking the hub.

Here: the loop thread itself, and a close once the server is gone, with a
ticker greenthread that would stall if any wait blocked the hub. The green
round trip runs on every backend in test_eventlet_hub.py.
"""

import time

from notifbus import loop_thread
from tests.functional import natsserver
from tests.oslo.hub import MAX_STALL_S, Ticker


def test_loop_runs_on_a_real_thread_with_a_real_selector():
    assert loop_thread.green()
    real = loop_thread.original("threading")

    async def where():
        return real.get_native_id()

    runner = loop_thread.LoopThread("test-loop")
    try:
        assert runner.run(where(), 5) != real.get_native_id()
        assert type(runner.loop._selector).__name__ != "SelectSelector"
    finally:
        runner.close(2)
    assert not runner._thread.is_alive()


def test_close_is_bounded_when_the_server_is_gone():
    """A backend whose server vanished closes its loop thread in time,
    and a green caller waiting on it meanwhile does not stall the hub."""
    server = natsserver.NatsServer().start()
    backend = natsserver.NatsBackend([("127.0.0.1", server.port)],
                          {"stream_prefix": "gone", "connect_timeout_s": 1})
    ticker = Ticker()
    try:
        assert backend.ensure_topic("t", 2, 5) == 2
        server.stop()
        started = time.monotonic()
        backend.close(2.0)
        closed_in = time.monotonic() - started
    finally:
        ticker.stop()
        server.stop()
    assert closed_in < 4
    assert not backend._loop._thread.is_alive()
    assert ticker.worst < MAX_STALL_S
