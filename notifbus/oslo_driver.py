"""oslo.messaging transport driver for notifications over notifbus.

Selected by a transport URL such as::

    [oslo_messaging_notifications]
    transport_url = notifbus+kafka://h1:9092,h2:9092/?acks=all

This is the only module that uses oslo.messaging's driver API
(``oslo_messaging._drivers.base``), tested with oslo.messaging 14 to 18.

Topics are named as oslo's own Kafka driver names them,
``<topic>.<priority>[.<virtual host>]`` (with ``exchange_in_topic``,
``<exchange>.<topic>.<priority>[.<virtual host>]``), on both the sending and
the listening side.

RPC is not offered: notifbus carries notifications only.
"""

import logging
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple, Union

import oslo_messaging
from oslo_config import cfg
from oslo_messaging._drivers import base

from notifbus import codec, errors, metrics, settings
from notifbus.buffered import BufferedSender
from notifbus.bus import Counters, Publisher, Subscription
from notifbus.dead_letter import DeadLetters
from notifbus.policy.retry import RetryPolicy
from notifbus.reconnecting import JoinInBackground
from notifbus.record import Record
from notifbus.spool import Spool, default_spool_dir

LOG = logging.getLogger(__name__)

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: topic names a driver remembers (one per target and priority)
_MAX_TOPIC_NAMES = 1024

RPC_UNSUPPORTED = (
    "the notifbus transport carries notifications only: RPC (RPCClient "
    "call/cast, RPC servers) is not supported. Keep an RPC transport such "
    "as rabbit:// in [DEFAULT] transport_url and set notifbus+<backend>:// "
    "in [oslo_messaging_notifications] transport_url.")


def counters(transport: oslo_messaging.Transport) -> Dict[str, int]:
    """Totals of a notifbus transport, as a ``dict``: sent, acked, failed,
    retried, delivered, committed, invalid, dead_lettered, spooled,
    redelivered (requeued notifications handed out again).

    :raises TypeError: the transport does not use the notifbus driver.
    """
    return driver_of(transport).counters.as_dict()


def driver_of(transport: oslo_messaging.Transport) -> "NotifbusDriver":
    """The :class:`NotifbusDriver` of an oslo.messaging ``transport``.

    :raises TypeError: the transport does not use the notifbus driver.
    """
    driver = getattr(transport, "_driver", None)
    if not isinstance(driver, NotifbusDriver):
        raise TypeError("not a notifbus transport: its URL must start with "
                        "notifbus+<backend>://")
    return driver


class ListenerStartError(oslo_messaging.MessagingException):
    """A notification listener could not subscribe.

    Not a ``TransportDriverError``: oslo.messaging wraps those in
    ``ServerListenError`` with the server's target, which notification
    servers lack, and the cause would be lost in an ``AttributeError``.
    """


def record_key(publisher_id: Optional[str]) -> Optional[bytes]:
    """The record key of a notification: its publisher id as UTF-8, lone
    surrogates included (``surrogatepass``: what Python makes of a host
    name with a byte that is not UTF-8), or ``None`` without one.

    The key is only a partitioning hint (the ``key_hash`` partitioner keeps
    one publisher's notifications in one partition): it never makes a send
    fail. The notification itself carries the publisher id in its JSON.
    """
    if not publisher_id:
        return None
    return str(publisher_id).encode("utf-8", "surrogatepass")


