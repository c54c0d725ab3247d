"""Publish, then read back, the notifications of one row; the result is a
JSON-ready dict.

Steps: prepare (topic, reachability), open the client, one warm-up
notification (not timed), then the clock runs while ``count``
notifications are sent by ``senders`` senders and until the client says
they are acknowledged or flushed; the process's CPU time (user + system,
every thread) is taken over the same span. Peak RSS is taken there,
before reading back. Rows that can read back do so with a plain then a
batch oslo listener, each in a pool of its own, and count what was lost
(sent minus received unique) and received twice. The Kafka rows that read
back then measure the end-to-end latency (the ``e2e`` pass): a plain
listener on a topic of its own, and ``e2e_count`` notifications (at most
``count``; 0: no such pass) that carry their send time, sent at
:data:`E2E_RATE` per second.
"""

import resource
import sys
import time
import traceback

from notifbus.bench import clients, listeners, senders, stats
from notifbus.bench.rows import LIVE
from notifbus.cmd.bench import DEFAULT_E2E_COUNT

#: rate at which the end-to-end latency pass sends, per second: a load
#: every row keeps up with, so that the latency is not the time spent in
#: a backlog
E2E_RATE = 500.0
#: most seconds the e2e pass waits for a missing notification
E2E_WAIT_S = 5.0


def peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def run(spec, reporter):
    row = spec["row"]
    result = {"row": row["name"], "kind": row["kind"],
              "senders": row["senders"], "green": bool(spec.get("green")),
              "count": spec["count"], "size": spec["size"], "sent": 0,
              "error": None, "consume": None}
    deadline = time.monotonic() + spec["budget_s"]
    target = clients.make(spec)
    try:
        result["config"] = target.describe()
        reporter.phase("prepare")
        target.prepare()
        target.open()
        reporter.phase("warm-up")
        target.warm_up()
        _publish(spec, target, reporter, deadline, result)
        if (row["consume"] and spec.get("consume", True)
                and result["error"] is None):
            result["consume"] = _read_back(spec, target, reporter,
                                           deadline)
    except Exception as exc:  # noqa: BLE001 - the row reports it
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    finally:
        reporter.phase("close")
        for step in (target.close, target.remove):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep closing
                print(f"closing the row failed: {exc!r}", file=sys.stderr)
    result["peak_rss_total_mb"] = peak_rss_mb()
    return result


def cpu_seconds():
    """User + system CPU time of this process, every thread, in s
    (``CLOCK_PROCESS_CPUTIME_ID``: finer than ``os.times()``'s ticks)."""
    return time.process_time()


def per_message_us(seconds, count):
    """``seconds`` per one of ``count``, in µs; ``None`` without any."""
    return seconds / count * 1e6 if count else None


def _publish(spec, target, reporter, deadline, result):
    count = spec["count"]
    reporter.phase("publish", total=count)
    cpu_before = cpu_seconds()
    outcome = senders.run(target.send, count, spec["row"]["senders"],
                          green=bool(spec.get("green")), deadline=deadline,
                          on_start=reporter.progress)
    reporter.phase("flush")
    started = time.perf_counter()
    target.finish()
    finish_s = time.perf_counter() - started
    cpu_s = cpu_seconds() - cpu_before
    seconds = outcome.elapsed_s + finish_s
    failed, first_failure = target.failures()
    result.update({
        "sent": outcome.sent, "publish_s": seconds, "finish_s": finish_s,
        "msgs_per_s": stats.rate(outcome.sent, seconds),
        "mb_per_s": _mb(stats.rate(outcome.sent * spec["size"], seconds)),
        "latency": stats.latency_summary_ms(outcome.latencies_s),
        "send_failures": failed, "peak_rss_mb": peak_rss_mb(),
        "cpu_us_per_msg": per_message_us(cpu_s, outcome.sent)})
    if outcome.error:
        result["error"] = (f"send failed after {outcome.sent} of {count}: "
                           f"{outcome.error}")
    elif outcome.stopped_at_deadline:
        result["error"] = (f"row time limit reached while publishing: "
                           f"{outcome.sent} of {count} sent")
    elif failed:
        result["error"] = (f"{failed} of {count} notifications failed: "
                           f"{first_failure}")


def _mb(per_second):
    return None if per_second is None else per_second / 1e6


def _read_back(spec, target, reporter, deadline):
    count = spec["count"]
    transport = target.listener_transport()
    found = {}
    try:
        for mode in listeners.MODES:
            reporter.phase(f"consume {mode}", total=count)
            pool = (None if mode == "plain" and spec["row"]["kind"] ==
                    "oslo-rabbit" else f"{target.topic}-{mode}")
            live = None
            if spec["row"]["consume"] == LIVE:
                live = LivePublisher(spec)
            try:
                found[mode] = listeners.read_back(
                    transport, target.topic, mode, count, pool,
                    wait_s=spec["consume_wait_s"], deadline=deadline,
                    publish=live and live.publish,
                    probe=live and live.probe, on_start=reporter.progress)
            finally:
                if live is not None:
                    live.close()
    finally:
        transport.cleanup()
    count = _e2e_count(spec)
    if spec["row"]["kafka"] and count:
        try:
            found["e2e"] = _end_to_end(spec, reporter, deadline)
        except Exception as exc:  # noqa: BLE001 - keep the other passes
            found["e2e"] = {"mode": "plain", "received": 0, "unique": 0,
                            "lost": count, "duplicates": 0,
                            "note": f"failed: {type(exc).__name__}: {exc}"}
    return found


def _e2e_count(spec):
    return min(spec["count"], spec.get("e2e_count", DEFAULT_E2E_COUNT))


def _end_to_end(spec, reporter, deadline):
    """The e2e pass: a plain listener on the topic ``<topic>-e2e``,
    stamped notifications sent at :data:`E2E_RATE` once it receives."""
    count = _e2e_count(spec)
    spec = dict(spec, topic=f"{spec['topic']}-e2e", count=count,
                stamped=True)
    reporter.phase("e2e latency", total=count)
    live = LivePublisher(spec, rate=E2E_RATE, prepare=True)
    try:
        transport = live.target.listener_transport()
        try:
            return listeners.read_back(
                transport, spec["topic"], "plain", count,
                f"{spec['topic']}-plain",
                wait_s=min(spec["consume_wait_s"], E2E_WAIT_S),
                deadline=deadline, publish=live.publish, probe=live.probe,
                on_start=reporter.progress)
        finally:
            transport.cleanup()
    finally:
        live.close()


class LivePublisher:
    """Publishes a row's notifications again, for a listener that is
    already running: :meth:`probe` sends sequence -1, :meth:`publish`
    sends ``range(count)`` from one sender (at most ``rate`` per second)
    and flushes. ``prepare``: create the topic first."""

    def __init__(self, spec, rate=None, prepare=False):
        self.count = spec["count"]
        self.rate = rate
        self.target = clients.make(spec)
        if prepare:
            self.target.prepare()
        self.target.open()

    def probe(self):
        self.target.send(-1)

    def publish(self):
        started = time.monotonic()
        for seq in range(self.count):
            if self.rate:
                ahead = started + seq / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self.target.send(seq)
        self.target.finish()

    def close(self):
        self.target.close()
