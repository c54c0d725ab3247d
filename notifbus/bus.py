"""The bus: applies the policies to a backend and owns the guarantees.

:class:`Publisher` -- a send returns once the broker acknowledged the record.
Concurrent senders share the batch in flight (group commit): the first
sender to find no batch in flight leads, takes the pending records up to the
batching policy's limits, sends them and wakes the others with their
results; records that arrive meanwhile form the next batch. A failed attempt
is retried per the caller's retry policy, never dropped.

:class:`Subscription` -- hands records to the dispatcher and commits an
offset only once the dispatcher is done with every record before it.
"""

import collections
import heapq
import itertools
import logging
import operator
import threading
import time
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)

from notifbus import errors, metrics
from notifbus.backends.base import Backend, Consumer, TopicPartition
from notifbus.health import Link
from notifbus.offsets import OffsetTracker
from notifbus.option_values import OptionValues
from notifbus.policy.batching import BatchPolicy
from notifbus.policy.partitioning import Partitioner
from notifbus.policy.partitioning import from_name as partitioner_from_name
from notifbus.policy.retry import RetryPolicy
from notifbus.record import Received, Record

LOG = logging.getLogger(__name__)
_SIZE = operator.attrgetter("size")


class Tally:
    """The counts of one topic (and pool, for what listeners count): an
    ``int`` per :attr:`Counters.FIELDS` and two histograms,
    ``send_seconds`` and ``batch_records``."""

    __slots__ = ("sent", "acked", "failed", "retried", "delivered",
                 "committed", "invalid", "dead_lettered", "spooled",
                 "redelivered", "send_seconds", "batch_records")

    sent: int
    acked: int
    failed: int
    retried: int
    delivered: int
    committed: int
    invalid: int
    dead_lettered: int
    spooled: int
    redelivered: int

    def __init__(self) -> None:
        for field in Counters.FIELDS:
            setattr(self, field, 0)
        self.send_seconds = metrics.Histogram(metrics.SEND_SECONDS_BUCKETS)
        self.batch_records = metrics.Histogram(
            metrics.BATCH_RECORDS_BUCKETS)


class Counters:
    """Running counts of one transport, a :class:`Tally` per topic (and
    pool, for what listeners count): what :mod:`notifbus.metrics` exports.

    Counted without a lock, as plain attribute increments: a send pays a
    dictionary look-up and a few additions, and, once an exporter enabled
    them (:data:`notifbus.metrics.ENABLED`), two clock readings and
    histogram bucket searches. The totals over every tally are read-only
    attributes named after :attr:`FIELDS`, readable at any time.
    """

    FIELDS = ("sent", "acked", "failed", "retried", "delivered",
              "committed", "invalid", "dead_lettered", "spooled",
              "redelivered")

    def __init__(self, log_interval_s: float = 60.0) -> None:
        self.log_interval_s = log_interval_s
        self._logged_at = time.monotonic()
        self._lock = threading.Lock()
        self._tallies: Dict[Tuple[str, Optional[str]], Tally] = {}

    def tally(self, topic: str, pool: Optional[str] = None) -> Tally:
        """The :class:`Tally` of ``topic`` (and ``pool``), made on first
        use."""
        found = self._tallies.get((topic, pool))
        if found is None:
            with self._lock:
                found = self._tallies.setdefault((topic, pool), Tally())
        return found

    def count(self, field: str, topic: str, n: int = 1,
              pool: Optional[str] = None) -> None:
        """Add ``n`` to ``field`` of the tally of ``topic`` (and ``pool``).
        """
        tally = self.tally(topic, pool)
        setattr(tally, field, getattr(tally, field) + n)

    def tallies(self) -> Dict[Tuple[str, Optional[str]], Tally]:
        """``{(topic, pool): Tally}``, a copy of the mapping (not of the
        tallies, which go on counting)."""
        with self._lock:
            return dict(self._tallies)

    def as_dict(self) -> Dict[str, int]:
        tallies = self.tallies().values()
        return {field: sum(getattr(tally, field) for tally in tallies)
                for field in self.FIELDS}

    def maybe_log(self) -> None:
        """Log the totals at debug level, at most once an interval."""
        now = time.monotonic()
        if now - self._logged_at >= self.log_interval_s:
            self._logged_at = now
            LOG.debug("notifbus counters: %s", self.as_dict())