class NotifbusDriver(base.BaseDriver):
    """oslo.messaging driver over a notifbus backend."""

    def __init__(self, conf: cfg.ConfigOpts,
                 url: oslo_messaging.TransportURL,
                 default_exchange: Optional[str] = None,
                 allowed_remote_exmods: Optional[List[str]] = None) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self.settings = settings.resolve(conf, url)
        common = self.settings.common
        self.backend = settings.build_backend(self.settings)
        self.counters = Counters(common.stats_log_interval_s)
        self.publisher = Publisher.from_settings(self.backend, common,
                                                 counters=self.counters)
        self.sender: Union[Publisher, BufferedSender] = self.publisher
        if common.delivery == "buffered":
            self.sender = BufferedSender.over(
                self.publisher,
                max_buffer_records=common.max_buffer_records,
                max_buffer_bytes=common.max_buffer_bytes,
                max_batch_records=common.max_batch_records,
                spool=Spool(common.spool_dir or default_spool_dir()),
                retry=common.buffered_retry,
                backoff_ms=common.retry_backoff_ms,
                backoff_max_ms=common.retry_backoff_max_ms,
                send_timeout_s=common.send_timeout_s)
        self._listeners: List[NotificationListener] = []
        # topic names by (exchange, topic, priority): one per target
        self._topics: Dict[Tuple[Optional[str], str, Optional[str]], str] = {}
        self._lock = threading.Lock()
        metrics.track(self)
        metrics.start_exporters(conf, common)

    @property
    def backend_name(self) -> str:
        """The backend's name, the ``backend`` label of its metrics."""
        return self.settings.backend

    def subscriptions(self) -> List[Subscription]:
        """The :class:`~notifbus.bus.Subscription` of each listener not
        cleaned up, in start order."""
        with self._lock:
            return [listener.subscription for listener in self._listeners]

    def require_features(self, requeue: bool = False) -> None:
        """Requeue is supported: the requeued notification alone is
        delivered again, after a backoff, at most ``max_redeliveries``
        times, then dead-lettered."""

    def send(self, target, ctxt, message, wait_for_reply=None, timeout=None,
             call_monitor_timeout=None, retry=None, transport_options=None):
        raise NotImplementedError(RPC_UNSUPPORTED)

    def listen(self, target, batch_size, batch_timeout):
        raise NotImplementedError(RPC_UNSUPPORTED)

    def topic_for(self, target: oslo_messaging.Target,
                  priority: Optional[str] = None) -> str:
        """Topic name for ``target`` (and ``priority`` on the listening
        side), the same on both sides."""
        key = (target.exchange, target.topic, priority)
        name = self._topics.get(key)
        if name is None:
            name = self._topic_name(target, priority)
            if len(self._topics) >= _MAX_TOPIC_NAMES:
                self._topics.clear()
            self._topics[key] = name
        return name

    def _topic_name(self, target: oslo_messaging.Target,
                    priority: Optional[str]) -> str:
        parts: List[Optional[str]] = []
        if self.settings.common.exchange_in_topic:
            parts.append(target.exchange or self._default_exchange)
        parts += [target.topic, priority, self.settings.virtual_host]
        name = ".".join(p for p in parts if p)
        if not _TOPIC_NAME.match(name):
            raise errors.ConfigError(
                f"{name!r} is not a valid topic name: use at most 249 "
                f"letters, digits, '.', '_' and '-' in topics, exchanges "
                f"and the virtual host")
        return name

    def send_notification(self, target: oslo_messaging.Target,
                          ctxt: Dict[str, Any], message: Dict[str, Any],
                          version: float,
                          retry: Optional[int] = None) -> None:
        """Send and block until the broker acknowledged the notification.

        :raises MessageDeliveryFailure: retries per ``retry`` are spent, or
            the notification can never be sent (too large).
        """
        value = codec.encode_compact(ctxt, message, version)
        publisher_id = message.get("publisher_id") if isinstance(
            message, dict) else None
        record = Record(topic=self.topic_for(target), value=value,
                        key=record_key(publisher_id))
        try:
            self.sender.send(record, retry)
        except errors.DeliveryError as exc:
            raise oslo_messaging.MessageDeliveryFailure(
                f"notifbus+{self.settings.backend} could not deliver a "
                f"notification to topic {record.topic!r} at "
                f"{self.settings.describe_hosts() or 'default hosts'}: "
                f"{exc}") from exc

    def listen_for_notifications(
            self, targets_and_priorities: List[Tuple[oslo_messaging.Target,
                                                     str]],
            pool: Optional[str], batch_size: int,
            batch_timeout: Optional[float]) -> base.PollStyleListener:
        """Subscribe the pool (or the default consumer group) to the topics
        and wait until the group assigned this listener its partitions."""
        common = self.settings.common
        topics = sorted({self.topic_for(target, priority)
                         for target, priority in targets_and_priorities})
        group = pool or common.consumer_group
        dead_letters = DeadLetters(self.publisher,
                                   common.dead_letter and
                                   common.dead_letter_topic,
                                   common.max_message_bytes,
                                   self.counters, pool=group)
        partitions: Dict[str, int] = {}

        def create_topics():
            for topic in topics:
                partitions[topic] = self.backend.ensure_topic(
                    topic, common.num_partitions,
                    common.send_timeout_s)

        joiner = JoinInBackground(
            self.backend, RetryPolicy(None, common.retry_backoff_ms,
                                      common.retry_backoff_max_ms),
            prepare=create_topics)
        subscription = Subscription(
            joiner, topics, group, counters=self.counters,
            commit_interval_s=common.commit_interval_s,
            read_ahead=common.read_ahead_records,
            max_redeliveries=common.max_redeliveries,
            requeue_backoff_ms=common.requeue_backoff_ms,
            requeue_backoff_max_ms=common.requeue_backoff_max_ms,
            dead_letters=dead_letters)
        try:
            # -1 (never fail) reads as None
            joined = joiner.consumer.start(common.listener_start_timeout_s)
        except errors.NotifbusError as exc:
            subscription.close(common.close_timeout_s)
            raise ListenerStartError(
                f"notifbus+{self.settings.backend} could not subscribe group "
                f"{group!r} to {topics} at "
                f"{self.settings.describe_hosts() or 'default hosts'}: "
                f"{exc}") from exc
        assigned = False
        if joined:
            try:
                assigned = subscription.wait_assigned(
                    common.assign_timeout_s)
            except errors.ConfigError as exc:
                # the group will not take this member as configured
                subscription.close(common.close_timeout_s)
                raise ListenerStartError(
                    f"notifbus+{self.settings.backend} could not subscribe "
                    f"group {group!r} to {topics}: {exc}") from exc
            if not assigned:
                LOG.warning("notifbus: group %r has not assigned partitions "
                            "of %s within %d ms; the listener goes on and "
                            "will read once it has", group, topics,
                            common.assign_timeout_ms)
        listener = NotificationListener(
            subscription, dead_letters,
            poll_timeout_s=common.poll_timeout_s,
            close_timeout_s=common.close_timeout_s,
            partitions=partitions)
        if assigned:
            listener.check_share()
        with self._lock:
            self._listeners.append(listener)
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)

    def cleanup(self) -> None:
        """Close the publisher and the backend within ``close_timeout_ms``.
        """
        timeout = self.settings.common.close_timeout_s
        metrics.untrack(self)
        if isinstance(self.sender, BufferedSender):
            self.sender.close(timeout)
        self.publisher.close()
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.stop()
        self.backend.close(timeout)


