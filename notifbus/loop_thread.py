"""An asyncio event loop on a dedicated OS thread, for asyncio clients.

Backends whose client library is asyncio (nats-py) run all of its
coroutines on one :class:`LoopThread` and call them from ordinary code with
:meth:`LoopThread.run`, which blocks the caller only:

- in a plain process, the caller's thread waits on a real
  :class:`threading.Event`;
- in a process that eventlet monkey-patched (``thread`` patched), the wait
  runs in eventlet's native thread pool (:func:`eventlet.tpool.execute`),
  so the calling green thread yields and the hub keeps running.

The loop thread is a real OS thread even under eventlet
(``eventlet.patcher.original('threading')``), its selector is the
unpatched one, and host names are resolved with the unpatched
``socket.getaddrinfo`` in a real thread. Nothing that eventlet greened
(locks, logging handlers, queues) is touched from the loop thread: a green
lock contended across OS threads never wakes its waiter. Coroutines report
through :meth:`LoopThread.note` instead of logging; the notes are logged by
the caller's thread after its next :meth:`~LoopThread.run`.
"""

import asyncio
import importlib.util
import logging
import selectors
import sys
import threading
import time

from notifbus.deferred_log import DeferredLog

LOG = logging.getLogger(__name__)


def green():
    """Whether eventlet has monkey-patched threads in this process."""
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher and patcher.is_monkey_patched("thread"))


def original(name):
    """Module ``name`` as it is without eventlet's patches."""
    if green():
        return sys.modules["eventlet.patcher"].original(name)
    return sys.modules.get(name) or __import__(name)


_real_selectors = None


def _selector():
    """A selector on the real ``select`` module: eventlet's green one
    needs the hub of the thread that calls it, and eventlet removed the
    epoll selector from ``selectors``."""
    global _real_selectors
    if not green():
        return selectors.DefaultSelector()
    if _real_selectors is None:
        spec = importlib.util.find_spec("selectors")
        module = importlib.util.module_from_spec(spec)
        patched = sys.modules["select"]
        sys.modules["select"] = original("select")
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules["select"] = patched
        _real_selectors = module
    return _real_selectors.DefaultSelector()


def blocking(function, *args):
    """Call ``function(*args)``, which blocks on real OS primitives, without
    blocking eventlet's hub: in its native thread pool when eventlet
    patched threads, else directly."""
    if green():
        from eventlet import tpool

        return tpool.execute(function, *args)
    return function(*args)


#: Loggers of the libraries that run on loop threads.
LIBRARY_LOGGERS = ("asyncio", "nats.aio.client")
#: Library warnings that are noise here, noted at debug level: asyncio's
#: when a server closes a stream that nats-py upgraded to TLS.
_NOISE = ("returning true from eof_received() has no effect when using "
          "ssl",)


class _Diversion(logging.Filter):
    """Keeps records logged on a loop thread away from the handlers (their
    locks are green under eventlet) and hands them to the loop's notes."""

    def __init__(self):
        super().__init__()
        self.loops = {}

    def filter(self, record):
        loop = self.loops.get(original("threading").get_ident())
        if loop is None:
            return True
        message = record.getMessage()
        loop.note(logging.DEBUG if message in _NOISE else record.levelno,
                  "%s: %s", record.name, message)
        return False


_diversion = _Diversion()
for _name in LIBRARY_LOGGERS:
    logging.getLogger(_name).addFilter(_diversion)


class LoopClosed(RuntimeError):
    """The loop thread was stopped; nothing more can run on it."""


class _Loop(asyncio.SelectorEventLoop):
    """A selector loop that resolves names in a real thread with the
    unpatched resolver (eventlet's green resolver needs the hub of the
    thread that calls it)."""

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0,
                          flags=0):
        resolve = original("socket").getaddrinfo
        future = self.create_future()

        def run():
            try:
                result = resolve(host, port, family, type, proto, flags)
            except BaseException as exc:  # noqa: BLE001 - handed over
                self.call_soon_threadsafe(_settle, future, None, exc)
            else:
                self.call_soon_threadsafe(_settle, future, result, None)

        original("threading").Thread(target=run, name="notifbus-resolve",
                                     daemon=True).start()
        return await future


