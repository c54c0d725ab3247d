"""Bounded waits on a client library's blocking calls, without blocking
eventlet's hub.

librdkafka works on native threads of its own and blocks in C. These
helpers wait for it on real OS primitives (``eventlet.patcher.original``),
through :func:`notifbus.loop_thread.blocking`, which runs the wait in
eventlet's native thread pool when the process is monkey-patched.
kafka-python is pure Python: under eventlet its sockets are green, so it
is closed on a green thread (:func:`close_within` with ``native=False``).
"""

import logging
import threading

from notifbus.loop_thread import blocking, original

LOG = logging.getLogger(__name__)


def wait_future(future, timeout):
    """The result of a ``concurrent.futures.Future`` that librdkafka's
    background thread settles, without blocking eventlet's hub.

    Under eventlet the future's lock is green and librdkafka settles it
    from a native thread, where a green wait would never wake: the wait is
    on a real event instead, set by a done callback. The green lock is
    only taken briefly, by ``add_done_callback`` right after the request
    was sent and by librdkafka when the answer arrives a round trip later,
    so the two do not meet.
    """
    done = original("threading").Event()
    future.add_done_callback(lambda _: done.set())
    if not blocking(done.wait, timeout):
        raise TimeoutError(f"no result within {timeout:.1f} s")
    return future.result(0)


def close_within(close, timeout, what, native=True):
    """Run ``close`` and return within about ``timeout`` seconds; a close
    that takes longer goes on in the background, with a warning naming
    ``what``. A close that raises is logged, never raised: closing must
    not fail the caller.

    A client's close may wait for a broker that is gone: librdkafka's for
    its own timeouts, kafka-python's for a request timeout when the broker
    vanished mid-request.

    :param native: run ``close`` on a native thread (librdkafka, which
        blocks in C), else on a thread of the ``threading`` module as it is
        (a green thread under eventlet: kafka-python's sockets are green).
    """
    module = original("threading") if native else threading
    outcome = {}
    done = module.Event()

    def run():
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            outcome["error"] = exc
        finally:
            done.set()

    module.Thread(target=run, name="notifbus-close", daemon=True).start()
    finished = (blocking(done.wait, timeout + 0.5) if native
                else done.wait(timeout + 0.5))
    if not finished:
        LOG.warning("notifbus: closing %s did not finish within %.1f s; "
                    "it goes on in the background", what, timeout)
    elif "error" in outcome:
        LOG.warning("notifbus: closing %s failed: %r", what,
                    outcome["error"])


def run_within(function, timeout):
    """``function()`` on a native thread, waited for at most ``timeout``
    seconds without blocking eventlet's hub.

    :raises TimeoutError: it did not return in time; it goes on in the
        background.
    """
    real = original("threading")
    outcome = {}
    done = real.Event()

    def run():
        try:
            outcome["result"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed over
            outcome["error"] = exc
        finally:
            done.set()

    real.Thread(target=run, name="notifbus-call", daemon=True).start()
    if not blocking(done.wait, timeout):
        raise TimeoutError(f"no answer within {timeout:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