class _DispatchErrors(logging.Filter):
    """Keeps, per thread, the exception oslo's notification dispatcher
    logged last ("Callback raised an exception."), so that a requeue can
    name its reason: the dispatcher turns an endpoint's exception into
    REQUEUE, and the server then calls ``requeue()`` on the same thread.
    """

    def __init__(self):
        super().__init__()
        self._local = threading.local()

    def filter(self, record):
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            self._local.reason = f"{type(exc).__name__}: {exc}"[:512]
        return True

    def reason(self):
        return getattr(self._local, "reason", None)

    def clear(self):
        self._local.reason = None


_dispatch_errors = _DispatchErrors()
logging.getLogger("oslo_messaging.notify.dispatcher").addFilter(
    _dispatch_errors)


class IncomingNotification(base.IncomingMessage):
    """A notification read from the bus; acknowledging it lets its offset
    be committed, requeueing it delivers it alone again after a backoff
    (see :class:`~notifbus.bus.Subscription`)."""

    def __init__(self, subscription, received, ctxt, message):
        # the record's place in the log: the same record delivered again
        # keeps its id (and no random id is drawn per notification)
        topic, partition, offset = received.position
        super().__init__(ctxt, message,
                         msg_id=f"{topic}:{partition}:{offset}")
        self._subscription = subscription
        self.received = received

    @property
    def message(self):
        # oslo's dispatcher reads it before it calls the endpoints: an
        # exception logged on this thread before belongs to another dispatch
        _dispatch_errors.clear()
        return self._message

    @message.setter
    def message(self, value):
        self._message = value

    def acknowledge(self):
        _dispatch_errors.clear()
        self._subscription.ack(self.received)

    def requeue(self):
        reason = _dispatch_errors.reason()
        self._subscription.requeue(
            self.received, reason=f"the endpoint raised {reason}" if reason
            else "the endpoint returned REQUEUE")


