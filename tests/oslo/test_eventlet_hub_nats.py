"""The NATS backend under eventlet: nats-py runs on its own OS thread and
green callers wait for it without blocking the hub.

Here: the loop thread itself. The green round trip, and a send and close
once the server is gone, run on every backend in test_eventlet_hub.py.
"""

from notifbus import loop_thread


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