def _settle(future, result, exc):
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class _Call:
    """The outcome of one coroutine, waited for with a real event."""

    def __init__(self, event):
        self.event = event
        self.task = None
        self.result = None
        self.error = None

    def finish(self, task):
        if task.cancelled():
            self.error = asyncio.CancelledError()
        elif task.exception() is not None:
            self.error = task.exception()
        else:
            self.result = task.result()
        self.event.set()


class LoopThread:
    """One event loop, run by one daemon OS thread, started on first use.

    :param name: thread name, for debugging.
    """

    def __init__(self, name="notifbus-loop"):
        self.name = name
        self.notes = DeferredLog()
        self._loop = None
        self._thread = None
        self._closed = False
        self._start_lock = threading.Lock()

    @property
    def loop(self):
        """The running loop, starting the thread if needed."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._start_lock:
            if self._closed:
                raise LoopClosed(f"{self.name} is closed")
            if self._loop is None:
                self._start()
            return self._loop

    def _start(self):
        real = original("threading")
        ready = real.Event()
        holder = {}

        def main():
            _diversion.loops[real.get_ident()] = self
            loop = _Loop(_selector())
            loop.set_exception_handler(self._exception_handler)
            holder["loop"] = loop
            ready.set()
            try:
                loop.run_forever()
            finally:
                _cancel_all(loop)
                loop.close()
                _diversion.loops.pop(real.get_ident(), None)

        thread = real.Thread(target=main, name=self.name, daemon=True)
        thread.start()
        blocking(ready.wait)
        self._thread = thread
        self._loop = holder["loop"]

    def _exception_handler(self, loop, context):
        self.note(logging.WARNING, "%s: %s", self.name,
                  context.get("exception") or context.get("message"))

    def note(self, level, message, *args):
        """Record a log line from the loop thread; it is logged by the next
        caller of :meth:`run` (or :meth:`flush_notes`)."""
        self.notes.note(level, message, *args)

    def flush_notes(self, logger=LOG):
        """Log what the loop thread noted, on the caller's thread."""
        self.notes.flush(logger)

    def submit(self, coro):
        """Schedule ``coro`` on the loop; return a handle for :meth:`wait`.
        """
        try:
            loop = self.loop
        except LoopClosed:
            coro.close()
            raise
        call = _Call(original("threading").Event())

        def start():
            call.task = loop.create_task(coro)
            call.task.add_done_callback(call.finish)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError as exc:  # the loop stopped meanwhile
            coro.close()
            raise LoopClosed(f"{self.name} is closed") from exc
        return call

    def wait(self, call, timeout):
        """The result of a :meth:`submit` handle, raising what the
        coroutine raised.

        :raises TimeoutError: not done within ``timeout`` seconds; the
            coroutine is cancelled.
        """
        done = blocking(call.event.wait, timeout)
        self.flush_notes()
        if not done:
            self._cancel(call)
            raise TimeoutError(f"{self.name}: no result within "
                               f"{timeout:.1f} s")
        if call.error is not None:
            raise call.error
        return call.result

    def run(self, coro, timeout):
        """Run ``coro`` on the loop and return its result; see
        :meth:`wait`."""
        return self.wait(self.submit(coro), timeout)

    def call_soon(self, callback, *args):
        """Run ``callback(*args)`` on the loop thread, without waiting.
        Ignored once the loop is closed."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass

    def _cancel(self, call):
        def cancel():
            if call.task is not None:
                call.task.cancel()

        self.call_soon(cancel)

    def close(self, timeout=5.0, shutdown=None):
        """Run ``shutdown()`` (a coroutine function) if given, then stop
        the loop and its thread, within about ``timeout`` seconds in all.

        A thread that does not stop in time (a coroutine that ignores
        cancellation) is left behind as a daemon and reported.
        """
        deadline = time.monotonic() + timeout
        with self._start_lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None:
            return
        if shutdown is not None:
            try:
                self.run(shutdown(), max(timeout * 0.8, 0.1))
            except Exception as exc:  # noqa: BLE001 - closing goes on
                LOG.warning("%s: shutdown did not finish cleanly: %r",
                            self.name, exc)
        self.call_soon(loop.stop)
        left = max(deadline - time.monotonic(), 0.1)
        blocking(thread.join, left)
        self.flush_notes()
        if thread.is_alive():
            LOG.warning("%s: the loop thread did not stop within %.1f s; "
                        "it is left behind (daemon)", self.name, timeout)
        else:
            self._loop = None


def _cancel_all(loop):
    """Cancel the tasks left on a stopped loop and let them unwind."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