class NotificationListener(base.PollStyleListener):
    """Polls a :class:`~notifbus.bus.Subscription` for oslo's server."""

    #: Seconds between two checks that this member reads a partition of
    #: each of its topics.
    share_check_interval_s = 10.0

    def __init__(self, subscription, dead_letters, poll_timeout_s,
                 close_timeout_s, partitions=None):
        super().__init__()
        self.subscription = subscription
        self.dead_letters = dead_letters
        self._poll_timeout_s = poll_timeout_s
        self._close_timeout_s = close_timeout_s
        self._partitions = dict(partitions or {})
        self._idle = set()  # topics found without a partition last check
        self._warned = set()
        self._checked_at = time.monotonic()
        self._stopped = threading.Event()
        self._closed = False

    def check_share(self, confirmed=True):
        """Warn when this member reads no partition of one of its topics:
        its pool has more members than the topic has partitions.

        ``confirmed=False`` (a periodic check) warns only for a topic found
        idle at the previous check too, not in the middle of a rebalance.
        """
        self._checked_at = time.monotonic()
        try:
            assignment = self.subscription.assignment()
        except Exception:  # noqa: BLE001 - a check only, never fatal
            return
        if assignment is None:  # the backend cannot tell
            return
        assigned = {topic for topic, _ in assignment}
        idle = {t for t in self.subscription.topics if t not in assigned}
        for topic in sorted(idle - self._warned):
            if not confirmed and topic not in self._idle:
                continue
            self._warned.add(topic)
            count = self._partitions.get(topic)
            LOG.warning(
                "notifbus: a listener of pool %r reads no partition of "
                "topic %s, which has %s partitions: the pool has more "
                "listeners (at least %s) than the topic has partitions, "
                "and this one stays idle for it. Raise [notifbus] "
                "num_partitions to at least the pool's listeners (it "
                "applies to topics notifbus creates; add partitions to an "
                "existing topic with the broker's tools).",
                self.subscription.group, topic,
                count if count is not None else "fewer",
                count + 1 if count is not None else "one more")
        self._warned &= idle
        self._idle = idle

    def poll(self, timeout=None, batch_size=1, batch_timeout=None):
        """Return up to ``batch_size`` notifications.

        Returns as soon as ``batch_size`` arrived, or ``batch_timeout``
        seconds after the first one, or after ``timeout`` seconds, or on
        :meth:`stop`. As oslo's own drivers, without a ``batch_timeout``
        (``None`` or 0) it waits until ``batch_size`` notifications are
        there.
        """
        now = time.monotonic()
        if now - self._checked_at >= self.share_check_interval_s:
            self.check_share(confirmed=False)
        deadline = None if timeout is None else now + timeout
        batch_deadline = None
        incoming = []
        while not self._stopped.is_set():
            wait = self._poll_timeout_s
            for limit in (deadline, batch_deadline):
                if limit is not None:
                    wait = min(wait, max(limit - time.monotonic(), 0))
            # a redelivered notification is dispatched in a batch of its
            # own: oslo requeues a whole batch when one of it fails, and
            # the others must not fail with it again
            records = self.subscription.fetch(
                wait, batch_size - len(incoming), redeliveries=not incoming)
            alone = (not incoming and len(records) == 1
                     and self.subscription.redelivered(records[0]))
            incoming.extend(self._decode(records))
            now = time.monotonic()
            if alone or len(incoming) >= batch_size:
                break
            if incoming and batch_deadline is None and batch_timeout:
                batch_deadline = now + batch_timeout
            if batch_deadline is not None and now >= batch_deadline:
                break
            if deadline is not None and now >= deadline:
                break
        return incoming

    def _decode(self, records):
        for received in records:
            try:
                if received.error is not None:
                    raise errors.DecodeError(received.error)
                oversized = self.dead_letters.oversized(received)
                if oversized is not None:
                    raise oversized
                ctxt, message = codec.decode(received.value)
            except errors.DecodeError as exc:
                self.dead_letters.handle(received, exc)
                self.subscription.ack(received)
                continue
            yield IncomingNotification(self.subscription, received, ctxt,
                                       message)

    def stop(self):
        self._stopped.set()
        self.subscription.wakeup()

    def cleanup(self):
        if not self._closed:
            self._closed = True
            self.subscription.close(self._close_timeout_s)
