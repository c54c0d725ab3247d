"""Percentiles, rates and ratios of bench results: no I/O."""

import math

from notifbus.bench.rows import KINDS, NOOP_KIND


def percentile(values, q):
    """The ``q``-th percentile (0 to 100) of ``values``, interpolated
    linearly between the closest ranks; ``None`` when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(seconds):
    """p50, p99 and max of latencies given in seconds, in milliseconds."""
    ordered = sorted(seconds)

    def ms(value):
        return None if value is None else value * 1000.0

    return {"p50_ms": ms(percentile(ordered, 50)),
            "p99_ms": ms(percentile(ordered, 99)),
            "max_ms": ms(ordered[-1] if ordered else None)}


def rate(count, seconds):
    """``count`` per second over ``seconds``; ``None`` when not
    measurable."""
    if not count or not seconds or seconds <= 0:
        return None
    return count / seconds


def ratio(value, reference):
    """``value / reference``, or ``None`` when either is missing."""
    if value is None or not reference:
        return None
    return value / reference


def add_ratios(results, reference_kind="oslo-kafka"):
    """Set each result's ``vs_reference`` (its publish rate over the
    ``reference_kind`` row's), ``vs_one_sender`` (over the rate of the
    row of the same kind with one sender, for rows with more senders) and
    ``driver_cpu_us_per_msg`` (see :func:`driver_cpu`).

    ``results`` are :class:`~notifbus.bench.results.RowResult` objects;
    changed in place and returned.
    """
    reference = next((r for r in results if r.kind == reference_kind
                      and r.senders == 1), None) or next(
        (r for r in results if r.kind == reference_kind), None)
    single = {r.kind: r.msgs_per_s for r in results if r.senders == 1}
    for result in results:
        result.vs_reference = ratio(
            result.msgs_per_s, reference and reference.msgs_per_s)
        result.vs_one_sender = (
            ratio(result.msgs_per_s, single.get(result.kind))
            if result.senders > 1 else None)
    driver_cpu(results)
    return results


def driver_cpu(results):
    """Set ``driver_cpu_us_per_msg`` of the rows that publish through an
    oslo ``Notifier``: their CPU per notification (µs) minus that of the
    ``noop`` row with as many senders (else the first ``noop`` row), which
    is what oslo's ``Notifier`` costs alone. ``None`` without a ``noop``
    row, and for the ``noop`` row and the raw clients' rows. Changed in
    place and returned."""
    noop = {r.senders: r.cpu_us_per_msg for r in reversed(results)
            if r.kind == NOOP_KIND and r.cpu_us_per_msg is not None}
    first = next((r.cpu_us_per_msg for r in results if r.kind == NOOP_KIND
                  and r.cpu_us_per_msg is not None), None)
    for result in results:
        kind = KINDS.get(result.kind)
        if (kind is None or not kind.notifier or result.kind == NOOP_KIND
                or result.cpu_us_per_msg is None or first is None):
            result.driver_cpu_us_per_msg = None
            continue
        result.driver_cpu_us_per_msg = (
            result.cpu_us_per_msg - noop.get(result.senders, first))
    return results
