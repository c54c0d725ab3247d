"""In-memory backend: the reference implementation of the backend contract.

Used by unit tests, by the demo when no broker is at hand, and as the
baseline that other backends are checked against. It stores everything in
the process' memory, so nothing survives a restart and logs grow without
bound: it is not meant for production.

Features:

* topics with a fixed number of partitions, each an append-only log whose
  offsets are list indexes;
* consumer groups with committed offsets, deterministic round-robin
  assignment, rebalancing on join and leave with ``on_revoke`` called before
  a partition changes hands, and ``auto_offset_reset``;
* blocking :meth:`MemoryConsumer.poll` with :meth:`~MemoryConsumer.wakeup`;
* fault injection for tests: :meth:`MemoryCluster.fail_next` and
  :meth:`MemoryCluster.set_down`.

Connection string::

    notifbus+memory://name/

``name`` names a cluster (``default`` when left out). Every backend in one
process that names the same cluster shares its topics, groups and offsets,
so a notifier transport and a listener transport created separately see the
same data. :func:`cluster` returns a cluster by name and :func:`reset`
drops clusters between tests.

Options (group ``[notifbus_memory]``, or query parameters of the URL):

* ``num_partitions`` (default 4): partitions of a topic created on first
  use by :meth:`MemoryBackend.produce` or :meth:`MemoryBackend.subscribe`.
* ``auto_offset_reset`` (``earliest`` or ``latest``, default ``earliest``):
  where a group without a committed offset starts reading a partition;
  ``latest`` is the end of the partition when the member takes it.
* ``max_message_bytes`` (default 1048576): records whose
  :attr:`~notifbus.record.Record.size` is larger fail with
  :class:`~notifbus.errors.RecordTooLarge`.

Rebalancing: a join or a leave bumps the group's generation and computes a
target assignment for every member. Each member applies it itself, on its
own thread, in :meth:`~MemoryConsumer.poll`: it calls ``on_revoke`` with
the partitions it loses, then releases them. A partition has at most one
owner at a time; a member takes a partition it gained only once the
previous owner released it (in its ``poll`` or ``close``), starting at the
group's committed offset. A member that stops polling therefore holds on to
its partitions, as on a real broker until its session times out.

Threads: all state of a cluster is guarded by one
:class:`threading.Condition`, created when the cluster is, so that green
threads are used when eventlet has patched :mod:`threading` by then.
Callbacks run without it held.
"""

import itertools
import logging
import threading
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
    Tuple,
)

from oslo_config import cfg

from notifbus import errors
from notifbus.backends import base
from notifbus.backends.base import TopicPartition
from notifbus.record import Received, Record

LOG = logging.getLogger(__name__)

DEFAULT_CLUSTER = "default"
DEFAULT_NUM_PARTITIONS = 4
DEFAULT_AUTO_OFFSET_RESET = "earliest"
DEFAULT_MAX_MESSAGE_BYTES = 1048576
OFFSET_RESETS = ("earliest", "latest")

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


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Group:
    """Members, assignment and committed offsets of one consumer group."""

    def __init__(self, name):
        self.name = name
        #: member id -> MemoryConsumer, in join order.
        self.members: Dict[int, MemoryConsumer] = {}
        #: Bumped by every join and leave.
        self.generation = 0
        #: member id -> partitions the member should own.
        self.targets: Dict[int, Set[TopicPartition]] = {}
        #: partition -> id of the member that owns it now.
        self.owners: Dict[TopicPartition, int] = {}
        #: partition -> next offset to read.
        self.committed: Dict[TopicPartition, int] = {}


