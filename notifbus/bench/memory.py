"""``notifbus bench --memory``: the RSS of a row's process while it
publishes a long run, and while the broker is stalled.

Two runs per row, each in a child process of its own (modes of
:mod:`notifbus.bench.worker`):

- ``memory-long`` publishes ``count`` notifications (a million by
  default) and samples the process's current RSS (``/proc/self/statm``)
  every 5 % of the sends; the row reports the RSS at 10 %, 50 % and 100 %
  and the growth from 10 % to 100 %, which stays small, whatever the
  count, when nothing accumulates per notification.
- ``memory-stall`` publishes ``stall_count`` notifications and, once a
  tenth of them are sent, stops the broker (SIGSTOP to its process
  group) for ``stall_s`` seconds, sampling the RSS and how many
  notifications are sent but not yet acknowledged; then continues the
  broker (SIGCONT) and waits until every notification is acknowledged.
  In ``buffered`` mode the senders fill the buffer up to its bound
  (``max_buffer_records``, ``max_buffer_bytes``) and then wait (oslo's
  default ``retry=None`` waits as long as it takes); in ``confirmed``
  mode each sender waits for its notification.

Both then read the notifications back with one batch listener and count
what was lost or received twice. The senders here keep no per-send
latency, so that the bench itself holds nothing per notification.
"""

import os
import signal
import sys
import threading
import time
import traceback

from notifbus.bench import clients, listeners, stats
from notifbus.bench.results import (
    ConsumeResult,
    MemoryResult,
    MemoryRuns,
    RssSummary,
)

#: memory mode rows: the notifbus Kafka rows, whose counters say what was
#: acknowledged
KINDS = ("notifbus-confirmed", "notifbus-buffered")
#: RSS reported at these shares of the sends (percent)
MARKS = (10, 50, 100)
SAMPLE_STEP = 5
#: the stall starts once this share of the notifications was sent
STALL_AT = 0.1
STALL_SAMPLE_S = 0.1
MB = 1024.0 * 1024.0

try:
    PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # not a POSIX system
    PAGE_BYTES = 4096


def rss_mb(path="/proc/self/statm"):
    """Current resident set size of this process, in MB (not the peak);
    ``None`` where ``/proc`` is missing."""
    try:
        with open(path) as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES / MB
    except (OSError, IndexError, ValueError):
        return None


class BoundedTarget(clients.NotifbusTarget):
    """A notifbus row whose URL also sets the buffer's bounds, when the
    bench was given them."""

    OPTIONS = ("max_buffer_records", "max_buffer_bytes")

    def query(self, listener=False):
        query = super().query(listener)
        if not listener:
            for key in self.OPTIONS:
                if self.spec.get(key):
                    query[key] = self.spec[key]
        return query


def make_target(spec):
    kind = spec["row"]["kind"]
    if kind not in KINDS:
        raise ValueError(f"the memory runs take the rows "
                         f"{', '.join(KINDS)}, not {kind!r}")
    return BoundedTarget(spec, kind.split("-", 1)[1])


class Senders:
    """``senders`` threads that send ``range(count)`` in contiguous blocks,
    counting sends without keeping anything per send."""

    def __init__(self, send, count, senders, deadline=None):
        from notifbus.bench.senders import blocks

        self._send = send
        self._ranges = blocks(count, senders)
        self._done = [0] * senders
        self._deadline = deadline
        self.errors = []
        self.stopped_at_deadline = False
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,),
                                          name=f"bench-sender-{i}",
                                          daemon=True)
                         for i in range(senders)]
        self.started = self.ended = None

    def done(self):
        """Sends that returned so far."""
        return sum(self._done)

    def _run(self, index):
        send, done, deadline = self._send, self._done, self._deadline
        for seq in self._ranges[index]:
            if self._stop.is_set():
                return
            if deadline is not None and time.monotonic() > deadline:
                self.stopped_at_deadline = True
                self._stop.set()
                return
            try:
                send(seq)
            except Exception as exc:  # noqa: BLE001 - reported in the row
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.set()
                return
            done[index] += 1

    def start(self):
        self.started = time.perf_counter()
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout=None):
        """``True`` once every sender is done."""
        until = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if until is None else max(until - time.monotonic(),
                                                  0)
            thread.join(left)
            if thread.is_alive():
                return False
        if self.ended is None:
            self.ended = time.perf_counter()
        return True

    def stop(self):
        self._stop.set()