def _total(field):
    return property(
        lambda counters: sum(getattr(tally, field)
                             for tally in counters.tallies().values()),
        doc=f"Total of ``{field}`` over every topic and pool.")


for _field in Counters.FIELDS:
    setattr(Counters, _field, _total(_field))
del _field


class _Slot:
    """One record waiting for its batch, and the gate its sender sleeps at.

    The gate is made, held, only when the sender has to sleep (under the
    publisher's lock); the leader of a batch releases it once the record's
    result is in, or to hand the sender the lead. A sender that leads, or
    finds its result in, makes none.
    """

    __slots__ = ("record", "size", "done", "error", "lead", "gate")

    def __init__(self, record):
        self.record = record
        self.size = record.size
        self.done = False
        self.error = None
        self.lead = False
        self.gate = None

    def arm(self):
        """Make the gate, held (publisher's lock held)."""
        if self.gate is None:
            gate = threading.Lock()
            gate.acquire()
            self.gate = gate

    def wait(self):
        """Sleep until the leader opens the gate."""
        self.gate.acquire()


def _open(gates):
    for gate in gates:
        if gate is not None:
            gate.release()


class Publisher:
    """Sends records through a backend with group commit and retry.

    :param backend: a :class:`~notifbus.backends.base.Backend`.
    :param batching: a :class:`~notifbus.policy.batching.BatchPolicy`.
    :param partitioner: a :class:`~notifbus.policy.partitioning.Partitioner`.
    """

    def __init__(self, backend: Backend, batching: BatchPolicy,
                 partitioner: Partitioner, *, send_timeout_s: float,
                 num_partitions: int, max_message_bytes: int,
                 backoff_ms: float = 200, backoff_max_ms: float = 5000,
                 counters: Optional[Counters] = None) -> None:
        self._backend = backend
        self._batching = batching
        self._partitioner = partitioner
        self._send_timeout_s = send_timeout_s
        self._num_partitions = num_partitions
        self._max_message_bytes = max_message_bytes
        self._backoff_ms = backoff_ms
        self._backoff_max_ms = backoff_max_ms
        # the retry policy of each oslo retry value sent with
        self._policies: Dict[Optional[int], RetryPolicy] = {}
        self.counters = counters or Counters()
        #: whether the last batch reached the broker (see notifbus.health)
        self.link = Link()
        self._partitions: Dict[str, int] = {}
        self._pending: Deque[Any] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._leading = False
        self._closed = False

    @classmethod
    def from_settings(cls, backend: Backend, common: OptionValues,
                      counters: Optional[Counters] = None) -> "Publisher":
        """A publisher configured from the ``[notifbus]`` option values
        (:attr:`notifbus.settings.Settings.common`, read as attributes)."""
        return cls(
            backend,
            BatchPolicy(common.max_batch_records,
                        common.max_batch_bytes, common.linger_ms),
            partitioner_from_name(common.partitioner),
            send_timeout_s=common.send_timeout_s,
            num_partitions=common.num_partitions,
            max_message_bytes=common.max_message_bytes,
            backoff_ms=common.retry_backoff_ms,
            backoff_max_ms=common.retry_backoff_max_ms,
            counters=counters)

    def send(self, record: Record, retry: Optional[int] = None) -> None:
        """Send ``record``; return once the broker acknowledged it.

        ``retry`` follows oslo.messaging: ``None`` or ``-1`` retries forever,
        ``0`` makes one attempt, ``N`` at most ``N`` retries.

        :raises RecordTooLarge: over ``max_message_bytes``, not retried.
        :raises DeliveryError: the last attempt's error once the retries
            are spent, or a non-retriable error at once.
        """
        self.check_size(record)
        policy = self._policy(retry)
        tally = self.counters.tally(record.topic)
        tally.sent += 1
        self.counters.maybe_log()
        timed = metrics.ENABLED
        started = time.monotonic() if timed else 0.0
        try:
            policy.call(lambda: self._commit(record),
                        is_retriable=_is_retriable,
                        on_retry=lambda *failure: self._on_retry(tally,
                                                                 *failure))
        except Exception:
            tally.failed += 1
            raise
        tally.acked += 1
        if timed:
            tally.send_seconds.observe(time.monotonic() - started)

    def _policy(self, retry: Optional[int]) -> RetryPolicy:
        """The retry policy of oslo's ``retry``, made once per value.

        :raises ValueError: ``retry`` is no valid oslo retry value.
        """
        policy = self._policies.get(retry) if (
            retry is None or type(retry) is int) else None
        if policy is None:
            policy = RetryPolicy.from_oslo(retry, self._backoff_ms,
                                           self._backoff_max_ms)
            if len(self._policies) < 64:  # a few values in practice
                self._policies[retry] = policy
        return policy

    @property
    def backend(self) -> Backend:
        """The backend records are sent through."""
        return self._backend

    def partition(self, record: Record, timeout: float) -> int:
        """The partition the partitioner picks for ``record``, for senders
        that hand records to a client themselves.

        :raises DeliveryError: the topic's partition count is unknown
            after ``timeout`` seconds (no metadata yet).
        """
        count = self._partitions.get(record.topic)
        if count is None:
            count = self._partition_count(record.topic,
                                          time.monotonic() + timeout)
        return self._partitioner.partition(record.topic, record.key, count)

    def new_batch(self) -> None:
        """Tell the partitioner a new batch starts (see :meth:`partition`);
        the sticky one moves on to the next partition."""
        self._partitioner.new_batch()

    def check_size(self, record: Record) -> None:
        """:raises RecordTooLarge: ``record`` is over max_message_bytes."""
        if record.size > self._max_message_bytes:
            self.counters.count("failed", record.topic)
            raise errors.RecordTooLarge(
                f"notification of {record.size} bytes for topic "
                f"{record.topic!r} is over the max_message_bytes limit of "
                f"{self._max_message_bytes} bytes")

    def _on_retry(self, tally, attempts, exc, wait_s):
        tally.retried += 1
        LOG.warning("notifbus: send failed (attempt %d), retrying in "
                    "%.2f s: %s", attempts, wait_s, exc)

    def _commit(self, record):
        """One attempt, in whichever batch the record lands in."""
        error = self.attempt([record])[0]
        if error is not None:
            raise error

    def attempt(self, records: Sequence[Record]
                ) -> List[Optional[errors.DeliveryError]]:
        """One attempt for each of ``records``, sharing batches with
        concurrent senders; returns one error or ``None`` per record.

        No retry, no size check and no counting: for callers that apply
        their own retry policy to many records (the buffered sender).
        Records that make one batch, when no other sender leads, are sent
        as they are (no record waits for its result at a gate).
        """
        with self._cond:
            if self._closed:
                closed = errors.DeliveryError("the notifbus publisher is "
                                              "closed", retriable=False)
                return [closed] * len(records)
            alone = not self._leading and self._is_batch(records)
            if alone:
                self._leading = True
        if alone:
            return self._lead_batch(records)
        slots = [_Slot(record) for record in records]
        with self._cond:
            self._pending.extend(slots)
            lead = not self._leading
            if lead:
                self._leading = True
            elif self._batching.linger_s:
                self._cond.notify_all()  # a lingering leader may take them
        if lead:
            self._lead()
        for slot in slots:
            while True:
                with self._cond:
                    if slot.done:
                        break
                    lead = slot.lead
                    if lead:
                        slot.lead = False
                    else:
                        slot.arm()
                if lead:
                    self._lead()
                else:
                    slot.wait()
        return [slot.error for slot in slots]

    def _is_batch(self, records):
        """Whether ``records`` make one batch as they are: within its
        limits, and full or without linger to wait for others."""
        count = len(records)
        if not count or count > self._batching.max_records:
            return False
        nbytes = sum(map(_SIZE, records))
        if nbytes > self._batching.max_bytes and count > 1:
            return False
        return not self._batching.should_wait(count, nbytes, 0.0)

    def _lead_batch(self, records):
        """Send ``records`` as one batch, leading (taken under the lock);
        then hand the lead on as :meth:`_lead` does."""
        try:
            results = self._send_batch(records)
        finally:
            self._hand_out([], [])
        return results

    def _send_batch(self, records):
        """The results of sending ``records`` as one batch: ``None`` or an
        error per record (an exception only when interrupted)."""
        try:
            results = self._flush(records)
        except errors.DeliveryError as exc:  # no topic metadata yet
            results = [exc] * len(records)
        except Exception as exc:  # a backend bug: fail, do not hang
            LOG.exception("notifbus: backend failed a batch")
            results = [exc] * len(records)
        self.link.report(results)
        return results

    def _lead(self):
        """Gather a batch, send it, hand out the results, then hand the
        lead to the sender of the oldest pending record, if any.

        One sender leads at a time; the others sleep at their records'
        gates, and each is woken once: with its result, or with the lead.
        """
        with self._cond:
            batch = self._gather()
        results = None
        try:
            results = self._send_batch([slot.record for slot in batch])
        finally:
            if results is None:  # interrupted: never leave senders asleep
                results = [errors.DeliveryError(
                    "the send was interrupted")] * len(batch)
            self._hand_out(batch, results)

    def _hand_out(self, batch, results):
        with self._cond:
            gates = []
            for slot, error in zip(batch, results):
                slot.error = error
                slot.done = True
                gates.append(slot.gate)
            following = self._pending[0] if self._pending else None
            if following is None:
                self._leading = False
            else:
                following.lead = True
                gates.append(following.gate)
        _open(gates)

    def _gather(self):
        """The next batch, taken from the pending records (lock held)."""
        started = time.monotonic()
        limit = self._batching.max_records
        while True:
            sizes = [slot.size
                     for slot in itertools.islice(self._pending, limit)]
            count = self._batching.take(sizes)
            waited = time.monotonic() - started
            if not self._batching.should_wait(count, sum(sizes[:count]),
                                              waited):
                return [self._pending.popleft() for _ in range(count)]
            self._cond.wait(self._batching.linger_s - waited)

    def _flush(self, records):
        deadline = time.monotonic() + self._send_timeout_s
        self._partitioner.new_batch()
        partitions = []
        for record in records:
            count = self._partition_count(record.topic, deadline)
            partitions.append(self._partitioner.partition(
                record.topic, record.key, count))
        left = max(deadline - time.monotonic(), 0.001)
        results = self._backend.produce(records, partitions, left)
        if metrics.ENABLED:
            self._count_batch(records)
        return results

    def _count_batch(self, records):
        """Observe the batch's size per topic."""
        if len(records) == 1:
            sizes = ((records[0].topic, 1),)
        else:
            sizes = collections.Counter(
                record.topic for record in records).items()
        for topic, size in sizes:
            self.counters.tally(topic).batch_records.observe(size)

    def _partition_count(self, topic, deadline):
        count = self._partitions.get(topic)
        if count is None:
            left = max(deadline - time.monotonic(), 0.001)
            count = self._backend.ensure_topic(topic, self._num_partitions,
                                               left)
            self._partitions[topic] = count
        return count

    def close(self) -> None:
        """Refuse new sends; sends in flight finish."""
        with self._cond:
            self._closed = True