class MemoryCluster:
    """Topics and consumer groups shared by every backend naming this
    cluster.

    Every method is thread-safe. Use :func:`cluster` rather than creating
    one directly, so that backends find it.
    """

    def __init__(self, name: str):
        self.name = name
        self.cond = threading.Condition()
        self._topics: Dict[str, List[List[Received]]] = {}
        self._groups: Dict[str, _Group] = {}
        self._member_ids = itertools.count(1)
        self._down = False
        self._fail_count = 0
        self._fail_retriable = True

    # Fault injection.

    def fail_next(self, n: int, retriable: bool = True) -> None:
        """Make the next ``n`` calls of ``produce`` fail every record with a
        :class:`~notifbus.errors.DeliveryError` of the given ``retriable``
        flag. Replaces any count set before; ``n=0`` cancels it. Calls made
        while the cluster is down do not count.
        """
        with self.cond:
            self._fail_count = max(0, int(n))
            self._fail_retriable = bool(retriable)

    def set_down(self, down: bool) -> None:
        """Take the cluster down (``True``) or bring it back up.

        While down, ``produce`` fails every record at once with a retriable
        :class:`~notifbus.errors.DeliveryError`, ``ensure_topic`` and
        ``commit`` raise one, polls return ``[]`` and group assignments do
        not move. Stored data is kept.
        """
        with self.cond:
            self._down = bool(down)
            self.cond.notify_all()

    @property
    def down(self) -> bool:
        """Whether :meth:`set_down` took the cluster down."""
        return self._down

    def _down_error(self):
        return errors.DeliveryError(f"memory cluster {self.name} is down")

    # Inspection, for tests.

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

    # Topics and records.

    def _create(self, topic, partitions):
        # Caller holds the lock.
        if topic not in self._topics:
            if partitions < 1:
                raise ValueError(
                    f"topic {topic!r} needs at least 1 partition, "
                    f"not {partitions}")
            self._topics[topic] = [[] for _ in range(partitions)]
        return self._topics[topic]

    def ensure_topic(self, topic: str, partitions: int) -> int:
        """Create ``topic`` if missing; return its partition count.

        :raises DeliveryError: (retriable) the cluster is down.
        """
        with self.cond:
            if self._down:
                raise self._down_error()
            return len(self._create(topic, partitions))

    def produce(self, records: Sequence[Record], partitions: Sequence[int],
                num_partitions: int,
                max_message_bytes: int) -> List[Optional[Exception]]:
        """Append ``records[i]`` to partition ``partitions[i]``.

        Missing topics are created with ``num_partitions`` partitions. See
        :meth:`notifbus.backends.base.Backend.produce` for the result.
        """
        if len(records) != len(partitions):
            raise ValueError(
                f"{len(records)} records but {len(partitions)} partitions")
        with self.cond:
            if self._down:
                return [self._down_error() for _ in records]
            if self._fail_count:
                self._fail_count -= 1
                return [errors.DeliveryError(
                    f"memory cluster {self.name}: injected failure",
                    retriable=self._fail_retriable) for _ in records]
            results: List[Optional[Exception]] = []
            for record, partition in zip(records, partitions):
                results.append(self._append(
                    record, partition, num_partitions, max_message_bytes))
            self.cond.notify_all()
            return results

    def _append(self, record, partition, num_partitions, max_message_bytes):
        # Caller holds the lock.
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
            timestamp_ms=_now_ms() if timestamp is None else timestamp))
        return None

    # Groups. The methods below are called by MemoryConsumer with the lock
    # held.

    def _join(self, member, num_partitions):
        for topic in member.topics:
            self._create(topic, num_partitions)
        group = self._groups.setdefault(member.group, _Group(member.group))
        member.id = next(self._member_ids)
        group.members[member.id] = member
        self._rebalance(group)
        return group

    def _leave(self, member):
        group = self._groups[member.group]
        if group.members.pop(member.id, None) is None:
            return
        group.targets.pop(member.id, None)
        for tp in list(group.owners):
            if group.owners[tp] == member.id:
                del group.owners[tp]
        self._rebalance(group)

    def _rebalance(self, group):
        """Assign every partition of the members' topics round-robin.

        Partitions are taken in (topic, partition) order; each goes to the
        next member, in join order, that subscribes to its topic.
        """
        members = list(group.members.values())
        targets: Dict[int, Set[TopicPartition]] = {m.id: set()
                                                   for m in members}
        topics = sorted(set().union(*(m.topics for m in members)))
        cursor = 0
        for topic in topics:
            for partition in range(len(self._topics[topic])):
                for step in range(len(members)):
                    member = members[(cursor + step) % len(members)]
                    if topic in member.topics:
                        targets[member.id].add((topic, partition))
                        cursor = (cursor + step + 1) % len(members)
                        break
        group.targets = targets
        group.generation += 1
        self.cond.notify_all()

    def _start_offset(self, group, tp, reset):
        if tp in group.committed:
            return group.committed[tp]
        if reset == "latest":
            topic, partition = tp
            return len(self._topics[topic][partition])
        return 0

    def _read(self, tp, offset):
        topic, partition = tp
        log = self._topics[topic][partition]
        return log[offset] if offset < len(log) else None


