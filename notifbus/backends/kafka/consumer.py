"""The ``kafka`` backend's consumer: one kafka-python ``KafkaConsumer``
per subscription, in a consumer group with manual commits (the bus commits
after dispatch)."""

import logging
import threading
import time

import kafka
import kafka.errors as kerrors
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata, TopicPartition

from notifbus import errors
from notifbus.backends import base
from notifbus.backends.kafka import internals
from notifbus.backends.kafka.assignor import (
    PartitionCountAssignor,
    RoundRobinAssignor,
    assume_assigned_counts,
)
from notifbus.backends.kafka_common import delivery
from notifbus.backends.kafka_common import options as kafka_options
from notifbus.backends.kafka_common.logs import partition_list
from notifbus.backends.threads import close_within
from notifbus.record import Received

LOG = logging.getLogger("notifbus.backends.kafka")

#: longest wait of one kafka-python poll: how late a wakeup may end a poll
_POLL_SLICE_S = 0.1
#: how long a member must stay in a stable group, its assignment unchanged
#: and without partitions of some of its topics, before assigned takes
#: that as final (more members than partitions)
_IDLE_MEMBER_S = 1.0


def to_received(tp, message):
    """The :class:`~notifbus.record.Received` of kafka-python's
    ``message`` read from ``tp``."""
    return Received(topic=tp.topic, partition=tp.partition,
                    offset=message.offset, value=message.value,
                    key=message.key, headers=tuple(message.headers or ()),
                    timestamp_ms=message.timestamp)



