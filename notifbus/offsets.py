"""Which offsets a consumer may commit, given acks that come out of order.

Records are handed to the dispatcher in log order but may be acknowledged in
any order (a thread pool dispatches them). A partition's commit point moves
only past a run of acknowledged records with no gap, so a crash re-delivers
whatever was not yet processed (at least once) and never skips it.

A requeued record rewinds its partition: the consumer seeks back to it, and
everything from it on is delivered again.
"""

import collections
import threading

PENDING, ACKED = "pending", "acked"


class OffsetTracker:
    """Thread-safe book of delivered, acknowledged and requeued offsets."""

    def __init__(self):
        self._lock = threading.Lock()
        # (topic, partition) -> OrderedDict(offset -> state), log order
        self._partitions = collections.defaultdict(collections.OrderedDict)
        self._rewinds = {}

    def delivered(self, tp, offset):
        """``offset`` of partition ``tp`` went to the dispatcher.

        While a rewind of ``tp`` waits to be taken, records at or past it
        were read from the old position and come again after the seek:
        they are not tracked, so that their acks cannot move the commit
        point past the requeued record.
        """
        with self._lock:
            rewind = self._rewinds.get(tp)
            if rewind is not None and offset >= rewind:
                return
            self._partitions[tp][offset] = PENDING

    def acked(self, tp, offset):
        """The dispatcher is done with it. Unknown offsets are ignored (the
        partition was rewound or revoked since)."""
        with self._lock:
            entries = self._partitions.get(tp)
            if entries is not None and offset in entries:
                entries[offset] = ACKED

    def requeued(self, tp, offset):
        """The dispatcher wants it again: rewind the partition to it."""
        with self._lock:
            entries = self._partitions.get(tp)
            if entries is None or offset not in entries:
                return
            for later in [o for o in entries if o >= offset]:
                del entries[later]
            current = self._rewinds.get(tp)
            self._rewinds[tp] = offset if current is None else min(
                current, offset)

    def take_rewinds(self):
        """``{tp: offset}`` to seek to, each returned once."""
        with self._lock:
            rewinds, self._rewinds = self._rewinds, {}
            return rewinds

    def commit_points(self):
        """``{tp: next offset}`` past the leading run of acked records, for
        partitions where that run is not empty."""
        points = {}
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

    def committed(self, points):
        """The broker stored ``points``: forget the offsets below them."""
        with self._lock:
            for tp, next_offset in points.items():
                entries = self._partitions.get(tp)
                if entries is None:
                    continue
                while entries and next(iter(entries)) < next_offset:
                    entries.popitem(last=False)

    def forget(self, tps):
        """Partitions were revoked: drop what is known of them."""
        with self._lock:
            for tp in tps:
                self._partitions.pop(tp, None)
                self._rewinds.pop(tp, None)

    def outstanding(self):
        """How many delivered records are not yet committed."""
        with self._lock:
            return sum(len(e) for e in self._partitions.values())
