"""The ``buffered`` delivery mode: send returns once the record is buffered.

A background sender takes records from a bounded buffer, sends them in
batches through the :class:`~notifbus.bus.Publisher` and retries failures
per its retry policy. Nothing is dropped silently: a record whose retries
are spent is logged, counted and written to the spool, and so is whatever is
still buffered when the sender is closed and cannot be sent in time.

Limits, as the docs say: a process killed with SIGKILL loses the records
that were in the buffer (in memory), at most ``max_buffer_records`` and
``max_buffer_bytes``.
"""

import collections
import logging
import operator
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, List, Optional, Sequence

from notifbus import errors, metrics
from notifbus import spool as spool_files
from notifbus.policy.retry import RetryPolicy
from notifbus.record import Record

if TYPE_CHECKING:
    from notifbus.bus import Publisher
    from notifbus.spool import Spool

LOG = logging.getLogger(__name__)
_TOPIC = operator.attrgetter("topic")


class BufferedSender:
    """Bounded buffer plus background sender over a publisher.

    :param publisher: a :class:`~notifbus.bus.Publisher`.
    :param spool: a :class:`~notifbus.spool.Spool`, or ``None`` to log and
        count what cannot be sent without writing it anywhere.
    :param retry: the background sender's retry setting, as oslo's
        (``None`` or ``-1`` forever, ``0`` none, ``N`` retries).
    """

    def __init__(self, publisher: "Publisher", *, max_buffer_records: int,
                 max_buffer_bytes: int, max_batch_records: int,
                 spool: Optional["Spool"], retry: Optional[int] = -1,
                 backoff_ms: float = 200, backoff_max_ms: float = 5000,
                 send_timeout_s: float = 10.0) -> None:
        self._publisher = publisher
        self.counters = publisher.counters
        self._max_records = max_buffer_records
        self._max_bytes = max_buffer_bytes
        self._max_batch = max_batch_records
        self._spool = spool
        self._policy = RetryPolicy.from_oslo(retry, backoff_ms,
                                             backoff_max_ms)
        self._send_timeout_s = send_timeout_s
        self._buffer: Deque[Record] = collections.deque()
        self._bytes = 0
        self._in_flight = 0
        self._current: Optional[List[Record]] = None
        # sends take the lock itself (Condition's own __enter__ and
        # __exit__ are Python calls), once per notification
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closing = False
        self._abandon = False
        self._idle = False  # the sender thread waits for records
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="notifbus-buffered-sender")
        self._thread.start()

    @classmethod
    def over(cls, publisher: "Publisher", **options: Any
             ) -> "BufferedSender":
        """The buffered sender of ``publisher``'s backend when it has one
        (its ``buffered_sender(publisher, **options)``: the rdkafka
        backend's buffer is librdkafka's queue), else a
        :class:`BufferedSender`. ``options`` as for the constructor."""
        own = getattr(publisher.backend, "buffered_sender", None)
        if own is not None:
            sender: BufferedSender = own(publisher, **options)
            return sender
        return cls(publisher, **options)

    # -- producer side

    def send(self, record: Record, retry: Optional[int] = None) -> None:
        """Buffer ``record``; returns as soon as it is in the buffer.

        A full buffer makes the caller wait for room per ``retry``: ``0``
        fails at once, ``N`` waits up to ``N + 1`` send timeouts, ``None``
        or ``-1`` waits as long as it takes.

        :raises RecordTooLarge: over the publisher's size limit.
        :raises DeliveryError: the buffer stayed full, or the sender is
            closed.
        """
        self._publisher.check_size(record)
        size = record.size
        with self._lock:
            if not self._closing and not self._full(size):
                self._append(record, size)
                return
        self._send_when_room(record, size, retry)

    def _send_when_room(self, record: Record, size: int,
                        retry: Optional[int]) -> None:
        """The buffer is full: wait for room as ``retry`` allows."""
        policy = RetryPolicy.from_oslo(retry)
        wait = None if policy.forever else (
            (policy.retries + 1) * self._send_timeout_s
            if policy.retries else 0.0)
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while self._full(size):
                if self._closing:
                    break
                left = None if deadline is None else deadline - \
                    time.monotonic()
                if left is not None and left <= 0:
                    self.counters.count("failed", record.topic)
                    raise errors.DeliveryError(
                        f"the notifbus send buffer is full "
                        f"({len(self._buffer)} records, {self._bytes} "
                        f"bytes; max_buffer_records {self._max_records}, "
                        f"max_buffer_bytes {self._max_bytes}): the broker "
                        f"does not keep up or is unreachable")
                self._cond.wait(left)
            if self._closing:
                raise errors.DeliveryError("the notifbus sender is closed",
                                           retriable=False)
            self._append(record, size)

    def _append(self, record: Record, size: int) -> None:
        """Buffer ``record`` (lock held); wake the sender if it sleeps."""
        self._buffer.append(record)
        self._bytes += size
        self.counters.tally(record.topic).sent += 1
        if self._idle:
            self._idle = False  # woken once, not once per record
            self._cond.notify_all()
        self.counters.maybe_log()

    def _full(self, size: int) -> bool:
        if not self._buffer:
            return False
        return (len(self._buffer) >= self._max_records
                or self._bytes + size > self._max_bytes)

    @property
    def buffered(self) -> int:
        """Records waiting in the buffer or being sent."""
        with self._cond:
            return len(self._buffer) + self._in_flight

    # -- background sender

    def _take(self) -> Optional[List[Record]]:
        with self._cond:
            while not self._buffer and not self._closing:
                self._idle = True
                try:
                    self._cond.wait()
                finally:
                    self._idle = False
            if not self._buffer:
                return None
            batch: List[Record] = []
            while self._buffer and len(batch) < self._max_batch:
                record = self._buffer.popleft()
                self._bytes -= record.size
                batch.append(record)
            self._in_flight = len(batch)
            self._current = batch
            self._cond.notify_all()
            return batch

    def _run(self) -> None:
        self._resend_spooled()
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:  # noqa: BLE001 - never lose the sender thread
                LOG.exception("notifbus: buffered sender failed a batch")
                self._give_up(batch, "sender error")
            with self._cond:
                self._in_flight = 0
                self._current = None
                self._cond.notify_all()

    def _deliver(self, batch: List[Record]) -> None:
        attempts = 0
        started = time.monotonic()
        while batch:
            results = self._publisher.attempt(batch)
            attempts += 1
            self._count_acked(batch, results, time.monotonic() - started)
            if not any(results):  # each is None or an exception
                return
            failed = [(record, error) for record, error in
                      zip(batch, results) if error is not None]
            retriable = [r for r, e in failed
                         if isinstance(e, errors.DeliveryError)
                         and e.retriable]
            hopeless = [r for r, e in failed if r not in retriable]
            if hopeless:
                self._give_up(hopeless, failed[0][1])
            if not retriable:
                return
            if self._abandon or not self._policy.allows(attempts):
                self._give_up(retriable, failed[-1][1])
                return
            self._count("retried", retriable)
            wait = self._policy.backoff_s(attempts)
            LOG.warning("notifbus: %d buffered notification(s) not "
                        "delivered (attempt %d), retrying in %.2f s: %s",
                        len(retriable), attempts, wait, failed[-1][1])
            with self._cond:
                self._cond.wait_for(lambda: self._abandon, wait)
            batch = retriable

    def _count(self, field: str, records: Sequence[Record]) -> None:
        for topic, n in collections.Counter(
                record.topic for record in records).items():
            self.counters.count(field, topic, n)

    def _count_acked(self, batch, results, seconds):
        if any(results):
            acked = collections.Counter(
                record.topic for record, error in zip(batch, results)
                if error is None)
        else:
            acked = collections.Counter(map(_TOPIC, batch))
        for topic, n in acked.items():
            tally = self.counters.tally(topic)
            tally.acked += n
            if metrics.ENABLED:
                tally.send_seconds.observe(seconds, n)

    def _give_up(self, records: Sequence[Record],
                 error: object) -> None:
        self._count("failed", records)
        if self._spool is None:
            LOG.error("notifbus: %d buffered notification(s) could not be "
                      "delivered and no spool is configured: %s",
                      len(records), error)
            return
        try:
            self._spool.write(records)
            self._count("spooled", records)
        except OSError as exc:
            LOG.error("notifbus: %d notification(s) could not be delivered "
                      "(%s) nor spooled: %s", len(records), error, exc)

    # -- start and stop

    def _resend_spooled(self) -> None:
        """Deliver the spool files of earlier runs, one after the other.

        A file is deleted once each of its records was delivered or written
        to this run's spool: a crash meanwhile leaves it for the next start
        (its records may then be sent twice, never lost).
        """
        if self._spool is None:
            return
        for path in self._spool.pending_files():
            records = spool_files.read(path)
            LOG.warning("notifbus: re-sending %d spooled notification(s) "
                        "from %s", len(records), path)
            for start in range(0, len(records), self._max_batch):
                if self._abandon:
                    return
                self._deliver(records[start:start + self._max_batch])
            os.unlink(path)

    def close(self, timeout: float) -> None:
        """Send what is buffered within ``timeout`` seconds; spool what is
        left. Returns within about ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: not self._buffer and not self._in_flight,
                max(deadline - time.monotonic(), 0))
            self._abandon = True
            leftover = list(self._buffer)
            self._buffer.clear()
            self._bytes = 0
            self._cond.notify_all()
        self._thread.join(max(deadline - time.monotonic(), 0) + 1.0)
        if self._thread.is_alive():
            # still waiting for the broker on a batch: spool it too, so a
            # process that exits now loses nothing (it may be sent twice)
            with self._cond:
                leftover.extend(self._current or ())
        if leftover:
            self._give_up(leftover, "not sent before close")
        if self._spool is not None:
            self._spool.close()