class Sampler:
    """Samples the RSS in the background: at every ``step`` percent of
    the sends ``[percent, sent, MB, held]`` (``held``: notifications sent
    and not yet acknowledged, from ``held()``), and the largest RSS
    seen."""

    def __init__(self, total, done, step=SAMPLE_STEP, interval_s=0.02,
                 held=None):
        self.total = total
        self.done = done
        self.held = held or (lambda: None)
        self.step = step
        self.interval_s = interval_s
        self.samples = []
        self.max_mb = 0.0
        self._next = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="bench-rss-sampler")

    def start(self):
        self._thread.start()
        return self

    def sample(self):
        sent = self.done()
        mb = rss_mb()
        if mb is not None:
            self.max_mb = max(self.max_mb, mb)
        share = 100.0 * sent / self.total if self.total else 100.0
        held = self.held() if self._next <= share + 1e-9 else None
        while self._next <= share + 1e-9 and self._next <= 100:
            self.samples.append([self._next, sent, mb, held])
            self._next += self.step

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self):
        self._stop.set()
        self._thread.join(1.0)
        self.sample()


def at_mark(samples, percent, index=2):
    """RSS (MB), or with ``index=3`` what was held, of the first sample
    at or past ``percent``."""
    for sample in samples:
        if sample[0] >= percent:
            return sample[index] if len(sample) > index else None
    return None


def long_summary(samples, flushed_mb, max_mb):
    """The RSS figures of a long run, from its samples."""
    summary = {f"p{mark}_mb": at_mark(samples, mark) for mark in MARKS}
    summary.update({f"held_p{mark}": at_mark(samples, mark, 3)
                    for mark in MARKS})
    first, last = summary["p10_mb"], summary["p100_mb"]
    summary.update({
        "growth_mb": (None if first is None or last is None
                      else last - first),
        "flushed_mb": flushed_mb, "max_mb": max_mb or None,
        "samples": samples})
    return summary


def counters_of(target):
    from notifbus.oslo_driver import counters

    return counters(target.transport)


def _held(target):
    """Notifications sent (buffered, or in flight) and not yet
    acknowledged nor failed."""
    totals = counters_of(target)
    return totals["sent"] - totals["acked"] - totals["failed"]


def wait_acked(target, deadline):
    """Wait until the transport's acked and failed counts reach its sent
    count; ``False`` at ``deadline``."""
    while True:
        totals = counters_of(target)
        if totals["acked"] + totals["failed"] >= totals["sent"]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def run(spec, reporter):
    """One memory run (``spec["mode"]``: ``memory-long`` or
    ``memory-stall``) of one row; its :class:`~notifbus.bench.results.
    MemoryResult` as a JSON-ready dict."""
    row = spec["row"]
    stall = spec["mode"] == "memory-stall"
    count = spec["stall_count"] if stall else spec["count"]
    result = MemoryResult(row=row["name"], kind=row["kind"],
                          senders=row["senders"], mode=spec["mode"],
                          count=count, size=spec["size"])
    deadline = time.monotonic() + spec["budget_s"]
    target = None
    try:
        target = make_target(dict(spec, count=count))
        result.config = target.describe()
        reporter.phase("prepare")
        target.prepare()
        target.open()
        reporter.phase("warm-up")
        target.warm_up()
        if stall:
            _stall(spec, target, count, reporter, deadline, result)
        else:
            _long(spec, target, count, reporter, deadline, result)
        if spec.get("consume", True) and result.error is None:
            result.consume = ConsumeResult.from_json(_read_back(
                spec, target, count, reporter, deadline))
    except Exception as exc:  # noqa: BLE001 - the row reports it
        result.error = f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    finally:
        if stall:
            _continue(spec)
        reporter.phase("close")
        if target is not None:
            for step in (target.close, target.remove):
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - keep closing
                    print(f"closing the row failed: {exc!r}",
                          file=sys.stderr)
    if result.consume is not None:
        result.lost = result.consume.lost
        result.duplicates = result.consume.duplicates
    return result.to_json()


