"""A listener of a pool on NSQ: an NSQ channel on every nsqd of the URL.

See :mod:`notifbus_nsq.backend` for the mapping. A :class:`NsqConsumer`
holds one connection per topic and nsqd (NSQ subscribes a connection to
one topic), each ``SUB``'d to the pool's channel with ``RDY
max_in_flight``. It numbers the messages it receives per topic and nsqd
(the records' offsets), finishes (``FIN``) those below an offset the bus
commits, touches (``TOUCH``) the others every half of ``msg_timeout_ms``
so that nsqd does not hand them to another listener while the bus still
holds them, and gives back (``REQ``) what is left when it closes.

A connection that ends is opened again, with a growing pause; its
partition is revoked at the next :meth:`~NsqConsumer.poll` (the bus
forgets what it had read from it, which nsqd delivers again after
``msg_timeout_ms``).
"""

import asyncio
import collections
import dataclasses
import itertools
import logging
from typing import Optional

from notifbus.backends import base
from notifbus_nsq import protocol, records
from notifbus_nsq.backend import check_name
from notifbus_nsq.connection import Connection

LOG = logging.getLogger(__name__)

RECONNECT_S = (0.1, 5.0)


@dataclasses.dataclass(eq=False)
class Feed:
    """One connection's subscription: ``topic`` on the nsqd at ``index``
    of the URL (the partition)."""

    topic: str
    index: int
    host: str
    port: int
    conn: Optional[Connection] = None
    subscribed: Optional[asyncio.Event] = None
    task: Optional[asyncio.Task] = None

    @property
    def partition(self):
        return (self.topic, self.index)


