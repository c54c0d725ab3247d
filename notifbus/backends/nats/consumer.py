"""A member of a consumer group on NATS JetStream, and the record format.

See :mod:`notifbus.backends.nats.backend` for the mapping of topics, partitions
and groups. A :class:`NatsConsumer` pulls from its group's durable
consumer on each stream, only as many records as the bus asks for, so the
members of a pool share the load; it keeps what it received until the bus
commits it (``+ACK``, confirmed by the server) or gives it back (``-NAK``,
redelivered at once).

Records: the value is the message payload; the key, the producer's
timestamp and the record headers travel in NATS headers
(:data:`KEY_HEADER`, :data:`TIMESTAMP_HEADER`, :data:`HEADERS_HEADER`); a
record's offset is its stream sequence and its partition the last token of
its subject.
"""

import asyncio
import base64
import collections
import itertools
import json
import logging
import time

import nats.errors as nerrors
import nats.js.errors as jerrors

from notifbus import errors
from notifbus.backends import base
from notifbus.record import Received

LOG = logging.getLogger(__name__)

KEY_HEADER = "Notifbus-Key"
TIMESTAMP_HEADER = "Notifbus-Timestamp-Ms"
HEADERS_HEADER = "Notifbus-Headers"

# JetStream API error codes of "the consumer exists already"
CONSUMER_EXISTS = (10013, 10105, 10148)


def encode_headers(record):
    """NATS headers carrying ``record``'s key, timestamp and headers, or
    ``None``."""
    headers = {}
    if record.key is not None:
        headers[KEY_HEADER] = base64.b64encode(record.key).decode()
    if record.timestamp_ms is not None:
        headers[TIMESTAMP_HEADER] = str(int(record.timestamp_ms))
    if record.headers:
        headers[HEADERS_HEADER] = json.dumps(
            [[name, base64.b64encode(value).decode()]
             for name, value in record.headers])
    return headers or None


def header_bytes(headers):
    if not headers:
        return 0
    # NATS/1.0\r\n, "name: value\r\n" each, \r\n
    return 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())


def to_received(prefix, msg):
    """The :class:`~notifbus.record.Received` of a JetStream message whose
    subject is ``<prefix>.<topic>.<partition>``."""
    meta = msg.metadata
    topic, _, partition = msg.subject[len(prefix) + 1:].rpartition(".")
    headers = msg.headers or {}
    key = headers.get(KEY_HEADER)
    stamp = headers.get(TIMESTAMP_HEADER)
    extra = headers.get(HEADERS_HEADER)
    return Received(
        topic=topic, partition=int(partition),
        offset=meta.sequence.stream, value=msg.data,
        key=base64.b64decode(key) if key is not None else None,
        headers=tuple((name, base64.b64decode(value))
                      for name, value in json.loads(extra)) if extra else (),
        timestamp_ms=int(stamp) if stamp else int(
            meta.timestamp.timestamp() * 1000))


def api_error(what, exc):
    """A DeliveryError for a JetStream API error, retriable on 5xx."""
    return errors.DeliveryError(
        f"{what}: {exc.description} (code {exc.code}, err_code "
        f"{exc.err_code})", retriable=(exc.code or 500) >= 500)


class _Feed:
    """One stream a consumer reads, through the group's durable."""

    def __init__(self, topic, stream):
        self.topic = topic
        self.stream = stream
        self.ready = False
        self.partitions = 0
        self.next_setup = 0.0


class _Pull:
    """An outstanding pull request."""

    def __init__(self, feed, remaining, expires_at):
        self.feed = feed
        self.remaining = remaining
        self.expires_at = expires_at