def _publish_outcome(target, sending, count, deadline, result):
    """Wait for the senders and the acknowledgements; fill ``result``."""
    while not sending.join(0.1):
        if time.monotonic() > deadline + 5:
            sending.stop()
    acked = wait_acked(target, deadline)
    seconds = time.perf_counter() - sending.started
    totals = counters_of(target)
    result.sent = sending.done()
    result.publish_s = seconds
    result.msgs_per_s = stats.rate(sending.done(), seconds)
    result.counters = {key: totals[key] for key in (
        "sent", "acked", "failed", "retried", "spooled")}
    if sending.errors:
        result.error = (f"send failed after {sending.done()} of "
                        f"{count}: {sending.errors[0]}")
    elif sending.stopped_at_deadline:
        result.error = (f"row time limit reached while publishing: "
                        f"{sending.done()} of {count} sent")
    elif not acked:
        result.error = (f"row time limit reached waiting for "
                        f"acknowledgements: {totals['acked']} of "
                        f"{totals['sent']}")
    elif totals["failed"]:
        result.error = f"{totals['failed']} of {count} failed"


def _long(spec, target, count, reporter, deadline, result):
    result.rss_start_mb = rss_mb()
    sending = Senders(target.send, count, spec["row"]["senders"], deadline)
    sampler = Sampler(count, sending.done, held=lambda: _held(target))
    sampler.start()
    sending.start()
    try:
        reporter.phase("publish", total=count, done=sending.done)
        _publish_outcome(target, sending, count, deadline, result)
    finally:
        sampler.stop()
    from notifbus.bench.rowrun import peak_rss_mb

    result.rss = RssSummary(**long_summary(sampler.samples, rss_mb(),
                                           sampler.max_mb),
                            peak_mb=peak_rss_mb())


def _signal_broker(spec, sig):
    pid = spec.get("broker_pid")
    if not pid:
        raise ValueError("the stall needs the embedded broker's process")
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        os.kill(pid, sig)


def _continue(spec):
    try:
        _signal_broker(spec, signal.SIGCONT)
    except (OSError, ValueError):
        pass


def stall_bound(spec, target):
    """What bounds the notifications held during the stall."""
    if target.delivery == "buffered":
        from notifbus import opts

        defaults = {opt.name: opt.default for opt in opts.notifbus_opts}
        return {"max_buffer_records": spec.get("max_buffer_records") or
                defaults["max_buffer_records"],
                "max_buffer_bytes": spec.get("max_buffer_bytes") or
                defaults["max_buffer_bytes"]}
    return {"senders": spec["row"]["senders"]}


