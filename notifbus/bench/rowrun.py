"""Publish, then read back, the notifications of one row; the result is a
JSON-ready dict.

Steps: prepare (topic, reachability), open the client, one warm-up
notification (not timed), then the clock runs while ``count``
notifications are sent by ``senders`` senders and until the client says
they are acknowledged or flushed. Peak RSS is taken there, before reading
back. Rows that can read back do so with a plain then a batch oslo
listener, each in a pool of its own, and count what was lost (sent minus
received unique) and received twice.
"""

import resource
import sys
import time
import traceback

from notifbus.bench import clients, listeners, senders, stats
from notifbus.bench.rows import LIVE


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


def _publish(spec, target, reporter, deadline, result):
    count = spec["count"]
    reporter.phase("publish", total=count)
    outcome = senders.run(target.send, count, spec["row"]["senders"],
                          green=bool(spec.get("green")), deadline=deadline,
                          on_start=reporter.progress)
    reporter.phase("flush")
    started = time.perf_counter()
    target.finish()
    finish_s = time.perf_counter() - started
    seconds = outcome.elapsed_s + finish_s
    failed, first_failure = target.failures()
    result.update({
        "sent": outcome.sent, "publish_s": seconds, "finish_s": finish_s,
        "msgs_per_s": stats.rate(outcome.sent, seconds),
        "mb_per_s": _mb(stats.rate(outcome.sent * spec["size"], seconds)),
        "latency": stats.latency_summary_ms(outcome.latencies_s),
        "send_failures": failed, "peak_rss_mb": peak_rss_mb()})
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
            publish = None
            if spec["row"]["consume"] == LIVE:
                publish = _republisher(spec)
            found[mode] = listeners.read_back(
                transport, target.topic, mode, count, pool,
                wait_s=spec["consume_wait_s"], deadline=deadline,
                publish=publish, on_start=reporter.progress)
    finally:
        transport.cleanup()
    return found


def _republisher(spec):
    """For listeners that start at the latest offset: publish the row's
    notifications again, once the listener runs, and flush."""
    def publish():
        again = clients.make(spec)
        again.open()
        try:
            for seq in range(spec["count"]):
                again.send(seq)
            again.finish()
        finally:
            again.close()
    return publish
