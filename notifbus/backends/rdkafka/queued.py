"""``delivery=buffered`` on the rdkafka backend: librdkafka's own queue is
the buffer, and its delivery reports say what became of each record.

A send hands the record to librdkafka at once (``produce``, with the
partition the bus's partitioner picks) and returns; librdkafka batches,
sends and retries it (within ``message_timeout_ms``) on its own threads.
There is no second buffer in Python, no batch gathered in Python, and no
thread woken per record.

The sender has a producer of its own, which reports only failed
deliveries (``delivery.report.only.error``). confluent-kafka applies
that setting itself: librdkafka still hands every record's report to the
thread that polls, which takes the GIL for each one before dropping it
(confluent-kafka's ``dr_msg_cb``). So each send serves the reports that
are ready on its own thread (``poll(0)``, as oslo's builtin driver
does), where taking the GIL costs no wake-up, instead of a thread of
ours waiting in ``poll`` and contending with the senders for the GIL
once per record. Our thread polls without waiting every :data:`_POLL_S`
seconds, for the reports that come while nothing is sent; it sends again
what failed with a retriable error as the buffered retry setting allows,
after the retry backoff, and writes to the spool what is given up on, as
:class:`~notifbus.buffered.BufferedSender` does. It counts as
acknowledged, per topic, the attempts produced that neither failed nor
are still held by librdkafka (whose count includes the reports not yet
served); while records are in flight, the split of that count between
topics is proportional to what each has in flight, and exact once
librdkafka holds nothing. The backend's own producer, which reports
every delivery, serves confirmed sends (the spool files of earlier
runs).

Limits, as for the buffered sender: a process killed with SIGKILL loses
what librdkafka held (at most ``max_buffer_records``, and librdkafka's
``queue.buffering.max.kbytes``); a full queue makes a send wait as
``retry`` allows.
"""

import collections
import functools
import heapq
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple

from confluent_kafka import KafkaException

from notifbus import errors
from notifbus.backends.rdkafka.backend import close_producer
from notifbus.backends.threads import close_within
from notifbus.buffered import BufferedSender
from notifbus.loop_thread import blocking
from notifbus.policy.retry import RetryPolicy
from notifbus.record import Record

if TYPE_CHECKING:
    from notifbus.backends.rdkafka.backend import RdkafkaBackend
    from notifbus.bus import Publisher
    from notifbus.spool import Spool

LOG = logging.getLogger(__name__)

#: how often the report thread serves the reports, in seconds
_POLL_S = 0.1
#: how long a close waits for the reports of what it purged, in seconds
_PURGE_REPORTS_S = 1.0


