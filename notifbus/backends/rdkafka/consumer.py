"""The consumer group member of the ``rdkafka`` backend.

librdkafka serves rebalance callbacks, errors and log lines from inside
``poll``, on the thread that polls. ``on_revoke`` is handed to the bus
there, before librdkafka gives the partitions up, so that the bus can
commit what it dispatched.

A librdkafka poll cannot be interrupted: :meth:`RdkafkaConsumer.poll`
waits in slices of at most 100 ms and returns after the slice in which
:meth:`RdkafkaConsumer.wakeup` was called. In a process that eventlet
monkey-patched, it polls without waiting and sleeps cooperatively between
polls, so the rebalance callbacks, and the bus code they call, run on the
listener's green thread.

Commits wait on a native thread of their own, at most
``commit_timeout_ms``, except those made from ``on_revoke``: librdkafka
holds a commit from another thread until the rebalance callback returns,
so these run on the polling thread itself (under eventlet they hold the
hub for one round trip to the broker, or about a second when it is gone).
"""

import functools
import logging
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from notifbus import errors
from notifbus.backends import base
from notifbus.backends.kafka_common import delivery
from notifbus.backends.kafka_common.logs import partition_list
from notifbus.backends.rdkafka.failures import reason
from notifbus.backends.threads import close_within, run_within
from notifbus.loop_thread import blocking, green
from notifbus.record import Received

LOG = logging.getLogger(__name__)

#: Longest single wait inside librdkafka, in seconds: how soon a poll
#: notices :meth:`RdkafkaConsumer.wakeup`.
POLL_SLICE_S = 0.1
#: Least time between two notes of the lag, in seconds.
LAG_INTERVAL_S = 0.5

#: Pause between two polls that do not wait, under eventlet.
GREEN_SLICE_S = 0.005
#: While the brokers are down, least time between two metadata requests
#: that find whether they answer again, and how long each waits.
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 0.1

# errors of a fetch that need no more than a debug line
_QUIET = (KafkaError._PARTITION_EOF, KafkaError._NO_OFFSET)


def to_received(message):
    _, timestamp = message.timestamp()
    return Received(topic=message.topic(), partition=message.partition(),
                    offset=message.offset(), value=message.value(),
                    key=message.key(),
                    headers=tuple(message.headers() or ()),
                    timestamp_ms=timestamp if timestamp > 0 else None)