def in_time_order(records: List[Received]) -> List[Received]:
    """``records`` of one poll, merged across partitions by timestamp, each
    partition's in its own order (offsets never go back).

    A poll returns the records of several partitions partition after
    partition; a listener of a pool then handles notifications in the
    order they were sent, as far as their timestamps tell (oslo's
    functional tests of pools check it; Kafka itself orders a partition
    only). Records without a timestamp count as sent at 0.
    """
    if len(records) < 2:
        return records
    by_partition: Dict[TopicPartition, List[Received]] = {}
    for received in records:
        by_partition.setdefault(received.position[:2], []).append(received)
    if len(by_partition) < 2:
        return records
    return list(heapq.merge(*by_partition.values(),
                            key=lambda r: r.timestamp_ms or 0))


def _is_retriable(exc):
    return isinstance(exc, errors.DeliveryError) and exc.retriable


#: Longest poll while waiting for the group to assign a member, in seconds:
#: how soon :func:`poll_until_assigned` notices the assignment.
ASSIGN_POLL_S = 0.1


def poll_until_assigned(consumer: Consumer, timeout: float,
                        keep: Callable[[List[Received]], None],
                        max_records: int = 500) -> bool:
    """Poll ``consumer`` until its
    :meth:`~notifbus.backends.base.Consumer.assigned` says the group gave
    it its partitions, handing what each poll returns to ``keep`` (a
    member may get records before it is settled).

    :param timeout: seconds to wait at most.
    :param max_records: most records of one poll.
    :returns: ``False`` when ``timeout`` passed first.
    """
    deadline = time.monotonic() + timeout
    while not consumer.assigned():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        found = consumer.poll(min(left, ASSIGN_POLL_S), max_records)
        if found:
            keep(found)
    return True


