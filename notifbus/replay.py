"""Re-read a topic from its retention: from an offset or from a time.

Reads outside any consumer group (nothing is committed, no listener is
disturbed), up to the end offsets taken when the replay starts, so a replay
of a busy topic ends. Partitions are read one after the other, each in log
order.
"""

import dataclasses
import time
from typing import Dict, Iterator, Optional

from notifbus.record import Received

READ_BATCH = 500


@dataclasses.dataclass
class Span:
    """Offsets ``[start, end)`` of one partition to replay."""

    start: int
    end: int

    @property
    def size(self):
        return max(self.end - self.start, 0)


class Replay:
    """Records of ``topic`` from ``from_offset`` (in every partition, or in
    ``partition`` only) or from ``from_time_ms``; from the beginning when
    neither is given.

    :param backend: a :class:`~notifbus.backends.base.Backend` that
        implements the replay methods.
    """

    def __init__(self, backend, topic, *, from_offset=None,
                 from_time_ms=None, partition: Optional[int] = None,
                 timeout=10.0):
        if from_offset is not None and from_time_ms is not None:
            raise ValueError("replay from an offset or from a time, "
                             "not both")
        self.backend = backend
        self.topic = topic
        self.timeout = timeout
        ends = backend.end_offsets(topic, timeout)
        if from_time_ms is not None:
            starts = backend.offsets_for_time(topic, from_time_ms, timeout)
        else:
            starts = {p: min(from_offset or 0, end)
                      for p, end in ends.items()}
        if partition is not None:
            if partition not in ends:
                raise ValueError(
                    f"topic {topic!r} has no partition {partition}; it has "
                    f"{len(ends)}")
            ends = {partition: ends[partition]}
        self.spans: Dict[int, Span] = {
            p: Span(starts.get(p, end), end) for p, end in ends.items()}
        self._total = None

    @property
    def total(self):
        """How many records the replay covers (counted by the backend:
        offsets may have gaps)."""
        if self._total is None:
            self._total = sum(
                self.backend.count_records(self.topic, p, span.start,
                                           span.end, self.timeout)
                for p, span in self.spans.items())
        return self._total

    def __iter__(self) -> Iterator[Received]:
        for partition, span in sorted(self.spans.items()):
            offset = span.start
            while offset < span.end:
                batch = self._read(partition, offset,
                                   min(READ_BATCH, span.end - offset))
                for received in batch:
                    if received.offset >= span.end:
                        break
                    yield received
                offset = batch[-1].offset + 1

    def _read(self, partition, offset, count):
        deadline = time.monotonic() + self.timeout
        while True:
            batch = self.backend.read(self.topic, partition, offset, count,
                                      min(1.0, self.timeout))
            if batch:
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no record of {self.topic!r} partition {partition} at "
                    f"offset {offset} arrived within {self.timeout} s "
                    f"(removed by retention, or the broker is gone)")