class RdkafkaConsumer(base.Consumer):
    """One librdkafka consumer in ``group``; the bus commits."""

    def __init__(self, backend, topics, group, on_revoke):
        self._backend = backend
        self._events = backend.events
        self._group = group
        self._on_revoke = on_revoke
        self._commit_timeout_s = backend.opts.commit_timeout_s
        self._max_records = backend.opts.max_poll_records
        self._assignment = set()
        self._joined = False
        self._closing = False
        self._in_rebalance = False
        self._woken = False
        #: the ConfigError of a group that refused this member, else None
        self.refused = None
        self._seeks = {}
        self._probed_at = 0.0
        self._lag = {}
        self._lag_at = 0.0
        self._consumer = backend.new_consumer(
            group, f"consumer of group {group!r}")
        try:
            self._consumer.subscribe(list(topics), on_assign=self._assigned,
                                     on_revoke=self._revoked,
                                     on_lost=self._lost)
        except KafkaException as exc:
            consumer, self._consumer = self._consumer, None
            close_within(consumer.close, 1.0, "a consumer that could not "
                         "subscribe")
            raise errors.DeliveryError(
                f"could not subscribe group {group!r} to {topics} at "
                f"{backend._describe()}: {exc}") from exc

    # -- librdkafka's rebalance callbacks, on the polling thread -----------

    def _assigned(self, consumer, partitions):
        self._joined = True
        self._events.answered()
        self._assignment = {(tp.topic, tp.partition) for tp in partitions}
        LOG.info("notifbus: group %r rebalanced: this listener reads %s",
                 self._group, partition_list(self._assignment))

    def _revoked(self, consumer, partitions):
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if self._on_revoke is not None and revoked and not self._closing:
            self._in_rebalance = True
            try:
                self._on_revoke(revoked)
            except Exception:  # noqa: BLE001 - the rebalance goes on
                LOG.exception("notifbus: on_revoke of group %r failed",
                              self._group)
            finally:
                self._in_rebalance = False
        self._forget(revoked)

    def _lost(self, consumer, partitions):
        """Partitions taken away without a rebalance (the session
        expired): the bus's commit fails, and it forgets them."""
        if not self._closing:  # closing runs on a native thread: no logs
            LOG.warning("notifbus: group %r lost partitions %s",
                        self._group, sorted((tp.topic, tp.partition)
                                            for tp in partitions))
        self._revoked(consumer, partitions)

    def _forget(self, partitions):
        self._assignment -= partitions
        for tp in partitions:
            self._seeks.pop(tp, None)

    # -- polling --------------------------------------------------------------

    def _poll_once(self, timeout):
        """At most one message, waiting up to ``timeout`` seconds."""
        if green():
            message = self._consumer.poll(0)
            if message is None and timeout > 0:
                time.sleep(min(timeout, GREEN_SLICE_S))  # cooperative
        else:
            message = self._consumer.poll(min(timeout, POLL_SLICE_S))
        self._events.flush()
        return message

    def _keep(self, messages):
        found = []
        for message in messages:
            error = message.error()
            if error is None:
                found.append(to_received(message))
            elif error.code() in _QUIET:
                LOG.debug("notifbus: group %r: %s", self._group, error.str())
            elif error.code() == KafkaError.INVALID_SESSION_TIMEOUT:
                self._refuse(error.str())
            elif error.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
                LOG.warning("notifbus: group %r: %s: other members of the "
                            "group assign partitions otherwise (listeners "
                            "of the kafka backend, or other clients); give "
                            "this pool a name of its own", self._group,
                            error.str())
            else:
                LOG.warning("notifbus: group %r: %s", self._group,
                            error.str())
        return found

    def _refuse(self, detail):
        """The group refused this member's configuration: log it once;
        :meth:`assigned` raises it from now on."""
        if self.refused is None:
            self.refused = delivery.refused_member(
                "rdkafka", self._group,
                self._backend.opts.session_timeout_ms, detail)
            LOG.error("notifbus: %s", self.refused)

    def _probe_while_down(self):
        """While the backend's brokers are down, ask for metadata at most
        once every :data:`PROBE_INTERVAL_S`: librdkafka reports brokers
        going away, never coming back, and a listener with nothing to
        read and no rebalance would otherwise never say they answer."""
        now = time.monotonic()
        if (self._events.down_since is None
                or now - self._probed_at < PROBE_INTERVAL_S):
            return
        self._probed_at = now
        try:
            blocking(functools.partial(self._consumer.list_topics,
                                       timeout=PROBE_TIMEOUT_S))
        except KafkaException:
            return
        self._events.answered()

    def poll(self, timeout, max_records):
        self._probe_while_down()
        self._apply_seeks()
        self._note_lag()
        deadline = time.monotonic() + timeout
        self._woken = False
        while True:
            try:
                first = self._poll_once(max(deadline - time.monotonic(), 0))
            except KafkaException as exc:
                LOG.warning("notifbus: poll of group %r failed, will retry: "
                            "%s", self._group, exc)
                return []
            if first is not None:
                break
            if self._woken or time.monotonic() >= deadline:
                self._woken = False
                return []
        if first.error() is None:
            self._events.answered()
        messages = [first]
        if max_records > 1:
            try:
                messages += self._consumer.consume(
                    min(max_records, self._max_records) - 1, 0)
            except KafkaException as exc:
                LOG.debug("notifbus: group %r: %s", self._group, exc)
        found = self._keep(messages)
        # records of partitions revoked meanwhile are read again by their
        # new owner
        return [r for r in found
                if (r.topic, r.partition) in self._assignment]

    def commit(self, offsets):
        if not offsets:
            return
        positions = [TopicPartition(topic, partition, offset)
                     for (topic, partition), offset in offsets.items()]
        commit = functools.partial(self._consumer.commit, offsets=positions,
                                   asynchronous=False)
        try:
            if self._in_rebalance:
                # from on_revoke, on the polling thread: librdkafka holds a
                # commit from any other thread until the callback returns
                committed = commit()
            else:
                committed = run_within(commit, self._commit_timeout_s)
        except KafkaException as exc:
            raise errors.DeliveryError(
                f"commit for group {self._group!r} failed: "
                f"{reason(exc)}") from exc
        except TimeoutError as exc:
            raise errors.DeliveryError(
                f"commit for group {self._group!r} got no answer from "
                f"{self._backend._describe()} within "
                f"{self._commit_timeout_s:.1f} s") from exc
        failed = [f"{tp.topic}[{tp.partition}]: {tp.error.str()}"
                  for tp in committed or () if tp.error is not None]
        if failed:
            raise errors.DeliveryError(
                f"commit for group {self._group!r} failed: "
                f"{'; '.join(failed)}")

    def seek(self, topic, partition, offset):
        if (topic, partition) in self._assignment:
            self._seeks[(topic, partition)] = offset
            self._apply_seeks()

    def _apply_seeks(self):
        """Seek where asked; a partition that librdkafka is not fetching
        yet refuses, and is sought again at the next poll."""
        for (topic, partition), offset in list(self._seeks.items()):
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                LOG.debug("notifbus: seek of %s[%d] to %d deferred: %s",
                          topic, partition, offset, exc)
                continue
            del self._seeks[(topic, partition)]

    def assignment(self):
        return set(self._assignment)

    def lag(self):
        """See :meth:`notifbus.backends.base.Consumer.lag`: the high
        watermark librdkafka got with its last fetch minus the position,
        per assigned partition, as the polling thread last noted them (at
        most every :data:`LAG_INTERVAL_S`); partitions not fetched from yet
        are left out."""
        return dict(self._lag)

    def _note_lag(self):
        """Note the lag, on the polling thread: librdkafka's
        ``position()`` called from another thread while this one polls can
        deadlock on the GIL."""
        now = time.monotonic()
        if now - self._lag_at < LAG_INTERVAL_S:
            return
        self._lag_at = now
        found = {}
        if self._assignment:
            try:
                for tp in self._consumer.position([
                        TopicPartition(topic, partition)
                        for topic, partition in self._assignment]):
                    if tp.offset < 0:
                        continue
                    _low, high = self._consumer.get_watermark_offsets(
                        tp, cached=True)
                    if high >= 0:
                        found[(tp.topic, tp.partition)] = max(
                            high - tp.offset, 0)
            except KafkaException:
                return
        self._lag = found

    def assigned(self):
        """Whether librdkafka's first assignment of this member arrived
        (in :meth:`poll`), possibly empty.

        :raises ConfigError: the group refused this member's
            configuration (its session timeout).
        """
        if self.refused is not None:
            raise self.refused
        return self._joined

    def wakeup(self):
        self._woken = True

    def close(self, timeout=5.0):
        """Leave the group, within about ``timeout`` seconds even when the
        broker is gone. The bus committed before; the final revocation
        does not call ``on_revoke``."""
        self._closing = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            close_within(consumer.close, timeout,
                         f"the consumer of group {self._group!r}")
        self._events.flush()



