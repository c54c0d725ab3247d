"""Listeners that wait for the broker.

A service often starts before its broker (a Ceilometer agent booting
before Kafka). Its notification listener must not die for that: its
consumer group member joins in the background, trying again with a
bounded backoff until the broker answers, and then reads what was sent
meanwhile (a group without committed offsets starts per
``auto_offset_reset``, ``earliest`` by default).

:class:`JoinInBackground` stands in for the backend when a
:class:`~notifbus.bus.Subscription` subscribes: its ``subscribe`` returns
a :class:`ReconnectingConsumer`, whose thread makes the attempts (the
topics created first, then the backend's own ``subscribe``). The
listener's poll, ``stop()`` and ``cleanup()`` never wait for an attempt in
flight: a poll before the member joined returns ``[]`` after its timeout
(or at once on ``wakeup``), and ``close`` only tells the thread to stop,
which then closes what a late attempt made.

Each change is logged once, through the backend's
:class:`~notifbus.backends.connection.ConnectionState` (``connection``):
a WARNING when the brokers do not answer, an INFO when they answer again.
Failed attempts are logged at DEBUG; an attempt that fails for a reason no
retry cures (a refused login, a TLS certificate that does not verify)
makes the start fail, or, once started, is logged at ERROR, once per
distinct reason.
"""

import functools
import logging
import threading
import time

from notifbus import errors
from notifbus.backends import base
from notifbus.backends.connection import ConnectionState

LOG = logging.getLogger(__name__)


def _retriable(exc):
    return isinstance(exc, errors.DeliveryError) and exc.retriable