class NsqConsumer(base.Consumer):
    """A member of pool ``group`` reading ``topics``; created by
    :meth:`NsqBackend.subscribe <notifbus_nsq.backend.NsqBackend.subscribe>`.
    """

    def __init__(self, backend, topics, group, on_revoke=None):
        for topic in topics:
            check_name("topic", topic)
        check_name("channel", group)
        self._backend = backend
        self._loop = backend.loop
        self.group = group
        self._on_revoke = on_revoke
        self._feeds = [Feed(topic, index, host, port)
                       for topic in topics
                       for index, (host, port) in enumerate(backend.hosts)]
        # loop thread only, from here on
        self._started = False
        self._closing = False
        self._sequence = itertools.count()
        self._ready = collections.deque()
        # (topic, index) -> {offset: (connection, message id)}, in order
        self._in_flight = collections.defaultdict(dict)
        self._lost = set()
        self._arrived = None
        self._woken = False
        self._toucher = None

    def __repr__(self):
        return (f"<NsqConsumer channel {self.group!r} of "
                f"{sorted({f.topic for f in self._feeds})}>")

    # -- loop thread ----------------------------------------------------------

    def _start(self):
        if self._started:
            return
        self._started = True
        self._arrived = asyncio.Event()
        for feed in self._feeds:
            feed.subscribed = asyncio.Event()
            feed.task = asyncio.ensure_future(self._keep_subscribed(feed))
        self._toucher = asyncio.ensure_future(self._touch_in_flight())

    async def _keep_subscribed(self, feed):
        """Connect, SUB and RDY, again whenever the connection ends, with a
        pause doubling up to 5 s. The first failure of a series is a
        warning, the others debug lines."""
        pause, failures = RECONNECT_S[0], 0
        while not self._closing:
            conn = Connection(feed.host, feed.port, self._backend.features(),
                              on_message=lambda c, m, f=feed:
                              self._on_message(f, c, m),
                              note=self._loop.note)
            try:
                await conn.open(self._backend.connect_timeout_s)
                await asyncio.wait_for(
                    conn.request(protocol.sub(feed.topic, self.group)),
                    self._backend.connect_timeout_s)
                conn.send(protocol.rdy(self._backend.options[
                    "max_in_flight"]))
            except Exception as exc:  # noqa: BLE001 - tried again below
                conn.close()
                failures += 1
                self._loop.note(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "notifbus nsq: subscribing channel %s to %s at nsqd "
                    "%s:%s failed (%r); trying again until it answers",
                    self.group, feed.topic, feed.host, feed.port, exc)
            else:
                feed.conn = conn
                feed.subscribed.set()
                pause, failures = RECONNECT_S[0], 0
                await conn.closed.wait()
                if not self._closing:
                    self._loop.note(
                        logging.WARNING, "notifbus nsq: connection of "
                        "channel %s of %s to nsqd at %s:%s ended (%s); "
                        "connecting again", self.group, feed.topic,
                        feed.host, feed.port, conn.error)
                    self._lose(feed)
            if self._closing:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_S[1])

    def _lose(self, feed):
        """The connection of ``feed`` ended: what it delivered and was not
        finished goes back to nsqd (after msg_timeout_ms)."""
        feed.conn = None
        feed.subscribed.clear()
        self._in_flight.pop(feed.partition, None)
        self._ready = collections.deque(
            r for r in self._ready if (r.topic, r.partition) !=
            feed.partition)
        self._lost.add(feed.partition)
        self._arrived.set()

    def _on_message(self, feed, conn, message):
        offset = next(self._sequence)
        self._in_flight[feed.partition][offset] = (conn, message.id)
        self._ready.append(records.received(feed.topic, feed.index, offset,
                                            message))
        self._arrived.set()

    async def _touch_in_flight(self):
        every = self._backend.options["msg_timeout_ms"] / 2000.0
        while True:
            await asyncio.sleep(every)
            for entries in self._in_flight.values():
                for conn, message_id in entries.values():
                    conn.send(protocol.touch(message_id))

    async def _poll(self, timeout, max_records):
        self._start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._ready and not self._woken and not self._lost:
            left = deadline - loop.time()
            if left <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        self._woken = False
        lost, self._lost = self._lost, set()
        found = [self._ready.popleft()
                 for _ in range(min(max_records, len(self._ready)))]
        return found, lost

    async def _commit(self, offsets):
        for partition, next_offset in offsets.items():
            entries = self._in_flight.get(partition)
            if not entries:
                continue
            for offset in [o for o in entries if o < next_offset]:
                conn, message_id = entries.pop(offset)
                conn.send(protocol.fin(message_id))

    def _wake(self):
        self._woken = True
        if self._arrived is not None:
            self._arrived.set()

    async def _close(self, timeout):
        """Stop deliveries, give back what is in flight, close."""
        self._closing = True
        if not self._started:
            return
        self._toucher.cancel()
        live = [feed.conn for feed in self._feeds
                if feed.conn is not None and feed.conn.is_open]
        for conn in live:
            conn.send(protocol.rdy(0))
        if live:
            await asyncio.wait([asyncio.ensure_future(
                conn.stop_messages(timeout)) for conn in live])
        for entries in self._in_flight.values():
            for conn, message_id in entries.values():
                conn.send(protocol.req(message_id, 0))
        self._in_flight.clear()
        self._ready.clear()
        for feed in self._feeds:
            if feed.conn is not None:
                feed.conn.close()
            if feed.task is not None:
                feed.task.cancel()

    # -- the polling thread ------------------------------------------------

    def poll(self, timeout, max_records):
        try:
            found, lost = self._loop.run(self._poll(timeout, max_records),
                                         timeout + 10.0)
        except Exception as exc:  # noqa: BLE001 - poll logs, never raises
            LOG.warning("notifbus nsq: poll of channel %r failed: %r",
                        self.group, exc)
            return []
        if lost and self._on_revoke is not None:
            self._on_revoke(lost)
        return found

    def commit(self, offsets):
        """Finish (FIN) every message below each offset. A message whose
        connection ended meanwhile is not finished: nsqd delivers it
        again."""
        self._backend.call(self._commit(dict(offsets)), 10.0, "FIN")

    def seek(self, topic, partition, offset):
        raise NotImplementedError(
            "nsqd keeps no log and has no offsets: the nsq backend cannot "
            "seek")

    def assignment(self):
        return {feed.partition for feed in self._feeds
                if feed.conn is not None and feed.conn.is_open}

    def assigned(self):
        """Whether this member is subscribed on every nsqd (connected by
        :meth:`poll`, and again whenever a connection ends)."""
        return all(feed.subscribed is not None and feed.subscribed.is_set()
                   for feed in self._feeds)

    def wakeup(self):
        self._loop.call_soon(self._wake)

    def close(self, timeout=5.0):
        try:
            self._loop.run(self._close(max(timeout - 0.5, 0.1)), timeout)
        except Exception as exc:  # noqa: BLE001 - closing goes on
            LOG.warning("notifbus nsq: closing channel %r: %r", self.group,
                        exc)
