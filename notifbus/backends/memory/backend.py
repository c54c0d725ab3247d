"""The backend class of the ``memory`` backend, which the package's
docstring (:mod:`notifbus.backends.memory`) describes."""

import time
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
)

from notifbus import errors
from notifbus.backends import base
from notifbus.backends.base import TopicPartition
from notifbus.backends.memory import options as own_options
from notifbus.backends.memory.broker import (
    DEFAULT_CLUSTER,
    MemoryCluster,
    cluster,
    reset,
)
from notifbus.backends.memory.group import Membership
from notifbus.record import Received, Record

__all__ = ["DEFAULT_CLUSTER", "MemoryBackend", "MemoryCluster",
           "MemoryConsumer", "cluster", "reset"]

OFFSET_RESETS = own_options.OFFSET_RESETS


class MemoryConsumer(base.Consumer):
    """A member of a consumer group of a :class:`MemoryCluster`.

    Created by :meth:`MemoryBackend.subscribe`, which joins the group.

    ``on_revoke`` is called only from :meth:`poll`. :meth:`assigned`
    also applies a new assignment, but without calling ``on_revoke``: it
    gives up without a call only partitions from which :meth:`poll` has not
    returned records yet (there is nothing to commit for them); otherwise
    the next :meth:`poll` does. A member that stops polling holds
    on to its partitions, as on a real broker until its session times out.

    :meth:`commit` ignores partitions this member does not own (any more):
    their new owner starts at the last offset committed while they were
    owned, so records are delivered at least once.
    """

    def __init__(self, cluster: MemoryCluster, topics: Iterable[str],
                 group: str,
                 on_revoke: Optional[Callable[[Set[TopicPartition]], None]],
                 num_partitions: int, auto_offset_reset: str):
        self.topics = frozenset(topics)
        if not self.topics:
            raise ValueError("subscribe needs at least one topic")
        self.group = group
        self._cluster = cluster
        self._cond = cluster.cond
        self._reset = auto_offset_reset
        self._rotation = 0
        self._woken = False
        with self._cond:
            found, self.id = cluster.join(group, self.topics,
                                           num_partitions)
            self._member = Membership(found, self.id, self._cond,
                                      self._start_offset, on_revoke)

    def _start_offset(self, tp):
        committed = self._member.group.committed
        if tp in committed:
            return committed[tp]
        return self._cluster.end(tp) if self._reset == "latest" else 0

    def poll(self, timeout: float, max_records: int) -> List[Received]:
        """See :meth:`notifbus.backends.base.Consumer.poll`.

        Records are taken round-robin, one at a time, across the owned
        partitions, starting from a different partition on each call, so
        that no partition is starved.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, "
                             f"not {max_records}")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._member.sync(may_revoke=True)
            with self._cond:
                if self._member.closed:
                    return []
                if self._woken:
                    self._woken = False
                    return []
                found = self._fetch(max_records)
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if not self._member.behind():
                    self._cond.wait(remaining)

    def _fetch(self, max_records):
        positions = self._member.positions
        owned = sorted(positions)
        if not owned:
            return []
        start = self._rotation % len(owned)
        self._rotation += 1
        owned = owned[start:] + owned[:start]
        found: List[Received] = []
        while len(found) < max_records:
            before = len(found)
            for tp in owned:
                record = self._cluster.read(tp, positions[tp])
                if record is None:
                    continue
                found.append(record)
                positions[tp] += 1
                self._member.delivered.add(tp)
                if len(found) == max_records:
                    break
            if len(found) == before:
                break
        return found

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """See :meth:`notifbus.backends.base.Consumer.commit`. Partitions
        this member does not own are skipped."""
        with self._cond:
            for tp, offset in offsets.items():
                if offset < 0:
                    raise ValueError(f"negative offset {offset} for {tp}")
                if self._member.owns(tp):
                    self._member.group.committed[tp] = offset

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """See :meth:`notifbus.backends.base.Consumer.seek`.

        Seeking a partition this member does not own yet applies when it
        takes it, unless the group rebalanced again in between.
        """
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        with self._cond:
            self._member.seek((topic, partition), offset)

    def assignment(self) -> Set[TopicPartition]:
        """See :meth:`notifbus.backends.base.Consumer.assignment`."""
        with self._cond:
            return set(self._member.positions)

    def lag(self) -> Dict[TopicPartition, int]:
        """See :meth:`notifbus.backends.base.Consumer.lag`: the end of
        each owned partition's log minus this member's position."""
        with self._cond:
            return {tp: self._cluster.end(tp) - position
                    for tp, position in self._member.positions.items()}

    def assigned(self) -> bool:
        """See :meth:`notifbus.backends.base.Consumer.assigned`.

        True once this member has applied the group's latest assignment and
        owns every partition of it.
        """
        self._member.sync(may_revoke=False)
        with self._cond:
            return not self._member.closed and self._member.settled()

    def wakeup(self) -> None:
        """See :meth:`notifbus.backends.base.Consumer.wakeup`."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Leave the group at once; the others rebalance. ``on_revoke`` is
        not called: commit before closing."""
        with self._cond:
            if self._member.closed:
                return
            self._member.close()
            self._cluster.leave(self._member.group, self.id)


class MemoryBackend(base.Backend):
    """Backend over a :class:`MemoryCluster` of this process.

    ``hosts`` is empty or holds one ``(name, None)`` pair naming the
    cluster.

    :raises ConfigError: several hosts, a port, ``num_partitions`` below 1
        or an unknown ``auto_offset_reset``.
    """

    common_options = ("num_partitions", "max_message_bytes")

    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        if len(self.hosts) > 1:
            raise errors.ConfigError(
                "the memory backend takes one cluster name "
                "(notifbus+memory://name/), not several hosts")
        if self.hosts and self.hosts[0][1] is not None:
            raise errors.ConfigError(
                "the memory backend takes a cluster name without a port "
                "(notifbus+memory://name/)")
        name = self.hosts[0][0] if self.hosts else None
        self.name = name or DEFAULT_CLUSTER
        self.num_partitions = int(self.opts.num_partitions)
        self.auto_offset_reset = self.opts.auto_offset_reset
        self.max_message_bytes = int(self.opts.max_message_bytes)
        if self.num_partitions < 1:
            raise errors.ConfigError(
                f"num_partitions must be at least 1, "
                f"not {self.num_partitions}")
        if self.auto_offset_reset not in OFFSET_RESETS:
            raise errors.ConfigError(
                f"auto_offset_reset must be one of "
                f"{', '.join(OFFSET_RESETS)}, "
                f"not {self.auto_offset_reset!r}")

    @classmethod
    def list_opts(cls):
        """Only what is the memory backend's own (:mod:`.options`):
        ``num_partitions`` and ``max_message_bytes`` are ``[notifbus]``
        options, passed in ``options`` by the transport
        (:attr:`common_options`)."""
        return own_options.list_opts()

    @property
    def cluster(self) -> MemoryCluster:
        """The cluster this backend names (looked up on each use)."""
        return cluster(self.name)

    def ensure_topic(self, topic: str, partitions: int,
                     timeout: float) -> int:
        return self.cluster.ensure_topic(topic, partitions)

    def produce(self, records: Sequence[Record], partitions: Sequence[int],
                timeout: float) -> List[Optional[Exception]]:
        return self.cluster.produce(records, partitions,
                                    self.num_partitions,
                                    self.max_message_bytes)

    def subscribe(self, topics: Iterable[str], group: str,
                  on_revoke: Optional[Callable[[Set[TopicPartition]], None]]
                  = None) -> MemoryConsumer:
        return MemoryConsumer(self.cluster, topics, group, on_revoke,
                              self.num_partitions, self.auto_offset_reset)

    def end_offsets(self, topic: str, timeout: float) -> Dict[int, int]:
        return {partition: len(self.cluster.records(topic, partition))
                for partition in range(self.cluster.partitions(topic))}

    def offsets_for_time(self, topic: str, timestamp_ms: int,
                         timeout: float) -> Dict[int, int]:
        found = {}
        for partition in range(self.cluster.partitions(topic)):
            records = self.cluster.records(topic, partition)
            found[partition] = next(
                (r.offset for r in records
                 if (r.timestamp_ms or 0) >= timestamp_ms), len(records))
        return found

    def read(self, topic: str, partition: int, offset: int,
             max_records: int, timeout: float) -> List[Received]:
        records = self.cluster.records(topic, partition)
        return records[offset:offset + max_records]

    def close(self, timeout: float = 5.0) -> None:
        """Nothing to release: the cluster stays for other backends."""
