"""Which offsets a consumer may commit, given acks that come out of order.

Records are handed to the dispatcher in log order but may be acknowledged in
any order (a thread pool dispatches them). A partition's commit point moves
only past a run of acknowledged records with no gap, so a crash re-delivers
whatever was not yet processed (at least once) and never skips it.

A requeued record stays unresolved: the commit point stops below it until
it is acknowledged (after a redelivery, or once it was dead-lettered), while
the records after it are dispatched and acknowledged as usual. The
partition is never rewound, so nothing but the requeued record comes again;
a crash before it is resolved re-reads from below it (at least once).
"""

import collections
import threading
from typing import Dict, Iterable, Mapping

from notifbus.backends.base import TopicPartition

PENDING, ACKED = "pending", "acked"


class OffsetTracker:
    """Thread-safe book of delivered and acknowledged offsets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (topic, partition) -> OrderedDict(offset -> state), log order
        self._partitions: Dict[TopicPartition,
                               collections.OrderedDict[int, str]] = (
            collections.defaultdict(collections.OrderedDict))

    def delivered(self, tp: TopicPartition, offset: int) -> None:
        """``offset`` of partition ``tp`` went to the dispatcher (again,
        for a redelivery: it stays pending)."""
        with self._lock:
            self._partitions[tp][offset] = PENDING

    def acked(self, tp: TopicPartition, offset: int) -> None:
        """The dispatcher is done with it. Unknown offsets are ignored (the
        partition was revoked since)."""
        with self._lock:
            entries = self._partitions.get(tp)
            if entries is not None and offset in entries:
                entries[offset] = ACKED

    def requeued(self, tp: TopicPartition, offset: int) -> bool:
        """The dispatcher wants it again: it stays pending, and the commit
        point stops below it. Returns whether the offset is tracked (not
        when its partition was revoked since, or it was acknowledged)."""
        with self._lock:
            entries = self._partitions.get(tp)
            if entries is None or entries.get(offset) != PENDING:
                return False
            return True

    def commit_points(self) -> Dict[TopicPartition, int]:
        """``{tp: next offset}`` past the leading run of acked records, for
        partitions where that run is not empty."""
        points: Dict[TopicPartition, int] = {}
        with self._lock:
            for tp, entries in self._partitions.items():
                last = None
                for offset, state in entries.items():
                    if state != ACKED:
                        break
                    last = offset
                if last is not None:
                    points[tp] = last + 1
        return points

    def committed(self, points: Mapping[TopicPartition, int]) -> None:
        """The broker stored ``points``: forget the offsets below them."""
        with self._lock:
            for tp, next_offset in points.items():
                entries = self._partitions.get(tp)
                if entries is None:
                    continue
                while entries and next(iter(entries)) < next_offset:
                    entries.popitem(last=False)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions were revoked: drop what is known of them."""
        with self._lock:
            for tp in tps:
                self._partitions.pop(tp, None)

    def outstanding(self) -> int:
        """How many delivered records are not yet committed."""
        with self._lock:
            return sum(len(e) for e in self._partitions.values())