def _stall(spec, target, count, reporter, deadline, result):
    stall_s = spec["stall_s"]
    result.stall_s = stall_s
    result.bound = stall_bound(spec, target)
    result.rss_start_mb = rss_mb()
    sending = Senders(target.send, count, spec["row"]["senders"], deadline)
    sending.start()
    reporter.phase("publish", total=count, done=sending.done)
    first = max(int(count * STALL_AT), 1)
    while sending.done() < first and not sending.join(0.01):
        pass
    if sending.done() < first:
        _publish_outcome(target, sending, count, deadline, result)
        result.error = result.error or (
            f"the senders stopped before the stall "
            f"({sending.done()} of {count} sent)")
        return
    before = counters_of(target)
    reporter.phase(f"broker stopped for {stall_s:g} s", total=count,
                   done=sending.done)
    _signal_broker(spec, signal.SIGSTOP)
    stopped = time.monotonic()
    sent_at_stop = sending.done()
    result.rss_at_stop_mb = rss_mb()
    held, rss_max, acked_in_stall = 0, 0.0, 0
    threads_before = threads_max = threading.active_count()
    try:
        while time.monotonic() - stopped < stall_s:
            time.sleep(STALL_SAMPLE_S)
            totals = counters_of(target)
            held = max(held, totals["sent"] - totals["acked"] -
                       totals["failed"])
            acked_in_stall = totals["acked"] - before["acked"]
            rss_max = max(rss_max, rss_mb() or 0.0)
            threads_max = max(threads_max, threading.active_count())
        sent_at_end = sending.done()
    finally:
        _signal_broker(spec, signal.SIGCONT)
    resumed = time.monotonic()
    reporter.phase("publish after the stall", total=count,
                   done=sending.done)
    acked_at_resume = counters_of(target)["acked"]
    first_ack_s = None
    while not sending.join(0.05):
        if first_ack_s is None and counters_of(
                target)["acked"] > acked_at_resume:
            first_ack_s = time.monotonic() - resumed
    _publish_outcome(target, sending, count, deadline, result)
    if first_ack_s is None and result.counters["acked"] > acked_at_resume:
        first_ack_s = time.monotonic() - resumed
    result.sent_before_stall = sent_at_stop
    result.sent_in_stall = sent_at_end - sent_at_stop
    result.held_max = held
    result.acked_in_stall = acked_in_stall
    result.threads_before = threads_before
    result.threads_max = threads_max
    result.threads_after = threading.active_count()
    result.rss_stall_max_mb = rss_max or None
    result.rss_after_mb = rss_mb()
    result.growth_mb = ((rss_max - result.rss_start_mb)
                        if rss_max and result.rss_start_mb else None)
    result.first_ack_after_s = first_ack_s
    result.all_acked_after_s = time.monotonic() - resumed


def _read_back(spec, target, count, reporter, deadline):
    transport = target.listener_transport()
    try:
        reporter.phase("consume batch", total=count)
        return listeners.read_back(
            transport, target.topic, "batch", count,
            f"{target.topic}-batch", wait_s=spec["consume_wait_s"],
            deadline=deadline, on_start=reporter.progress)
    finally:
        transport.cleanup()


# -- the bench (parent side) -------------------------------------------------


def check_rows(rows):
    """:raises ValueError: a row is not one of the notifbus Kafka rows."""
    for row in rows:
        if row.kind not in KINDS:
            raise ValueError(f"--memory runs the rows {', '.join(KINDS)} "
                             f"(with -x<senders>), not {row.name!r}")


def run_all(rows, runs, base, row_timeout, display, debug=False,
            after_each=None):
    """Each row's run of each mode in ``runs`` (``memory-long``,
    ``memory-stall``), one child process each; ``{"long": [...],
    "stall": [...]}``. ``after_each()`` runs after every child (it
    continues the broker, should a stall run have left it stopped)."""
    from notifbus.bench import runner

    found = MemoryRuns()
    step = 0
    for mode in runs:
        short = mode.split("-", 1)[1]
        results = getattr(found, short)
        timeout = row_timeout
        for row in rows:
            step += 1
            display.row_started(step, f"{row.name} ({short})")
            spec = runner.row_spec(dict(base, mode=mode,
                                        run_id=f"{base['run_id']}-{short}"),
                                   row, timeout)
            try:
                result = runner.run_child(spec, timeout, display,
                                          debug=debug)
            finally:
                if after_each is not None:
                    after_each()
            result = MemoryResult.from_json(result)
            result.mode = result.mode or mode
            results.append(result)
            display.row_finished(_summary(result))
    return found


def _summary(result):
    if result.rss:
        growth = result.rss.growth_mb
        text = ("RSS growth " + (f"{growth:+.1f} MB" if growth is not None
                                 else "unknown"))
    elif result.rss_stall_max_mb:
        text = (f"RSS {result.rss_start_mb or 0:.1f} MB at start, "
                f"{result.rss_stall_max_mb:.1f} MB in the stall")
    else:
        text = "no RSS"
    if result.error:
        text += f"; error: {result.error}"
    return text