class MemoryConsumer(base.Consumer):
    """A member of a consumer group of a :class:`MemoryCluster`.

    Created by :meth:`MemoryBackend.subscribe`, which joins the group.

    ``on_revoke`` is called only from :meth:`poll`. :meth:`wait_assigned`
    also applies a new assignment, but without calling ``on_revoke``: it
    gives up without a call only partitions from which :meth:`poll` has not
    returned records yet (there is nothing to commit for them); otherwise
    it waits for the next :meth:`poll`.

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
        self.id = 0
        self._cluster = cluster
        self._cond = cluster.cond
        self._on_revoke = on_revoke
        self._reset = auto_offset_reset
        # Generation and target assignment this member has applied.
        self._generation = 0
        self._target: Set[TopicPartition] = set()
        # Partitions owned, with the next offset to read from each.
        self._positions: Dict[TopicPartition, int] = {}
        # Owned partitions from which poll returned records.
        self._delivered: Set[TopicPartition] = set()
        # Seeks of partitions not owned yet, with the group generation
        # they were made in; applied when taken in that generation.
        self._pending_seeks: Dict[TopicPartition, Tuple[int, int]] = {}
        self._rotation = 0
        self._woken = False
        self._closed = False
        with self._cond:
            self._group = cluster._join(self, num_partitions)

    # Rebalance.

    def _sync(self, may_revoke: bool) -> None:
        """Apply the group's current assignment as far as possible.

        Releases the partitions this member lost (calling ``on_revoke``
        first when ``may_revoke``) and takes the gained partitions that
        their previous owner has released.
        """
        with self._cond:
            if self._closed or self._cluster.down:
                return
            generation = self._group.generation
            if generation == self._generation:
                self._take()
                return
            target = set(self._group.targets.get(self.id, ()))
            lost = set(self._positions) - target
            if not lost or not may_revoke:
                if lost & self._delivered:
                    return
                self._apply(generation, target, lost)
                return
        if self._on_revoke is not None:
            try:
                self._on_revoke(set(lost))
            except Exception:
                LOG.exception("group %s: on_revoke(%s) failed; the "
                              "partitions are released anyway",
                              self.group, sorted(lost))
        with self._cond:
            if not self._closed:
                self._apply(generation, target, lost)

    def _apply(self, generation, target, lost):
        # Caller holds the lock.
        owners = self._group.owners
        for tp in lost:
            self._positions.pop(tp, None)
            self._delivered.discard(tp)
            if owners.get(tp) == self.id:
                del owners[tp]
        if lost:
            self._cond.notify_all()
        self._generation = generation
        self._target = target
        self._take()

    def _take(self):
        # Caller holds the lock. Only a current target is taken.
        if self._generation != self._group.generation:
            return
        owners = self._group.owners
        for tp in self._target:
            if tp in self._positions or tp in owners:
                continue
            owners[tp] = self.id
            start, seen = self._pending_seeks.pop(tp, (None, None))
            if start is None or seen != self._generation:
                start = self._cluster._start_offset(
                    self._group, tp, self._reset)
            self._positions[tp] = start

    def _settled(self):
        # Caller holds the lock.
        return (not self._cluster.down
                and self._generation == self._group.generation
                and set(self._positions) == self._target)

    def _must_sync(self):
        # Caller holds the lock: a new generation waits to be applied.
        return (not self._cluster.down
                and self._generation != self._group.generation)

    # Consumer API.

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
            self._sync(may_revoke=True)
            with self._cond:
                if self._closed:
                    return []
                if self._woken:
                    self._woken = False
                    return []
                if self._cluster.down:
                    LOG.debug("memory cluster %s is down; poll waits",
                              self._cluster.name)
                else:
                    found = self._fetch(max_records)
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if not self._must_sync():
                    self._cond.wait(remaining)

    def _fetch(self, max_records):
        # Caller holds the lock.
        owned = sorted(self._positions)
        if not owned:
            return []
        start = self._rotation % len(owned)
        self._rotation += 1
        owned = owned[start:] + owned[:start]
        found: List[Received] = []
        progress = True
        while progress and len(found) < max_records:
            progress = False
            for tp in owned:
                record = self._cluster._read(tp, self._positions[tp])
                if record is None:
                    continue
                found.append(record)
                self._positions[tp] += 1
                self._delivered.add(tp)
                progress = True
                if len(found) == max_records:
                    break
        return found

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """See :meth:`notifbus.backends.base.Consumer.commit`.

        :raises DeliveryError: (retriable) the cluster is down.
        """
        with self._cond:
            if self._cluster.down:
                raise self._cluster._down_error()
            owners = self._group.owners
            for tp, offset in offsets.items():
                if offset < 0:
                    raise ValueError(f"negative offset {offset} for {tp}")
                if owners.get(tp) != self.id:
                    LOG.debug("group %s: commit of %s ignored, this member "
                              "does not own it", self.group, tp)
                    continue
                self._group.committed[tp] = offset

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """See :meth:`notifbus.backends.base.Consumer.seek`.

        Seeking a partition this member does not own yet applies when it
        takes it, unless the group rebalanced again in between.
        """
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        tp = (topic, partition)
        with self._cond:
            if tp in self._positions:
                self._positions[tp] = offset
            else:
                self._pending_seeks[tp] = (offset, self._group.generation)

    def assignment(self) -> Set[TopicPartition]:
        """See :meth:`notifbus.backends.base.Consumer.assignment`."""
        with self._cond:
            return set(self._positions)

    def lag(self) -> Dict[TopicPartition, int]:
        """See :meth:`notifbus.backends.base.Consumer.lag`: the end of
        each owned partition's log minus this member's position."""
        with self._cond:
            return {tp: len(self._cluster._topics[tp[0]][tp[1]]) - position
                    for tp, position in self._positions.items()}

    def wait_assigned(self, timeout: float) -> bool:
        """See :meth:`notifbus.backends.base.Consumer.wait_assigned`.

        True once this member has applied the group's latest assignment and
        owns every partition of it.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._sync(may_revoke=False)
            with self._cond:
                if self._closed:
                    return False
                if self._settled():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._must_sync() or self._blocked_on_revoke():
                    self._cond.wait(remaining)

    def _blocked_on_revoke(self):
        # Caller holds the lock: only poll can apply the new generation.
        target = self._group.targets.get(self.id, set())
        return bool((set(self._positions) - target) & self._delivered)

    def wakeup(self) -> None:
        """See :meth:`notifbus.backends.base.Consumer.wakeup`."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Leave the group at once; the others rebalance. ``on_revoke`` is
        not called: commit before closing."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._positions.clear()
            self._cluster._leave(self)


class MemoryBackend(base.Backend):
    """Backend over a :class:`MemoryCluster` of this process.

    ``hosts`` is empty or holds one ``(name, None)`` pair naming the
    cluster.
    """

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
        self.num_partitions = int(self.options.get(
            "num_partitions", DEFAULT_NUM_PARTITIONS))
        self.auto_offset_reset = self.options.get(
            "auto_offset_reset", DEFAULT_AUTO_OFFSET_RESET)
        self.max_message_bytes = int(self.options.get(
            "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
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
        """Only what is the memory backend's own. Partitions of new topics
        and the message size limit are the ``[notifbus]`` options
        ``num_partitions`` and ``max_message_bytes``, which the bus applies;
        ``options`` may still carry them for direct use in tests."""
        return [
            cfg.StrOpt("auto_offset_reset",
                       default=DEFAULT_AUTO_OFFSET_RESET,
                       choices=OFFSET_RESETS,
                       help="Where a consumer group without a committed "
                            "offset starts reading a partition: its "
                            "first record (earliest) or its end when the "
                            "partition is assigned (latest)."),
        ]

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
