"""Percentiles, rates and ratios of bench results: no I/O."""

import math


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
    ``reference_kind`` row's) and ``vs_one_sender`` (over the rate of the
    row of the same kind with one sender, for rows with more senders).

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
    return results
