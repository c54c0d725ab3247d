"""The in-process broker of the memory backend: clusters of topics, each
partition an append-only log whose offsets are list indexes, and their
consumer groups (:mod:`notifbus.backends.memory.group`).

A cluster is found by name (:func:`cluster`), so that every backend of a
process that names it shares its topics, groups and offsets;
:func:`reset` drops clusters between tests.

Threads: all state of a cluster is guarded by its :attr:`MemoryCluster.cond`,
created when the cluster is, so that green threads are used when eventlet
has patched :mod:`threading` by then.
"""

import itertools
import threading
import time
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from notifbus import errors
from notifbus.backends.base import TopicPartition
from notifbus.backends.memory.group import ConsumerGroup
from notifbus.record import Received, Record

DEFAULT_CLUSTER = "default"

# Cluster name -> MemoryCluster. Only single dict operations (get,
# setdefault, pop, clear) touch it; they are atomic, so it needs no lock.
_clusters: Dict[str, "MemoryCluster"] = {}


def cluster(name: str = DEFAULT_CLUSTER) -> "MemoryCluster":
    """Return the cluster called ``name``, creating it if it is missing."""
    found = _clusters.get(name)
    if found is None:
        found = _clusters.setdefault(name, MemoryCluster(name))
    return found


def reset(name: Optional[str] = None) -> None:
    """Drop the cluster called ``name``, or every cluster when ``None``.

    Backends look their cluster up by name on each call, so they carry on
    with a new, empty one; consumers created before keep the dropped one.
    """
    if name is None:
        _clusters.clear()
    else:
        _clusters.pop(name, None)


class MemoryCluster:
    """Topics and consumer groups shared by every backend naming this
    cluster.

    The methods down to :meth:`produce` take the lock themselves; the
    others, used by consumers, expect :attr:`cond` held. Use
    :func:`cluster` rather than creating one directly, so that backends
    find it.
    """

    def __init__(self, name: str):
        self.name = name
        self.cond = threading.Condition()
        self._topics: Dict[str, List[List[Received]]] = {}
        self._groups: Dict[str, ConsumerGroup] = {}
        self._member_ids = itertools.count(1)

    def partitions(self, topic: str) -> int:
        """Partition count of ``topic``, 0 when it does not exist."""
        with self.cond:
            return len(self._topics.get(topic, ()))

    def records(self, topic: str,
                partition: Optional[int] = None) -> List[Received]:
        """Records stored in ``topic`` (one partition, or all partitions in
        partition then offset order)."""
        with self.cond:
            logs = self._topics.get(topic, [])
            if partition is not None:
                logs = logs[partition:partition + 1]
            return [rec for log in logs for rec in log]

    def committed(self, group: str) -> Dict[TopicPartition, int]:
        """Committed offsets of ``group``."""
        with self.cond:
            found = self._groups.get(group)
            return dict(found.committed) if found else {}

    def ensure_topic(self, topic: str, partitions: int) -> int:
        """Create ``topic`` if missing; return its partition count."""
        with self.cond:
            return len(self._create(topic, partitions))

    def produce(self, records: Sequence[Record], partitions: Sequence[int],
                num_partitions: int,
                max_message_bytes: int) -> List[Optional[Exception]]:
        """Append ``records[i]`` to partition ``partitions[i]``.

        Missing topics are created with ``num_partitions`` partitions. See
        :meth:`notifbus.backends.base.Backend.produce` for the result: a
        record over ``max_message_bytes`` gets a
        :class:`~notifbus.errors.RecordTooLarge`.
        """
        if len(records) != len(partitions):
            raise ValueError(
                f"{len(records)} records but {len(partitions)} partitions")
        with self.cond:
            results = [self._append(record, partition, num_partitions,
                                    max_message_bytes)
                       for record, partition in zip(records, partitions)]
            self.cond.notify_all()
            return results

    def join(self, group: str, topics: FrozenSet[str],
             num_partitions: int) -> Tuple[ConsumerGroup, int]:
        """Add a member reading ``topics`` (created with ``num_partitions``
        partitions when missing) to ``group``; return the group and the
        member's id."""
        for topic in topics:
            self._create(topic, num_partitions)
        found = self._groups.setdefault(group, ConsumerGroup(group))
        member = next(self._member_ids)
        found.join(member, topics, self._count)
        self.cond.notify_all()
        return found, member

    def leave(self, group: ConsumerGroup, member: int) -> None:
        """Take ``member`` out of ``group``; the others rebalance."""
        group.leave(member, self._count)
        self.cond.notify_all()

    def end(self, tp: TopicPartition) -> int:
        """The offset the next record of partition ``tp`` will get."""
        topic, partition = tp
        return len(self._topics[topic][partition])

    def read(self, tp: TopicPartition, offset: int) -> Optional[Received]:
        """The record at ``offset`` of partition ``tp``, ``None`` past the
        end."""
        topic, partition = tp
        log = self._topics[topic][partition]
        return log[offset] if offset < len(log) else None

    def _count(self, topic):
        return len(self._topics[topic])

    def _create(self, topic, partitions):
        if topic not in self._topics:
            if partitions < 1:
                raise ValueError(
                    f"topic {topic!r} needs at least 1 partition, "
                    f"not {partitions}")
            self._topics[topic] = [[] for _ in range(partitions)]
        return self._topics[topic]

    def _append(self, record, partition, num_partitions, max_message_bytes):
        if record.size > max_message_bytes:
            return errors.RecordTooLarge(
                f"record of {record.size} bytes for topic {record.topic!r} "
                f"is larger than max_message_bytes ({max_message_bytes})")
        logs = self._create(record.topic, num_partitions)
        if not 0 <= partition < len(logs):
            return errors.DeliveryError(
                f"topic {record.topic!r} has no partition {partition} "
                f"(it has {len(logs)})", retriable=False)
        log = logs[partition]
        timestamp = record.timestamp_ms
        log.append(Received(
            topic=record.topic, partition=partition, offset=len(log),
            value=record.value, key=record.key,
            headers=tuple(record.headers),
            timestamp_ms=(int(time.time() * 1000) if timestamp is None
                          else timestamp)))
        return None
