"""Read a row's notifications back with oslo notification listeners.

Both of oslo's listener styles, with the threading executor: plain
(``get_notification_listener``, one notification per endpoint call) and
batch (``get_batch_notification_listener``). Each listener reads every
notification of the row, in a pool (consumer group, or queue) of its own.
A wait is bounded: a listener that receives nothing new for ``wait_s``
seconds is given up on, and the result says so. Payloads that carry their
send time (``"sent_at"``, see :func:`notifbus.bench.clients.payload_maker`)
give the latency from send to dispatch.
"""

import threading
import time

from notifbus.bench import stats

BATCH_SIZE = 500
BATCH_TIMEOUT_S = 0.1
MODES = ("plain", "batch")
#: seconds between two probes while waiting for a listener to be assigned
PROBE_EVERY_S = 0.2


class Collector:
    """Endpoint of a plain listener: counts sequence numbers in
    ``range(count)``; a probe (sequence -1, as the warm-up notification)
    only sets ``probed``. ``delays_s``: seconds from send to dispatch of
    the payloads that carry ``sent_at``."""

    def __init__(self, count):
        self.count = count
        self.seen = set()
        self.received = 0
        self.last_at = None
        self.delays_s = []
        self.complete = threading.Event()
        self.probed = threading.Event()
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.add([payload])

    def add(self, payloads):
        now = time.time()
        with self._lock:
            for payload in payloads:
                seq = payload.get("seq") if isinstance(payload, dict) \
                    else None
                if seq == -1:
                    self.probed.set()
                if isinstance(seq, int) and 0 <= seq < self.count:
                    self.received += 1
                    self.seen.add(seq)
                    sent_at = payload.get("sent_at")
                    if isinstance(sent_at, float):
                        self.delays_s.append(now - sent_at)
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
              publish=None, probe=None, on_start=None):
    """Start a ``mode`` listener, wait for ``count`` notifications, stop
    it; returns what it received, as a dict (``latency`` in ms, from
    the payloads that carry their send time).

    Without ``publish``, the notifications are already on the broker and
    the rate runs from the listener's start (once ``start()`` returned) to
    the last notification. With ``publish``, a callable run once the
    listener started, the rate runs from the start of that publishing
    (end to end), after the probes. ``probe``, if given, is called every
    :data:`PROBE_EVERY_S` from a thread of its own, from before the
    listener's start until it received a probe (sequence -1) or ``wait_s``
    passed, and ``publish`` runs only then: a consumer that starts at the
    latest offset misses none of what ``publish`` sends (and oslo's
    ``kafka://`` listener, whose start polls for up to 5 s, starts as soon
    as it receives).
    """
    collector = (BatchCollector if mode == "batch" else Collector)(count)
    server = new_listener(transport, topic, mode, collector, pool)
    prober = None if probe is None else Prober(collector, probe)
    began = time.monotonic()
    try:
        server.start()
    except BaseException:
        if prober is not None:
            prober.stop()
        raise
    started = time.monotonic()
    if on_start is not None:
        on_start(lambda: len(collector.seen))
    note = None
    quiet_from = rate_from = started
    try:
        if prober is not None:
            note = prober.wait(min(began + wait_s, deadline))
        if publish is not None:
            rate_from = time.monotonic()
            publish()
            quiet_from = time.monotonic()
        while not collector.complete.wait(0.05):
            now = time.monotonic()
            quiet_since = max(collector.last_at or quiet_from, quiet_from)
            if now - quiet_since > wait_s:
                note = _joined(note, f"no delivery within {wait_s:.0f} s"
                               if collector.last_at is None else
                               f"nothing new for {wait_s:.0f} s")
                break
            if now > deadline:
                note = _joined(note, "row time limit reached while "
                                     "consuming")
                break
    finally:
        server.stop()
        server.wait()
    unique = len(collector.seen)
    seconds = (collector.last_at - rate_from
               if collector.last_at is not None else None)
    return {
        "mode": mode, "pool": pool, "received": collector.received,
        "unique": unique, "lost": count - unique,
        "duplicates": collector.received - unique,
        "start_s": started - began, "seconds": seconds,
        "msgs_per_s": (unique / seconds if unique and seconds
                       and seconds > 0 else None),
        "end_to_end": publish is not None, "note": note,
        "latency": (stats.latency_summary_ms(collector.delays_s)
                    if collector.delays_s else None)}


class Prober:
    """Calls ``probe()`` every :data:`PROBE_EVERY_S`, in a thread of its
    own started at once, until ``collector`` received a probe or
    :meth:`stop`."""

    def __init__(self, collector, probe):
        self.collector = collector
        self.probe = probe
        self.error = None
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="bench-probe")
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                self.probe()
                if self.collector.probed.wait(PROBE_EVERY_S):
                    return
        except Exception as exc:  # noqa: BLE001 - wait() reports it
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, until):
        """Wait until a probe was received, or the monotonic time
        ``until``; ``None``, or a note saying why none was."""
        received = self.collector.probed.wait(
            max(until - time.monotonic(), 0))
        self.stop()
        if received:
            return None
        if self.error:
            return f"probing failed: {self.error}"
        return (f"no probe received within "
                f"{time.monotonic() - self.started:.0f} s")

    def stop(self):
        self._stop.set()
        self._thread.join()


def _joined(first, second):
    return second if first is None else f"{first}; {second}"