class NatsConsumer(base.Consumer):
    """A member of a consumer group: pulls from the group's durable on
    each stream, holds what it received until the bus commits it.

    Its state lives on the backend's loop thread; each method runs a
    coroutine there and waits for it.
    """

    def __init__(self, backend, topics, group):
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        self._backend = backend
        self._loop = backend._loop
        self.group = group
        self.durable = backend.durable_name(group)
        self._feeds = [_Feed(topic, backend.stream_name(topic))
                       for topic in sorted(set(topics))]
        opts = backend.opts
        self._expires_s = opts.pull_expires_s
        self._progress_s = opts.ack_wait_s / 2.0
        self._timeout_s = opts.connect_timeout_s
        # loop thread state
        self._nc = None
        self._sub = None
        self._inbox = None
        self._tokens = itertools.count(1)
        self._pulls = {}
        self._inbound = collections.deque()
        self._last = {}  # stream -> the last message received from it
        self._held = {}
        self._arrived = None
        self._setting_up = None  # the setup task in flight, see _poll
        self._woken = False
        self._closed = False
        self._failing = False
        backend._call(self._setup(force=True), self._timeout_s * 2 + 1.0,
                      f"subscribe group {group!r} to {topics}")

    def __repr__(self):
        return (f"NatsConsumer(group={self.group!r}, "
                f"topics={[f.topic for f in self._feeds]})")

    # -- loop thread ----------------------------------------------------

    async def _setup(self, force=False):
        """Subscribe the inbox and make sure of the group's durables.

        A missing stream is not an error: its feed is set up on a later
        call (at most once a second unless ``force``), once the stream
        exists.
        """
        nc = await self._backend._client()
        if self._arrived is None:
            self._arrived = asyncio.Event()
            self._backend._consumers.add(self)
        if self._nc is not nc:
            self._nc, self._pulls = nc, {}
            self._inbox = nc.new_inbox()
            self._sub = await nc.subscribe(f"{self._inbox}.*",
                                           cb=self._on_message)
        now = time.monotonic()
        for feed in self._feeds:
            if feed.ready or (not force and now < feed.next_setup):
                continue
            feed.next_setup = now + 1.0
            try:
                await self._setup_feed(nc, feed)
            except jerrors.NotFoundError:
                self._loop.note(logging.DEBUG, "notifbus: stream %r of "
                                "topic %r does not exist yet", feed.stream,
                                feed.topic)

    async def _setup_within(self, timeout):
        """Run :meth:`_setup`, waiting ``timeout`` seconds at most: a setup
        that takes longer goes on, and the next poll waits for the same
        one (a poll of 0.1 s, while the bus waits for the group, does not
        cancel a setup halfway each time)."""
        task = self._setting_up
        if task is None or task.done():
            task = self._setting_up = asyncio.ensure_future(self._setup())
            # its error is the poll's that waits for it, if any
            task.add_done_callback(
                lambda done: done.cancelled() or done.exception())
        await asyncio.wait_for(asyncio.shield(task), timeout)

    async def _setup_feed(self, nc, feed):
        jsm = nc.jsm()
        info = await jsm.stream_info(feed.stream)
        count = self._backend._partitions_of(feed.topic,
                                             info.config.subjects or [])
        if count is None:
            raise errors.DeliveryError(
                f"stream {feed.stream!r} is not notifbus's stream of topic "
                f"{feed.topic!r} (subjects {info.config.subjects})",
                retriable=False)
        try:
            await jsm.consumer_info(feed.stream, self.durable)
        except jerrors.NotFoundError:
            try:
                await jsm.add_consumer(
                    feed.stream, self._backend.consumer_config(self.group))
            except jerrors.APIError as exc:
                if exc.err_code not in CONSUMER_EXISTS:
                    raise api_error(
                        f"cannot create durable {self.durable!r} on "
                        f"stream {feed.stream!r}", exc) from exc
        feed.partitions = count
        feed.ready = True

    async def _on_message(self, msg):
        if not msg.reply:  # a status, on the reply subject of its pull
            status = (msg.headers or {}).get("Status")
            if status == "100":  # idle heartbeat
                return
            pull = self._pulls.pop(msg.subject.rsplit(".", 1)[-1], None)
            if status == "409" and pull is not None and "deleted" in str(
                    msg.headers).lower():
                pull.feed.ready = False
            self._arrived.set()
            return
        # a record keeps its own subject: find its pull by stream (a feed
        # has one pull at a time)
        try:
            stream = msg.metadata.stream
        except nerrors.Error:
            stream = None
        for token, pull in list(self._pulls.items()):
            if pull.feed.stream == stream:
                pull.remaining -= 1
                if pull.remaining <= 0:
                    del self._pulls[token]
                break
        self._inbound.append([msg, time.monotonic()])
        if stream is not None:
            self._last[stream] = msg
        self._arrived.set()

    def _forget_pulls(self):
        """After a reconnection the server may have lost the requests."""
        self._pulls.clear()
        if self._arrived is not None:
            self._arrived.set()

    async def _request(self, want, expires):
        now = time.monotonic()
        for token, pull in list(self._pulls.items()):
            if now > pull.expires_at:
                del self._pulls[token]
        busy = {id(p.feed) for p in self._pulls.values()}
        for feed in self._feeds:
            if not feed.ready or id(feed) in busy:
                continue
            token = str(next(self._tokens))
            self._pulls[token] = _Pull(feed, want, now + expires + 1.0)
            request = {"batch": want, "expires": int(expires * 1e9)}
            await self._nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{feed.stream}.{self.durable}",
                json.dumps(request).encode(),
                reply=f"{self._inbox}.{token}")

    async def _progress(self):
        """Mark records held for long as in progress, so JetStream does
        not redeliver them while the dispatcher works."""
        limit = time.monotonic() - self._progress_s
        entries = [e for held in self._held.values()
                   for e in held.values()] + list(self._inbound)
        for entry in entries:
            if entry[1] < limit:
                entry[1] = time.monotonic()
                await self._nc.publish(entry[0].reply, b"+WPI")

    async def _poll(self, timeout, max_records):
        deadline = time.monotonic() + timeout
        if self._closed:
            return []
        try:
            await self._setup_within(max(timeout, 0.01))
        except (asyncio.TimeoutError, errors.DeliveryError,
                nerrors.Error) as exc:
            if self._nc is None or self._nc.is_closed:
                await asyncio.sleep(max(deadline - time.monotonic(), 0))
                raise errors.DeliveryError(
                    f"no connection to NATS at "
                    f"{self._backend.describe()}: {exc}") from exc
        await self._progress()
        while True:
            if self._woken or self._closed:
                self._woken = False
                return []
            if self._inbound:
                return self._take(max_records)
            if self._nc.is_connected:
                await self._request(max_records, min(
                    max(timeout, 0.01), self._expires_s))
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _take(self, max_records):
        taken = []
        while self._inbound and len(taken) < max_records:
            entry = self._inbound.popleft()
            msg = entry[0]
            try:
                received = self._received(msg)
            except (ValueError, nerrors.Error) as exc:
                self._loop.note(logging.ERROR, "notifbus: group %r: "
                                "cannot read %s: %r; acknowledged and "
                                "skipped", self.group, msg.subject, exc)
                asyncio.ensure_future(self._nc.publish(msg.reply, b"+ACK"))
                continue
            held = self._held.setdefault(received.position[:2], {})
            held[received.offset] = entry
            taken.append(received)
        return taken

    def _received(self, msg):
        return to_received(self._backend.opts.stream_prefix, msg)

    async def _commit(self, offsets):
        done = []
        for tp, offset in offsets.items():
            for seq, entry in list(self._held.get(tp, {}).items()):
                if seq < offset:
                    done.append((tp, seq, entry[0]))
        if not done:
            return
        answers = await asyncio.gather(
            *(self._nc.request(msg.reply, b"+ACK", timeout=self._timeout_s)
              for _, _, msg in done),
            return_exceptions=True)
        failed = []
        for (tp, seq, _), answer in zip(done, answers):
            if isinstance(answer, BaseException) and not isinstance(
                    answer, nerrors.NoRespondersError):
                failed.append(answer)
                continue
            self._held[tp].pop(seq, None)
        if failed:
            raise errors.DeliveryError(
                f"JetStream did not confirm {len(failed)} of {len(done)} "
                f"acknowledgements for group {self.group!r}: "
                f"{failed[0]!r}")

    async def _give_back(self, keep):
        """NAK the records held or received for which ``keep(tp, seq)`` is
        false, so that JetStream redelivers them at once."""
        naks = []
        for tp, held in self._held.items():
            for seq in [s for s in held if not keep(tp, s)]:
                naks.append(held.pop(seq)[0])
        kept = collections.deque()
        for entry in self._inbound:
            try:
                received = self._received(entry[0])
                position = received.position
            except (ValueError, nerrors.Error):
                kept.append(entry)
                continue
            if keep(position[:2], position[2]):
                kept.append(entry)
            else:
                naks.append(entry[0])
        self._inbound = kept
        if not naks or self._nc is None or self._nc.is_closed:
            return
        for msg in naks:
            await self._nc.publish(msg.reply, b"-NAK")
        await self._nc.flush(timeout=self._timeout_s)

    async def _seek(self, topic, partition, offset):
        await self._give_back(
            lambda tp, seq: tp != (topic, partition) or seq < offset)

    async def _close(self):
        if self._closed:
            return
        self._closed = True
        self._backend._consumers.discard(self)
        if self._setting_up is not None:
            self._setting_up.cancel()
        if self._nc is None or self._nc.is_closed:
            return
        # Give records back only once no pull request of this member waits
        # at the server: nats-server 2.9 hands a redelivery to a waiting
        # request whose inbox is gone and then neither delivers it (until
        # ack_wait) nor keeps its place (a later record comes twice).
        # Records that arrive meanwhile are given back with the others.
        deadline = time.monotonic() + self._expires_s + 0.5
        while self._pulls and time.monotonic() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(
                    min(p.expires_at for p in self._pulls.values())
                    - time.monotonic(), 0.01))
            except asyncio.TimeoutError:
                now = time.monotonic()
                for token, pull in list(self._pulls.items()):
                    if now > pull.expires_at:
                        del self._pulls[token]
        if self._sub is not None:
            try:
                await asyncio.wait_for(self._sub.drain(), self._timeout_s)
            except (asyncio.TimeoutError, nerrors.Error) as exc:
                self._loop.note(logging.WARNING, "notifbus: group %r: "
                                "draining the inbox failed: %r", self.group,
                                exc)
        await self._give_back(lambda tp, seq: False)

    def _wake(self):
        self._woken = True
        if self._arrived is not None:
            self._arrived.set()

    # -- Consumer API (caller's thread) ------------------------------

    def poll(self, timeout, max_records):
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, "
                             f"not {max_records}")
        try:
            records = self._backend._call(
                self._poll(timeout, max_records),
                timeout + self._timeout_s + 1.0,
                f"poll of group {self.group!r}")
        except errors.DeliveryError as exc:
            if not self._failing:
                # the servers' state says it already while they are down
                self._failing = (
                    logging.WARNING if self._backend.connection.down_since
                    is None else logging.DEBUG)
                LOG.log(self._failing, "notifbus: poll of group %r failed, "
                        "will retry: %s", self.group, exc)
            return []
        if self._failing:
            LOG.log(min(self._failing, logging.INFO), "notifbus: poll of "
                    "group %r works again", self.group)
            self._failing = False
        return records

    def commit(self, offsets):
        if offsets:
            self._backend._call(self._commit(dict(offsets)),
                                self._timeout_s + 1.0,
                                f"commit of group {self.group!r}")

    def seek(self, topic, partition, offset):
        self._backend._call(self._seek(topic, partition, offset),
                            self._timeout_s + 1.0,
                            f"seek of group {self.group!r}")

    def assignment(self):
        return {(feed.topic, partition) for feed in self._feeds
                if feed.ready for partition in range(feed.partitions)}

    def lag(self):
        """See :meth:`notifbus.backends.base.Consumer.lag`: the pending
        count of the group's durable on each topic's stream, as the last
        message received from it told (``num_pending``), under partition
        ``None``: a durable reads every partition of its stream."""
        found = {}
        for feed in self._feeds:
            msg = self._last.get(feed.stream)
            if msg is not None:
                found[(feed.topic, None)] = msg.metadata.num_pending
        return found

    def assigned(self):
        """Whether the group's durable exists on every stream and this
        member pulls from it (set up by :meth:`poll`); every member of a
        group reads every partition."""
        return not self._closed and all(feed.ready for feed in self._feeds)

    def wakeup(self):
        self._loop.call_soon(self._wake)

    def close(self, timeout=5.0):
        """Give back (NAK) the records held, so the group's other members
        get them at once, and leave; within about ``timeout`` seconds."""
        try:
            self._backend._call(self._close(), timeout,
                                f"close of group {self.group!r}")
        except errors.DeliveryError as exc:
            LOG.warning("notifbus: closing the consumer of group %r: %s",
                        self.group, exc)
