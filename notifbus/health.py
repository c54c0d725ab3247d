"""Whether a notifbus transport's publisher and listeners reach their
broker, from what they already know: no probe is sent.

::

    from notifbus import health

    report = health.check(transport)
    if not report.healthy:
        LOG.warning("notifications: %s", report.describe())

:func:`check` returns a :class:`Health`: one :class:`Component` for the
publisher and one per listener, each telling its ``backend``, whether it is
``connected``, its ``last_error`` and ``since`` when it is in that state.
What a component knows comes from its own traffic (the last batch sent,
the last records fetched, the last commit) and, where the backend keeps
one (Kafka), from the backend's connection state: brokers that stopped
answering make every component of the transport unconnected until they
answer again.

``connected`` is ``None`` for a component that has not talked to the
broker yet (a publisher before its first send): nothing is known against
it, and it does not make the transport unhealthy.
"""

import dataclasses
import threading
import time
from typing import Optional, Tuple


class Link:
    """Whether one publisher or listener last reached its broker.

    Written by the bus on each outcome (cheap when nothing changes), read
    by :func:`check`. ``since`` is the wall-clock time (``time.time()``) of
    the last change of ``connected``.
    """

    __slots__ = ("connected", "last_error", "since", "_lock")

    def __init__(self):
        self.connected = None
        self.last_error = None
        self.since = None
        self._lock = threading.Lock()

    def report_ok(self):
        if self.connected is not True:
            with self._lock:
                self.connected = True
                self.since = time.time()

    def report_error(self, error):
        with self._lock:
            self.last_error = str(error) or type(error).__name__
            if self.connected is not False:
                self.connected = False
                self.since = time.time()

    def report(self, results):
        """The outcome of one batch, an error or ``None`` per record: not
        connected when every record failed, connected otherwise."""
        if results and results[0] is None and self.connected:
            return  # the common case, first
        for error in results:
            if error is None:
                self.report_ok()
                return
        if results:
            self.report_error(results[0])


@dataclasses.dataclass(frozen=True)
class Component:
    """The state of a publisher or of one listener.

    :ivar role: ``"publisher"`` or ``"listener"``.
    :ivar backend: the backend's name (``kafka``, ``nats``...).
    :ivar connected: ``True`` when its last exchange with the broker
        worked, ``False`` when it failed (or the backend reports its
        brokers unreachable), ``None`` before any exchange.
    :ivar last_error: the last error seen, even once connected again
        (``None`` if none).
    :ivar since: wall-clock time (seconds since the epoch) since which
        ``connected`` has its value, or ``None``.
    :ivar topics: the topics a listener reads (empty for the publisher).
    :ivar pool: the listener's pool (consumer group), ``None`` for the
        publisher.
    """

    role: str
    backend: str
    connected: Optional[bool]
    last_error: Optional[str]
    since: Optional[float]
    topics: Tuple[str, ...] = ()
    pool: Optional[str] = None

    @property
    def healthy(self):
        return self.connected is not False

    def describe(self):
        """One line: role, pool, state, since and last error."""
        who = self.role if self.pool is None else \
            f"{self.role} of pool {self.pool!r}"
        state = {True: "connected", False: "not connected",
                 None: "not used yet"}[self.connected]
        if self.since is not None:
            state += time.strftime(" since %Y-%m-%dT%H:%M:%SZ",
                                   time.gmtime(self.since))
        if self.last_error and self.connected is not True:
            state += f": {self.last_error}"
        return f"{self.backend} {who}: {state}"


@dataclasses.dataclass(frozen=True)
class Health:
    """The state of one transport.

    :ivar healthy: no component is known to be unconnected.
    :ivar publisher: the publisher's :class:`Component`.
    :ivar listeners: a :class:`Component` per listener, in start order.
    """

    healthy: bool
    publisher: Component
    listeners: Tuple[Component, ...]

    def describe(self):
        """``healthy``, or the unhealthy components, one per line."""
        if self.healthy:
            return "healthy"
        return "\n".join(c.describe() for c in
                         (self.publisher,) + self.listeners
                         if not c.healthy)


def check(transport):
    """The :class:`Health` of a notifbus ``transport`` (as returned by
    ``oslo_messaging.get_notification_transport``), built from the state
    its publisher, listeners and backend hold. Sends nothing, does not
    block.

    :raises TypeError: the transport does not use the notifbus driver.
    """
    from notifbus import oslo_driver  # oslo_driver imports the bus

    driver = oslo_driver.driver_of(transport)
    backend = driver.settings.backend
    down = _backend_down(driver.backend)
    publisher = _component("publisher", backend, driver.publisher.link,
                           down)
    listeners = tuple(_listener(backend, subscription, down)
                      for subscription in driver.subscriptions())
    healthy = all(c.healthy for c in (publisher,) + listeners)
    return Health(healthy, publisher, listeners)


def _backend_down(backend):
    """``(since, cause)`` when the backend reports its brokers
    unreachable (Kafka's :class:`ConnectionState`), else ``None``."""
    connection = getattr(backend, "connection", None)
    down_since = getattr(connection, "down_since", None)
    if down_since is None:
        return None
    since = time.time() - (time.monotonic() - down_since)
    cause = getattr(connection, "cause", None) or \
        f"the brokers at {getattr(connection, 'where', '?')} do not answer"
    return since, cause


def _listener(backend, subscription, down):
    found = _component("listener", backend, subscription.link, down,
                       joining=_joining(subscription),
                       topics=tuple(subscription.topics),
                       pool=subscription.group)
    if found.connected is None and subscription.assignment():
        # joined its group, nothing fetched nor committed yet
        found = dataclasses.replace(found, connected=True)
    return found


def _joining(subscription):
    """Why a listener that joins its group in the background has not
    joined yet (:mod:`notifbus.reconnecting`), or ``None``."""
    consumer = getattr(subscription, "_consumer", None)
    if getattr(consumer, "joined", True):
        return None
    return str(consumer.last_error or "joining its consumer group")


def _component(role, backend, link, down, joining=None, **where):
    connected, last_error, since = link.connected, link.last_error, \
        link.since
    if down is not None and connected is not False:
        (since, last_error), connected = down, False
    if joining is not None:
        connected, last_error = False, joining
    return Component(role=role, backend=backend, connected=connected,
                     last_error=last_error, since=since, **where)