class _Revocations(ConsumerRebalanceListener):
    """Hands revocations to the bus, and the partitions that a rebalance
    revoked then gave back to ``on_kept``.

    Kafka's round robin and range assignors are eager: a rebalance revokes
    every partition, and the bus forgets what it read of them. kafka-python
    3.0 keeps the position of a partition assigned again to the same
    member, past records the bus dropped: those partitions must be read
    again from their committed offsets, as a new owner would.
    """

    def __init__(self, on_revoke, on_kept, group=None):
        self._on_revoke = on_revoke
        self._on_kept = on_kept
        self._group = group
        self._revoked = set()

    def on_partitions_revoked(self, revoked):
        self._revoked = set(revoked)
        if self._on_revoke and revoked:
            self._on_revoke({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned):
        LOG.info("notifbus: group %r rebalanced: this listener reads %s",
                 self._group, partition_list(
                     (tp.topic, tp.partition) for tp in assigned))
        kept, self._revoked = self._revoked & set(assigned), set()
        if kept:
            self._on_kept(kept)


def _watch_own_topics_only(consumer):
    """Make a group leader rejoin only when its own topics change
    (``BrokerQuirks.leader_watches_own_topics``).

    kafka-python's leader compares the metadata it assigned from with the
    metadata of every topic in the group, and rejoins once metadata of the
    other members' topics arrives, which it always does after the first
    assignment of a group whose members subscribe to different topics.
    Apache Kafka rebalances the whole group then; Tansu 0.6 answers such a
    lone rejoin without rebalancing the other members, and two members then
    read the same partitions. The :class:`PartitionCountAssignor` needs no
    leader metadata, so the leader only watches its own subscription.
    """
    def own_topics_snapshot(subscription, cluster):
        return {topic: cluster.partitions_for_topic(topic) or set()
                for topic in subscription.subscription or ()}

    internals.replace_metadata_snapshot(consumer, own_topics_snapshot)


def _skip_unreadable_batch(consumer, exc):
    """After ``consumer.poll`` raised ``exc``: when it came from reading a
    record batch (a codec that is not installed, a corrupt batch), a
    :class:`Received` marker of the record at the partition's position,
    whose ``error`` names the cause and the fix, and the position moved one
    record on; else ``None``.

    kafka-python 3.0 keeps the failed batch in its fetcher's
    ``_next_partition_records`` and, on the next poll, spins on it without
    end. The batch's extent is not known without reading it, so the
    partition goes on one record at a time (each a fetch) until the records
    read again; the other partitions keep flowing meanwhile.
    """
    if isinstance(exc, kerrors.KafkaError) and not isinstance(
            exc, (kerrors.UnsupportedCodecError, kerrors.CorruptRecordError)):
        return None  # the network's or the group's, not a batch's
    pending = internals.take_unreadable_batch(consumer)
    if pending is None:
        return None
    tp = pending.topic_partition
    pending.drain()
    try:
        offset = consumer.position(tp, timeout_ms=1000)
    except kerrors.KafkaError:
        offset = None
    if offset is None:
        offset = pending.next_fetch_offset
    consumer.seek(tp, offset + 1)
    if isinstance(exc, kerrors.UnsupportedCodecError):
        cause = (f"its record batch is compressed with a codec that is not "
                 f"installed ({exc}); install the kafka extra's codecs "
                 f"(pip install notifbus[kafka]: python-snappy, lz4, "
                 f"zstandard)")
    else:
        cause = (f"its record batch could not be read ({exc!r}); skipped, "
                 f"it stays in the log for replay with another client")
    return Received(topic=tp.topic, partition=tp.partition, offset=offset,
                    value=None, error=f"unreadable record: {cause}")


class KafkaConsumer(base.Consumer):
    """One kafka-python consumer in ``group``, with manual commits."""

    def __init__(self, backend, topics, group, on_revoke):
        self._group = group
        self._backend = backend
        self._topics = list(topics)
        self._on_revoke = on_revoke
        # a consumer that cannot find its group coordinator for this long
        # is rebuilt, bootstrapping again from every host of the URL
        self._rebuild_after_s = max(3 * backend.opts.session_timeout_s, 5.0)
        self._lost_since = None
        self._no_coordinator_since = None
        self._woken = threading.Event()
        # partitions to read again from their committed offsets
        self._kept = set()
        self._kept_lock = threading.Lock()
        # since when the group is stable with this assignment (assigned)
        self._settled_since = None
        self._settled_assignment = None
        self._consumer = self._new_consumer()
        #: the ConfigError of a group that refused this member, else None
        self.refused = None

    def _new_consumer(self):
        opts = self._backend.opts
        quirks = self._backend.quirks
        counts = self._backend.partition_counts
        round_robin = RoundRobinAssignor(counts)
        if quirks.leader_watches_own_topics:
            assignors = [PartitionCountAssignor(counts), round_robin]
        else:
            # round robin spreads the partitions of all the pool's topics
            # over its members (range would give every member the same
            # partition numbers of each topic, and leave members idle on
            # topics with fewer partitions than members); range is offered
            # too, so that members of other Kafka clients (librdkafka's
            # default is range,roundrobin, Java's range,cooperative-sticky)
            # can share a pool
            assignors = [round_robin, RangePartitionAssignor]
        consumer = self._backend._connect(
            kafka.KafkaConsumer, f"consumer of group {self._group!r}",
            group_id=self._group, metrics_enabled=False,
            enable_auto_commit=False,
            auto_offset_reset=opts.auto_offset_reset,
            session_timeout_ms=opts.session_timeout_ms,
            heartbeat_interval_ms=kafka_options.heartbeat_interval_ms(opts),
            max_poll_interval_ms=opts.max_poll_interval_ms,
            max_poll_records=opts.max_poll_records,
            fetch_max_wait_ms=opts.fetch_max_wait_ms,
            fetch_max_bytes=opts.fetch_max_bytes,
            partition_assignment_strategy=assignors,
            allow_auto_create_topics=False)
        if quirks.leader_watches_own_topics:
            _watch_own_topics_only(consumer)
        else:
            assume_assigned_counts(consumer, round_robin)
        consumer.subscribe(self._topics,
                           listener=_Revocations(self._on_revoke,
                                                 self._rewind_later,
                                                 self._group))
        return consumer

    def _rebuild_if_lost(self):
        """Replace a consumer that lost its group coordinator for long.

        Positions restart from the committed offsets: records delivered
        but not committed are delivered again (at least once). Only with
        ``BrokerQuirks.rebuild_clients_when_unreachable``.
        """
        if not self._backend.quirks.rebuild_clients_when_unreachable:
            return
        if not internals.coordinator_unknown(self._consumer):
            self._lost_since = None
            return
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
            return
        if now - self._lost_since < self._rebuild_after_s:
            return
        # while the brokers do not answer, their state line says it
        level = (logging.DEBUG if self._backend.connection.down_since
                 is not None else logging.WARNING)
        LOG.log(level, "notifbus: group %r has had no coordinator for "
                "%.0f s; reconnecting to %s", self._group,
                now - self._lost_since, self._backend._describe())
        try:
            fresh = self._new_consumer()
        except errors.DeliveryError as exc:
            LOG.log(logging.DEBUG if self._backend.connection.down_since
                    is not None else logging.WARNING,
                    "notifbus: reconnecting group %r failed, will retry: %s",
                    self._group, exc)
            self._lost_since = now
            return
        old, self._consumer = self._consumer, fresh
        self._lost_since = None
        close_within(lambda: old.close(autocommit=False, timeout_ms=0),
                     1.0, f"the lost consumer of group {self._group!r}",
                     native=False)

    def _report_coordinator(self):
        """Mark the brokers down after ``bootstrap_timeout_ms`` without a
        group coordinator, up once there is one."""
        unknown = internals.coordinator_unknown(self._consumer)
        if unknown is None:
            return
        if not unknown:
            self._no_coordinator_since = None
            self._backend.connection.up()
            return
        now = time.monotonic()
        if self._no_coordinator_since is None:
            self._no_coordinator_since = now
        elif (now - self._no_coordinator_since
              > self._backend.opts.bootstrap_timeout_s):
            self._backend.connection.down(
                f"group {self._group!r} has no coordinator")

    def poll(self, timeout, max_records):
        self._rebuild_if_lost()
        self._report_coordinator()
        # kafka-python's poll runs until its timeout even once woken up:
        # it is called in slices, and a wakeup ends the slices
        deadline = time.monotonic() + timeout
        while not self._woken.is_set():
            left = deadline - time.monotonic()
            try:
                batches = self._consumer.poll(
                    timeout_ms=int(max(min(left, _POLL_SLICE_S), 0) * 1000),
                    max_records=max_records)
            except Exception as exc:  # noqa: BLE001 - a decompressor's too
                unreadable = _skip_unreadable_batch(self._consumer, exc)
                if unreadable is not None:
                    return [unreadable]
                if not isinstance(exc, kerrors.KafkaError):
                    raise
                if isinstance(exc, kerrors.InvalidSessionTimeoutError):
                    self._refuse(exc)
                    return []
                LOG.warning("notifbus: poll of group %r failed, will "
                            "retry: %r", self._group, exc)
                return []
            if self._kept:
                batches = self._rewind_kept(batches)
            if batches or left <= _POLL_SLICE_S:
                return [to_received(tp, m)
                        for tp, messages in batches.items() for m in messages]
        self._woken.clear()
        return []

    def _rewind_later(self, partitions):
        """From kafka-python's IO thread: ``partitions`` were revoked and
        assigned again; the next poll rewinds them."""
        with self._kept_lock:
            self._kept |= set(partitions)

    def _rewind_kept(self, batches):
        """Seek the kept partitions to their committed offsets (or by
        ``auto_offset_reset`` where the group has none), and drop what
        ``batches`` holds of them."""
        with self._kept_lock:
            kept, self._kept = self._kept, set()
        try:
            committed = {tp: self._consumer.committed(tp) for tp in kept}
        except kerrors.KafkaError as exc:
            LOG.warning("notifbus: group %r: no committed offsets for %s, "
                        "will retry: %r", self._group, sorted(kept), exc)
            with self._kept_lock:
                self._kept |= kept
            return {tp: m for tp, m in batches.items() if tp not in kept}
        for tp, offset in committed.items():
            if offset is not None:
                self._consumer.seek(tp, offset)
            elif self._backend.opts.auto_offset_reset == "earliest":
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek_to_end(tp)
        return {tp: m for tp, m in batches.items() if tp not in kept}

    def commit(self, offsets):
        """Commit within ``commit_timeout_ms``; from ``on_revoke``, without
        waiting for the answer.

        kafka-python 3.0 calls rebalance listeners on its IO thread, where
        a commit cannot wait (it raises ``RuntimeError``): the commit is
        then sent asynchronously, ahead of the group's next request; if it
        fails, the next owner of the partitions reads from the previous
        commit (at least once).
        """
        points = {TopicPartition(topic, partition): OffsetAndMetadata(
                      offset, "", -1)
                  for (topic, partition), offset in offsets.items()}
        try:
            self._consumer.commit(
                points, timeout_ms=self._backend.opts.commit_timeout_ms)
        except kerrors.KafkaError as exc:
            raise errors.DeliveryError(
                f"commit for group {self._group!r} failed: {exc!r}") from exc
        except RuntimeError:  # called on kafka-python's IO thread
            self._consumer.commit_async(points)

    def seek(self, topic, partition, offset):
        tp = TopicPartition(topic, partition)
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)

    def assignment(self):
        return {(tp.topic, tp.partition)
                for tp in self._consumer.assignment()}

    def lag(self):
        """See :meth:`notifbus.backends.base.Consumer.lag`: the highwater
        minus the position of each assigned partition, from kafka-python's
        state as of its last fetch (no request); partitions not fetched
        from yet are left out."""
        found = {}
        for tp, state in internals.partition_states(self._consumer).items():
            position = state.position
            if state.highwater is not None and position is not None:
                found[(tp.topic, tp.partition)] = max(
                    state.highwater - position.offset, 0)
        return found

    def assigned(self):
        """Whether the group gave this member partitions of each of its
        topics, or has been stable for ``_IDLE_MEMBER_S`` without changing
        what it gave (more members than partitions leave some without a
        topic, or without any). A group leader without metadata for a
        topic just created assigns none of it, and joins again once the
        metadata arrives: a member that took the first assignment as final
        would see its partitions move again right after. The group is
        joined in :meth:`poll`.

        :raises ConfigError: the group refused this member's
            configuration (its session timeout).
        """
        if self.refused is not None:
            raise self.refused
        assignment = self._consumer.assignment()
        if {tp.topic for tp in assignment} >= set(self._topics):
            return True
        now = time.monotonic()
        if not self._stable() or assignment != self._settled_assignment:
            self._settled_since = None
            self._settled_assignment = assignment
            return False
        if self._settled_since is None:
            self._settled_since = now
        return now - self._settled_since >= _IDLE_MEMBER_S

    def _refuse(self, exc):
        """The group refused this member's configuration: log it once;
        :meth:`assigned` raises it from now on."""
        if self.refused is None:
            self.refused = delivery.refused_member(
                "kafka", self._group,
                self._backend.opts.session_timeout_ms,
                type(exc).__name__)
            LOG.error("notifbus: %s", self.refused)

    def _stable(self):
        return internals.group_stable(self._consumer)

    def wakeup(self):
        self._woken.set()
        try:
            internals.wake_poll(self._consumer)
        except Exception:  # noqa: BLE001 - best effort, poll is bounded
            pass

    def close(self, timeout=5.0):
        """Leave the group, within about ``timeout`` seconds. With
        ``BrokerQuirks.finish_rebalance_before_leave``, a rebalance in
        flight is finished first (within half of ``timeout``)."""
        deadline = time.monotonic() + timeout / 2
        while (self._backend.quirks.finish_rebalance_before_leave
               and not self._stable() and time.monotonic() < deadline):
            try:
                self._consumer.poll(timeout_ms=100, max_records=1)
            except kerrors.KafkaError:
                break
        left = max(deadline + timeout / 2 - time.monotonic(), 0.1)
        close_within(
            lambda: self._consumer.close(autocommit=False,
                                         timeout_ms=int(left * 1000)),
            left, f"the consumer of group {self._group!r}", native=False)