class ReconnectingConsumer(base.Consumer):
    """A consumer group member that joins on a thread of its own, trying
    again until it has, then passes every call to the consumer it got.

    :param join: makes the member: a callable returning a
        :class:`~notifbus.backends.base.Consumer`; raises
        :class:`~notifbus.errors.DeliveryError` (``retriable`` or not) or
        another :class:`~notifbus.errors.NotifbusError`.
    :param name: what joins, for messages (``"group 'pool' on ['t']"``).
    :param policy: a :class:`~notifbus.policy.retry.RetryPolicy` whose
        :meth:`~notifbus.policy.retry.RetryPolicy.backoff_s` paces the
        attempts (its limit of retries is not used: it tries until closed).
    :param state: the backend's
        :class:`~notifbus.backends.connection.ConnectionState`.
    """

    def __init__(self, join, name, policy, state):
        self._join = join
        self.name = name
        self._policy = policy
        self._state = state
        self._consumer = None
        self._error = None
        self._failures = 0
        self._logged = None  # the last unretriable reason logged
        self._closed = False
        self._woken = False
        self._starting = True  # start() raises what no retry cures
        self._cond = threading.Condition(threading.Lock())
        self._thread = threading.Thread(
            target=self._run, name=f"notifbus-join-{name}", daemon=True)
        self._thread.start()

    # -- the joining thread --------------------------------------------------

    def _run(self):
        started = time.monotonic()
        while True:
            try:
                consumer = self._join()
            except Exception as exc:  # noqa: BLE001 - reported, retried
                if not self._failed(exc):
                    return
                continue
            with self._cond:
                closed = self._closed
                if not closed:
                    self._consumer, self._error = consumer, None
                    self._cond.notify_all()
            if closed:
                consumer.close(1.0)
                return
            self._state.up()
            if self._failures:
                LOG.debug("notifbus: %s joined after %d failed attempts "
                          "(%.1f s)", self.name, self._failures,
                          time.monotonic() - started)
            return

    def _failed(self, exc):
        """Note a failed attempt and wait for the next; ``False`` once
        closed."""
        with self._cond:
            self._failures += 1
            failures = self._failures
            self._error = exc
            self._cond.notify_all()
            if self._closed:
                return False
        wait_s = self._policy.backoff_s(failures)
        if _retriable(exc):
            self._state.down(str(exc))
            LOG.debug("notifbus: %s: attempt %d failed, next in %.1f s: "
                      "%s", self.name, failures, wait_s, exc)
        elif self._starting:
            LOG.debug("notifbus: %s cannot join: %s", self.name, exc)
        elif str(exc) != self._logged:
            self._logged = str(exc)
            LOG.error("notifbus: %s cannot join: %s; trying again every "
                      "%.0f s at most until the listener stops", self.name,
                      exc, self._policy.backoff_max_ms / 1000.0)
        deadline = time.monotonic() + wait_s
        with self._cond:
            while not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)
        return False

    # -- starting ------------------------------------------------------------

    def start(self, timeout=None):
        """Wait for the first attempt: ``True`` once joined, ``False`` when
        it failed with a retriable error (the thread goes on trying).

        ``timeout`` (seconds) instead makes it go on waiting through the
        failures until then, and raise the last error if it has not
        joined by then (0: fail at the first failed attempt).

        :raises NotifbusError: an attempt failed for a reason that no retry
            cures (a refused login, a certificate that does not verify, a
            bad configuration), or ``timeout`` passed.

        Such a failure is logged at ERROR (once per distinct reason) only
        once the start has returned: until then it is the start's to
        raise.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            try:
                while True:
                    if self._consumer is not None:
                        return True
                    error = self._error
                    if error is not None:
                        if not _retriable(error):
                            raise error
                        if deadline is None:
                            return False
                    left = None if deadline is None else \
                        deadline - time.monotonic()
                    if error is not None and left <= 0:
                        raise error
                    self._cond.wait(left)
            finally:
                self._starting = False

    @property
    def joined(self):
        """Whether the member has joined (its consumer exists)."""
        return self._consumer is not None

    @property
    def last_error(self):
        """The error of the last failed attempt, ``None`` once joined."""
        return self._error

    # -- the Consumer contract ----------------------------------------------

    def _wait_joined(self, timeout):
        """The consumer, or ``None`` after ``timeout`` seconds, on
        :meth:`wakeup` or :meth:`close`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._consumer is None:
                left = deadline - time.monotonic()
                if self._closed or self._woken or left <= 0:
                    self._woken = False
                    return None
                self._cond.wait(left)
            return self._consumer

    def poll(self, timeout, max_records):
        consumer = self._consumer or self._wait_joined(timeout)
        if consumer is None:
            return []
        return consumer.poll(timeout, max_records)

    def _joined_consumer(self, what):
        consumer = self._consumer
        if consumer is None:
            raise errors.DeliveryError(
                f"{what}: {self.name} has not joined yet")
        return consumer

    def commit(self, offsets):
        if offsets:
            self._joined_consumer("commit").commit(offsets)

    def seek(self, topic, partition, offset):
        self._joined_consumer("seek").seek(topic, partition, offset)

    def assignment(self):
        consumer = self._consumer
        return set() if consumer is None else consumer.assignment()

    def assigned(self):
        """``False`` until joined, then the joined consumer's answer."""
        consumer = self._consumer
        return consumer is not None and consumer.assigned()

    def lag(self):
        consumer = self._consumer
        lag = getattr(consumer, "lag", None)
        return None if lag is None else lag()

    def wakeup(self):
        consumer = self._consumer
        if consumer is not None:
            consumer.wakeup()
            return
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def close(self, timeout=5.0):
        """Leave the group if joined; else stop the joining thread, which
        closes what an attempt in flight makes. Returns within about
        ``timeout`` seconds."""
        with self._cond:
            self._closed = True
            consumer = self._consumer
            self._cond.notify_all()
        if consumer is not None:
            consumer.close(timeout)


class JoinInBackground:
    """Stands in for a backend when a
    :class:`~notifbus.bus.Subscription` subscribes: creates the topics,
    then joins, through a :class:`ReconnectingConsumer`.

    :param backend: the :class:`~notifbus.backends.base.Backend`.
    :param prepare: called before each attempt to subscribe (e.g. creates
        the topics), or ``None``; raises as ``backend.subscribe`` does.
    :param policy: a :class:`~notifbus.policy.retry.RetryPolicy` pacing
        the attempts.
    """

    def __init__(self, backend, policy, prepare=None):
        self._backend = backend
        self._policy = policy
        self._prepare = prepare
        state = getattr(backend, "connection", None)
        if not isinstance(state, ConnectionState):
            state = ConnectionState(
                "brokers", ",".join(f"{h}:{p}" if p else str(h)
                                    for h, p in backend.hosts))
        self.state = state
        #: the last consumer :meth:`subscribe` made
        self.consumer = None

    def _join(self, topics, group, on_revoke):
        if self._prepare is not None:
            self._prepare()
        return self._backend.subscribe(topics, group, on_revoke=on_revoke)

    def subscribe(self, topics, group, on_revoke=None):
        topics = list(topics)
        self.consumer = ReconnectingConsumer(
            functools.partial(self._join, topics, group, on_revoke),
            f"group {group!r} on {topics}", self._policy, self.state)
        return self.consumer