class Subscribes(Protocol):
    """What :class:`Subscription` subscribes through: a
    :class:`~notifbus.backends.base.Backend`, or a stand-in such as
    :class:`notifbus.reconnecting.JoinInBackground`."""

    def subscribe(self, topics: Sequence[str], group: str,
                  on_revoke: Optional[Callable[[Set[TopicPartition]], None]]
                  = None) -> Consumer: ...


class Subscription:
    """One consumer group member: fetch, then commit after dispatch.

    :meth:`fetch`, :meth:`commit` and :meth:`close` run on the polling
    thread; :meth:`ack` and :meth:`requeue` on any thread.

    A fetch polls the backend for up to ``read_ahead`` records (or more,
    when the caller asks for more) and hands out ``max_records`` of them;
    the following fetches hand out the rest before polling again. Records
    read ahead are not yet delivered: they are committed only once
    dispatched and acknowledged like any other, and are dropped when their
    partition is revoked, to be read again by its next owner.

    A requeued record is kept for redelivery, not rewound to: the records
    after it go on being dispatched and acknowledged, and it is handed out
    again by a fetch ``requeue_backoff_ms`` later, the wait doubling at each
    redelivery up to ``requeue_backoff_max_ms``. Requeued again after
    ``max_redeliveries`` redeliveries, it goes to ``dead_letters`` (a
    :class:`~notifbus.dead_letter.DeadLetters`) and is acknowledged. Until
    then its offset stays unresolved, so the commit point stays below it: a
    crash, or a revoked partition, reads it again from there (at least
    once). A revoked partition drops its pending redeliveries.
    """

    def __init__(self, backend: Subscribes,
                 topics: Sequence[str], group: str,
                 counters: Optional[Counters] = None,
                 commit_interval_s: float = 0.0, read_ahead: int = 1,
                 max_redeliveries: int = 5, requeue_backoff_ms: float = 0,
                 requeue_backoff_max_ms: float = 60000,
                 dead_letters: Any = None) -> None:
        self.topics = list(topics)
        self.group = group
        self.counters = counters or Counters()
        #: whether this member last reached its broker (notifbus.health)
        self.link = Link()
        self._commit_interval_s = commit_interval_s
        self._committed_at = 0.0
        self._commit_failing = False
        self._read_ahead = max(read_ahead, 1)
        self._ahead: Deque[Received] = collections.deque()
        self._tracker = OffsetTracker()
        self.max_redeliveries = max_redeliveries
        self._backoff_s = requeue_backoff_ms / 1000.0
        self._backoff_max_s = requeue_backoff_max_ms / 1000.0
        self._dead_letters = dead_letters
        # requeued records: a heap of (due, sequence, received), those past
        # max_redeliveries, and redeliveries so far per position
        self._redeliver_lock = threading.Lock()
        self._due: List[Tuple[float, int, Received]] = []
        self._exhausted: List[Received] = []
        self._attempts: Dict[Tuple[str, int, int], int] = {}
        self._reasons: Dict[Tuple[str, int, int], str] = {}
        self._sequence = itertools.count()
        self._consumer = backend.subscribe(self.topics, group,
                                           on_revoke=self._on_revoke)

    def wait_assigned(self, timeout: float) -> bool:
        """Poll until the group gave this member its partitions (possibly
        none), within ``timeout`` seconds; ``False`` when it has not.

        What the polls return is read ahead: handed out by the next
        fetches, in order, and committed only once dispatched.
        """
        assigned = poll_until_assigned(
            self._consumer, timeout,
            lambda found: self._ahead.extend(in_time_order(found)),
            self._read_ahead)
        if assigned:
            self.link.report_ok()
        return assigned

    def lag(self) -> Optional[Dict[TopicPartition, int]]:
        """``{(topic, partition): records}`` between this member's
        position and the end of each partition it reads, or ``None`` when
        the backend cannot tell without asking the broker."""
        consumer = getattr(self, "_consumer", None)
        return None if consumer is None else consumer.lag()

    def assignment(self) -> Optional[Set[TopicPartition]]:
        """The partitions this member reads now, or ``None`` when the
        backend cannot tell."""
        return self._consumer.assignment()

    def fetch(self, timeout: float, max_records: int,
              redeliveries: bool = True) -> List[Received]:
        """Commit what is done, dead-letter what was requeued too often,
        then hand out up to ``max_records`` records: a requeued one whose
        backoff is over, alone (``[record]``, so that a batch listener
        dispatches it in a batch of its own: the records requeued with it
        do not fail again with it), else those read ahead or polled now.
        With ``redeliveries=False`` (a batch is being filled) no requeued
        record is handed out, and none cuts the wait short."""
        now = time.monotonic()
        if now - self._committed_at >= self._commit_interval_s:
            self._committed_at = now
            self.commit()
        self._give_up_exhausted()
        records = self._take_due(1, now) if redeliveries else []
        if not records:
            if not self._ahead:
                self._ahead.extend(in_time_order(self._consumer.poll(
                    self._poll_wait(timeout) if redeliveries else timeout,
                    max(max_records, self._read_ahead))))
            ahead = self._ahead
            records = [ahead.popleft()
                       for _ in range(min(max_records, len(ahead)))]
        for received in records:
            self._tracker.delivered(received.position[:2], received.offset)
        if records:
            self._count("delivered", records)
            self.link.report_ok()
        self.counters.maybe_log()
        return records

    def _count(self, field, records):
        """Count ``records`` in ``field``, per topic, for this pool."""
        topics = collections.Counter(received.topic for received in records)
        for topic, n in topics.items():
            self.counters.count(field, topic, n, pool=self.group)

    def _poll_wait(self, timeout):
        """``timeout``, cut short when a redelivery falls due earlier."""
        with self._redeliver_lock:
            if self._exhausted:
                return 0
            if self._due:
                return max(min(timeout, self._due[0][0] - time.monotonic()),
                           0)
        return timeout

    def redelivered(self, received):
        """Whether ``received`` was requeued and is being delivered
        again."""
        if not self._attempts:  # nothing requeued: no lock to take
            return False
        with self._redeliver_lock:
            return received.position in self._attempts

    def _take_due(self, max_records, now):
        found = []
        with self._redeliver_lock:
            while self._due and len(found) < max_records and \
                    self._due[0][0] <= now:
                found.append(heapq.heappop(self._due)[2])
        if found:
            self._count("redelivered", found)
        return found

    def _drop_ahead(self, partitions):
        """Forget the records read ahead from ``partitions``: they are
        read again from the partition's new position."""
        if self._ahead:
            self._ahead = collections.deque(
                r for r in self._ahead if r.position[:2] not in partitions)

    def ack(self, received: Received) -> None:
        self._tracker.acked(received.position[:2], received.offset)
        if self._attempts:
            with self._redeliver_lock:
                self._attempts.pop(received.position, None)
                self._reasons.pop(received.position, None)

    def requeue(self, received: Received,
                reason: Optional[str] = None) -> None:
        """Deliver ``received`` again after its backoff, or dead-letter it
        once it was redelivered ``max_redeliveries`` times. ``reason``
        (why the dispatcher gave it back) goes to the logs and to the
        dead-letter headers."""
        topic, partition, offset = received.position
        with self._redeliver_lock:
            if not self._tracker.requeued((topic, partition), offset):
                return  # revoked (or acknowledged) since
            attempts = self._attempts.get(received.position, 0)
            if reason:
                self._reasons[received.position] = reason
            if attempts >= self.max_redeliveries:
                self._exhausted.append(received)
                return
            self._attempts[received.position] = attempts + 1
            wait_s = min(self._backoff_s * (2 ** attempts),
                         self._backoff_max_s)
            heapq.heappush(self._due, (time.monotonic() + wait_s,
                                       next(self._sequence), received))
        LOG.warning("notifbus: pool %r requeued the notification at %s "
                    "partition %d offset %d%s; redelivery %d of %d in "
                    "%.2f s, the records after it go on", self.group, topic,
                    partition, offset, f" ({reason})" if reason else "",
                    attempts + 1, self.max_redeliveries, wait_s)

    def _give_up_exhausted(self):
        """Dead-letter (polling thread) the records requeued after their
        last redelivery, then acknowledge them."""
        with self._redeliver_lock:
            if not self._exhausted:
                return
            exhausted, self._exhausted = self._exhausted, []
            reasons = [self._reasons.get(r.position) for r in exhausted]
        for received, reason in zip(exhausted, reasons):
            attempts = self.max_redeliveries + 1
            if self._dead_letters is not None:
                self._dead_letters.give_up(received, group=self.group,
                                           attempts=attempts, reason=reason)
            else:
                LOG.error("notifbus: pool %r gave up the notification at %s "
                          "partition %d offset %d after %d attempts%s; "
                          "skipping it", self.group, *received.position,
                          attempts, f" ({reason})" if reason else "")
            self.ack(received)

    def commit(self) -> None:
        """Store the offsets that every dispatch before them allows."""
        points = self._tracker.commit_points()
        if not points:
            return
        try:
            self._consumer.commit(points)
        except errors.DeliveryError as exc:
            self.link.report_error(exc)
            # once per streak of failures: a broker that is down fails
            # every commit until it is back
            LOG.log(logging.DEBUG if self._commit_failing else
                    logging.WARNING, "notifbus: commit of %s for group %r "
                    "failed, will retry: %s", points, self.group, exc)
            self._commit_failing = True
            return
        if self._commit_failing:
            self._commit_failing = False
            LOG.info("notifbus: commits of group %r work again",
                     self.group)
        self._tracker.committed(points)
        self.link.report_ok()
        topics = collections.Counter(topic for topic, _ in points)
        for topic, n in topics.items():
            self.counters.count("committed", topic, n, pool=self.group)

    def _on_revoke(self, partitions):
        self.commit()
        revoked = set(partitions)
        with self._redeliver_lock:
            self._tracker.forget(partitions)
            self._due = [item for item in self._due
                         if item[2].position[:2] not in revoked]
            heapq.heapify(self._due)
            self._exhausted = [r for r in self._exhausted
                               if r.position[:2] not in revoked]
            for position in [p for p in self._attempts
                             if p[:2] in revoked]:
                self._attempts.pop(position, None)
                self._reasons.pop(position, None)
        self._drop_ahead(revoked)

    def pending_redeliveries(self) -> int:
        """How many requeued records wait for their redelivery."""
        with self._redeliver_lock:
            return len(self._due) + len(self._exhausted)

    def wakeup(self) -> None:
        self._consumer.wakeup()

    def close(self, timeout: float) -> None:
        self._ahead.clear()
        with self._redeliver_lock:
            self._due, self._exhausted = [], []
        try:
            self.commit()
        finally:
            self._consumer.close(timeout)