class QueuedSender(BufferedSender):
    """The buffered sender of the rdkafka backend (see the module).

    Takes the arguments of :class:`~notifbus.buffered.BufferedSender`,
    the backend first: ``max_buffer_records`` bounds the records librdkafka
    holds, beside its own ``queue.buffering.max.messages`` and
    ``queue.buffering.max.kbytes``; ``max_buffer_bytes`` is not used (the
    kbytes limit is librdkafka's); ``max_batch_records`` is the records
    between two new batches of the sticky partitioner.
    """

    def __init__(self, backend: "RdkafkaBackend", publisher: "Publisher",
                 *, max_buffer_records: int, max_buffer_bytes: int,
                 max_batch_records: int, spool: Optional["Spool"],
                 retry: Optional[int] = -1, backoff_ms: float = 200,
                 backoff_max_ms: float = 5000,
                 send_timeout_s: float = 10.0) -> None:
        # BufferedSender's spool and retry helpers, not its buffer
        self._rdkafka = backend
        self._publisher = publisher
        self.counters = publisher.counters
        self._max_batch = max_batch_records
        self._max_records = max_buffer_records
        self._spool = spool
        self._policy = RetryPolicy.from_oslo(retry, backoff_ms,
                                             backoff_max_ms)
        self._send_timeout_s = send_timeout_s
        self._closing = False
        self._abandon = False
        self._sent_since_batch = 0
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        # attempts handed to librdkafka, those reported failed, and those
        # counted acknowledged, by topic (see _count_acked)
        self._attempts: Dict[str, int] = collections.defaultdict(int)
        self._failed: Dict[str, int] = collections.defaultdict(int)
        self._acked: Dict[str, int] = collections.defaultdict(int)
        # failed attempts, noted by any thread: (record, attempts, error)
        self._failures: Deque[Tuple[Record, int, Any]] = collections.deque()
        # records to send again, the report thread's (and close's once it
        # stopped): (due, sequence, record, attempts)
        self._due: List[Tuple[float, int, Record, int]] = []
        self._sequence = itertools.count()
        self._wake = threading.Event()  # set at close
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="notifbus-rdkafka-reports")
        self._thread.start()

    # -- producer side

    def send(self, record: Record, retry: Optional[int] = None) -> None:
        """Hand ``record`` to librdkafka; returns once it is queued there.

        A full queue makes the caller wait for room per ``retry``, as
        :meth:`BufferedSender.send <notifbus.buffered.BufferedSender.send>`
        does.

        :raises RecordTooLarge: over the publisher's size limit.
        :raises DeliveryError: the queue stayed full, or the sender is
            closed.
        """
        self._publisher.check_size(record)
        if self._closing:
            raise errors.DeliveryError("the notifbus sender is closed",
                                       retriable=False)
        self._sent_since_batch += 1
        if self._sent_since_batch >= self._max_batch:
            self._sent_since_batch = 0
            self._publisher.new_batch()
        self.counters.tally(record.topic).sent += 1
        self._produce(record, 1, retry)
        self.counters.maybe_log()

    def producer(self) -> Any:
        """The sender's own producer, made on first use.

        :raises DeliveryError: librdkafka refused to make it.
        """
        producer = self._producer
        if producer is None:
            with self._producer_lock:
                if self._producer is None:
                    self._producer = self._rdkafka.buffered_producer(
                        self._report)
                producer = self._producer
        return producer

    def _produce(self, record: Record, attempts: int,
                 retry: Optional[int] = -1) -> None:
        """Queue one attempt of ``record``; a refusal is a failed attempt
        (see :meth:`_failed`), a full queue waits as ``retry`` allows."""
        deadline = None
        # a first attempt's failure comes to the producer's own callback,
        # which rebuilds the record from librdkafka's message
        report = None if attempts == 1 else functools.partial(
            self._report_again, record, attempts)
        headers = list(record.headers) if record.headers else None
        while True:
            try:
                producer = self._producer or self.producer()
                if len(producer) >= self._max_records:
                    raise BufferError("max_buffer_records")
                partition = self._publisher.partition(
                    record, self._send_timeout_s)
                if report is None:
                    producer.produce(record.topic, record.value, record.key,
                                     partition=partition, headers=headers,
                                     timestamp=record.timestamp_ms or 0)
                else:
                    producer.produce(record.topic, record.value, record.key,
                                     partition=partition, headers=headers,
                                     timestamp=record.timestamp_ms or 0,
                                     on_delivery=report)
                self._attempts[record.topic] += 1
                break
            except BufferError:  # librdkafka's queue is full
                # librdkafka counts the reports not served yet: serving
                # those ready may make room
                self._serve_ready(producer)
                if deadline is None:
                    deadline = self._queue_deadline(retry)
                    continue
                if time.monotonic() >= deadline:
                    self.counters.count("failed", record.topic)
                    raise errors.DeliveryError(
                        f"the notifbus send buffer, librdkafka's queue, is "
                        f"full ({len(producer)} records; max_buffer_records "
                        f"{self._max_records}): the broker does not keep up "
                        f"or is unreachable") from None
                time.sleep(0.005)
            except KafkaException as exc:
                self._failures.append((record, attempts,
                                       self._rdkafka.delivery_error(
                                           record, exc.args[0])))
                return
            except errors.DeliveryError as exc:  # no producer, no metadata
                self._failures.append((record, attempts, exc))
                return
        self._serve_ready(producer)

    def _serve_ready(self, producer: Any) -> None:
        """Serve the delivery reports that are ready, on this thread (see
        the module); the record just queued stays queued whatever this
        raises."""
        try:
            producer.poll(0)
        except (KafkaException, RuntimeError) as exc:  # reset meanwhile
            LOG.debug("notifbus: serving librdkafka's reports failed: %r",
                      exc)

    def _queue_deadline(self, retry: Optional[int]) -> float:
        policy = RetryPolicy.from_oslo(retry)
        if policy.forever:
            return float("inf")
        wait = (policy.retries + 1) * self._send_timeout_s \
            if policy.retries else 0.0
        return time.monotonic() + wait

    @property
    def buffered(self) -> int:
        """Records librdkafka holds, or waiting to be sent again."""
        producer = self._producer
        return (len(producer) if producer is not None else 0) + \
            len(self._due) + len(self._failures)

    # -- delivery reports (on any thread that polls)

    def _report(self, err, message) -> None:
        """librdkafka's ``on_delivery`` for a failed first attempt."""
        kind, timestamp_ms = message.timestamp()
        self._report_again(Record(
            message.topic(), message.value(), key=message.key(),
            headers=tuple(message.headers() or ()),
            timestamp_ms=timestamp_ms if kind else None), 1, err, message)

    def _report_again(self, record: Record, attempts: int, err,
                      message) -> None:
        """librdkafka's ``on_delivery`` for a failed attempt of
        ``record``."""
        if err is not None:
            self._failed[record.topic] += 1
            self._failures.append((record, attempts, err))

    def _count_acked(self) -> None:
        """Count as acknowledged the attempts neither failed nor held by
        librdkafka (see the module); called after serving the reports."""
        producer = self._producer
        # in this order: an attempt produced meanwhile, or a failure served
        # meanwhile, is then counted later, never as acknowledged
        attempts = dict(self._attempts)
        held = len(producer) if producer is not None else 0
        open_by_topic = {topic: count - self._failed[topic]
                         - self._acked[topic]
                         for topic, count in attempts.items()}
        still_open = sum(open_by_topic.values())
        if still_open <= held:
            return
        settled = still_open - held
        for topic, left in open_by_topic.items():
            if left <= 0:
                continue
            acked = left if held == 0 else settled * left // still_open
            if acked:
                self._acked[topic] += acked
                self.counters.tally(topic).acked += acked

    def _handle_failures(self) -> None:
        """Each failed attempt noted: send it again after the backoff as
        the retry setting allows, else give it up (spool)."""
        failures = self._failures
        while failures:
            record, attempts, error = failures.popleft()
            if not isinstance(error, errors.DeliveryError):  # KafkaError
                if error.fatal():
                    self._reset_producer()
                error = self._rdkafka.delivery_error(record, error)
            if (not error.retriable or self._abandon
                    or not self._policy.allows(attempts)):
                self._give_up([record], error)
                continue
            wait = self._policy.backoff_s(attempts)
            self.counters.count("retried", record.topic)
            LOG.warning("notifbus: a buffered notification was not "
                        "delivered (attempt %d), retrying in %.2f s: %s",
                        attempts, wait, error)
            heapq.heappush(self._due, (time.monotonic() + wait,
                                       next(self._sequence), record,
                                       attempts + 1))

    def _reset_producer(self) -> None:
        """Drop the producer after a fatal error, once librdkafka reported
        what it held as failed (those records are sent again); the next
        send makes a new one."""
        producer = self._producer
        if producer is None:
            return
        LOG.warning("notifbus: resetting the buffered librdkafka producer "
                    "after a fatal error")
        self._purge(producer)
        if len(producer):
            LOG.error("notifbus: a discarded librdkafka producer did not "
                      "report %d buffered notification(s): they may be "
                      "lost", len(producer))
        self._count_acked()
        with self._producer_lock:
            if self._producer is producer:
                self._producer = None
        close_within(functools.partial(close_producer, producer, 0), 1.0,
                     "a discarded librdkafka producer")

    def _send_due(self) -> None:
        """Queue again the records whose backoff is over."""
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, record, attempts = heapq.heappop(self._due)
            try:
                self._produce(record, attempts, retry=0)
            except errors.DeliveryError as exc:  # the queue is full
                self._failures.append((record, attempts, exc))

    def _step(self, timeout: float) -> None:
        """Serve the reports for up to ``timeout`` seconds, then deal
        with the failures and the records due again."""
        self._serve(timeout)
        self._count_acked()
        self._handle_failures()
        self._send_due()

    def _run(self) -> None:
        self._resend_spooled()
        while not self._closing:
            self._wake.wait(_POLL_S)  # not in poll: see the module
            self._step(0)

    def _serve(self, timeout: float) -> None:
        producer = self._producer
        if producer is None:
            time.sleep(timeout)
            return
        if timeout:
            blocking(producer.poll, timeout)
        else:
            self._serve_ready(producer)
        self._rdkafka.events.flush()

    def _purge(self, producer: Any) -> None:
        """Drop what ``producer`` holds; librdkafka reports it failed:
        serve those reports for up to :data:`_PURGE_REPORTS_S`."""
        producer.purge()
        reported_by = time.monotonic() + _PURGE_REPORTS_S
        while len(producer) and time.monotonic() < reported_by:
            blocking(producer.poll, 0.01)
        self._rdkafka.events.flush()

    # -- start and stop

    def close(self, timeout: float) -> None:
        """Deliver what librdkafka holds, and what waits to be sent again,
        within ``timeout`` seconds; spool what is left. Returns within
        about ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        self._thread.join(max(deadline - time.monotonic(), 0) + _POLL_S)
        while self.buffered and time.monotonic() < deadline:
            self._step(min(0.05, max(deadline - time.monotonic(), 0)))
        self._abandon = True
        producer = self._producer
        if producer is not None and len(producer):
            # librdkafka reports what it drops as failed: spooled then
            self._purge(producer)
        self._count_acked()
        self._handle_failures()
        leftover = [record for _, _, record, _ in self._due]
        self._due.clear()
        if leftover:
            self._give_up(leftover, "not sent before close")
        if self._thread.is_alive():  # still resending spool files
            LOG.warning("notifbus: the spool files of earlier runs were "
                        "not all sent before close; they are kept")
        if self._spool is not None:
            self._spool.close()
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            close_within(functools.partial(close_producer, producer, 0),
                         1.0, "the buffered librdkafka producer")
