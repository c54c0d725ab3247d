"""Publish ``count`` notifications from several senders, timing each send.

Senders are threads, or eventlet greenthreads in a monkey-patched child
(``green``). Each sender sends a contiguous block of sequence numbers; all
start together, and the clock runs from their start until the last one is
done. A sender stops at the first send that raises, and all stop at the
row's deadline: the outcome then says how many were sent.
"""

import dataclasses
import threading
import time
from typing import List, Optional


@dataclasses.dataclass
class Outcome:
    sent: int
    elapsed_s: float
    latencies_s: List[float]
    error: Optional[str] = None
    stopped_at_deadline: bool = False


def blocks(count, senders):
    """``count`` sequence numbers split into ``senders`` contiguous
    ranges whose lengths differ by one at most."""
    size, extra = divmod(count, senders)
    ranges, first = [], 0
    for index in range(senders):
        length = size + (1 if index < extra else 0)
        ranges.append(range(first, first + length))
        first += length
    return ranges


def run(send, count, senders, *, green=False, deadline=None,
        on_start=None):
    """Call ``send(seq)`` for each ``seq`` in ``range(count)`` from
    ``senders`` senders; returns an :class:`Outcome`.

    ``on_start(done)`` is called once the senders exist, with a function
    that returns how many sends completed so far (for progress).
    """
    ranges = blocks(count, senders)
    latencies = [[] for _ in ranges]
    errors = []
    go = threading.Event()
    stop = threading.Event()
    late = []

    def sender(index):
        done = latencies[index]
        clock = time.perf_counter
        go.wait()
        for seq in ranges[index]:
            if stop.is_set():
                return
            if deadline is not None and time.monotonic() > deadline:
                late.append(seq)
                stop.set()
                return
            started = clock()
            try:
                send(seq)
            except Exception as exc:  # noqa: BLE001 - reported in the row
                errors.append(f"{type(exc).__name__}: {exc}")
                stop.set()
                return
            done.append(clock() - started)

    def sent():
        return sum(len(done) for done in latencies)

    if on_start is not None:
        on_start(sent)
    if green:
        import eventlet

        pool = eventlet.GreenPool(senders)
        for index in range(senders):
            pool.spawn(sender, index)
        eventlet.sleep(0)
        started = time.perf_counter()
        go.set()
        pool.waitall()
    else:
        threads = [threading.Thread(target=sender, args=(index,),
                                    name=f"bench-sender-{index}",
                                    daemon=True)
                   for index in range(senders)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        go.set()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started
    flat = [value for done in latencies for value in done]
    return Outcome(sent=len(flat), elapsed_s=elapsed, latencies_s=flat,
                   error=errors[0] if errors else None,
                   stopped_at_deadline=bool(late))
