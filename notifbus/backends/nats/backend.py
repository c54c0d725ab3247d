"""The backend class of the ``nats`` backend, which the package's
docstring (:mod:`notifbus.backends.nats`) describes."""

import asyncio
import datetime
import hashlib
import itertools
import json
import logging
import re
import ssl
import time
import weakref

import nats
import nats.errors as nerrors
import nats.js.errors as jerrors
from nats.js import api

from notifbus import errors
from notifbus.backends import base
from notifbus.backends.connection import ConnectionState
from notifbus.backends.nats import internals
from notifbus.backends.nats import options as own_options
from notifbus.backends.nats.consumer import (
    NatsConsumer,
    api_error,
    encode_headers,
    header_bytes,
    to_received,
)
from notifbus.loop_thread import LoopClosed, LoopThread

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 4222

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# JetStream API error codes
_STREAM_NOT_FOUND = 10059
_STREAM_NAME_IN_USE = 10058
_SUBJECTS_OVERLAP = 10065
_MESSAGE_TOO_LARGE = 10054
CONSUMER_EXISTS = (10013, 10105, 10148)
# what nats-py's error callback reports of a connection going away, before
# its disconnected callback
_CONNECTION_LOST = (nerrors.UnexpectedEOF, nerrors.ConnectionClosedError,
                    nerrors.StaleConnectionError, ConnectionError)

class NatsBackend(base.Backend):
    """NATS JetStream through nats-py: one connection per backend, on its
    own event loop thread, shared by the producer and every consumer."""

    #: every member of a group reads every partition: no rebalance, no
    #: ``on_revoke``
    unsupported = frozenset({"rebalance"})

    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        opts = self.opts
        prefix = opts.stream_prefix
        if not prefix or not _NAME.match(prefix):
            raise errors.ConfigError(
                f"stream_prefix {prefix!r} is not valid: use letters, "
                f"digits, '-' and '_'")
        self.start_time = None
        if opts.deliver_start_time:
            self.start_time = _parse_time(opts.deliver_start_time)
        self._loop = LoopThread(f"notifbus-nats-{id(self):x}")
        #: one WARNING when the servers stop answering, one INFO when they
        #: answer again (lines noted on the loop thread, logged by callers)
        self.connection = ConnectionState("NATS servers", self.describe(),
                                          log=self._loop.note)
        # The state below is touched on the loop thread only.
        self._nc = None
        self._connecting = None
        self._partition_counts = {}
        self._acks = {}
        self._ack_inbox = None
        self._ack_nc = None
        self._tokens = itertools.count(1)
        self._consumers = weakref.WeakSet()
        self._readers = {}

    @classmethod
    def list_opts(cls):
        return own_options.list_opts()

    # -- naming ---------------------------------------------------------

    def describe(self):
        """``host:port,...`` for messages (no credentials)."""
        return ",".join(f"{host}:{port or DEFAULT_PORT}"
                        for host, port in self.hosts or [("127.0.0.1",
                                                          None)])

    def stream_name(self, topic):
        """Stream of ``topic``: ``<prefix>_<topic>``, dots made
        underscores."""
        return f"{self.opts.stream_prefix}_{topic.replace('.', '_')}"

    def subject(self, topic, partition):
        """Subject of a partition: ``<prefix>.<topic>.<partition>``."""
        return f"{self.opts.stream_prefix}.{topic}.{partition}"

    def durable_name(self, group):
        """Durable consumer of ``group``: the group name, with a hash
        suffix when characters JetStream refuses had to be replaced."""
        clean = re.sub(r"[^A-Za-z0-9_-]", "_", group) or "_"
        if clean != group:
            digest = hashlib.sha1(group.encode()).hexdigest()[:8]
            clean = f"{clean}_{digest}"
        return clean

    def _partitions_of(self, topic, subjects):
        """Partition count a stream's subjects give ``topic``, or None
        when they are not notifbus's subjects of ``topic``."""
        wanted = [self.subject(topic, n) for n in range(len(subjects))]
        return len(subjects) if subjects and sorted(subjects) == sorted(
            wanted) else None

    # -- calling the loop -----------------------------------------------

    def _call(self, coro, timeout, what):
        """Run ``coro`` on the loop thread within ``timeout`` seconds.

        :raises DeliveryError: on a timeout (retriable), a closed backend
            (not retriable), or what ``coro`` raised.
        """
        try:
            return self._loop.run(coro, timeout)
        except LoopClosed as exc:
            raise errors.DeliveryError(
                f"the NATS backend for {self.describe()} is closed "
                f"({what})", retriable=False) from exc
        except TimeoutError as exc:
            raise errors.DeliveryError(
                f"NATS at {self.describe()} did not answer within "
                f"{timeout:.1f} s ({what})") from exc
        except asyncio.CancelledError as exc:
            raise errors.DeliveryError(
                f"{what} was cancelled: the NATS backend for "
                f"{self.describe()} is closing", retriable=False) from exc
        except (nerrors.Error, OSError) as exc:
            raise errors.DeliveryError(
                f"NATS at {self.describe()} failed ({what}): {exc!r}"
            ) from exc

    # -- connection (loop thread) -----------------------------------------

    async def _client(self):
        """The connected client, connecting first if needed."""
        nc = self._nc
        if nc is not None and not nc.is_closed:
            return nc
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    def _ssl_context(self):
        opts = self.opts
        if not (opts.tls or opts.tls_cafile or opts.tls_certfile):
            return None
        context = ssl.create_default_context(cafile=opts.tls_cafile)
        if opts.tls_certfile:
            context.load_cert_chain(opts.tls_certfile, opts.tls_keyfile)
        if not opts.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _credentials(self):
        opts = self.opts
        user = self.username or opts.user
        password = self.password if self.username else opts.password
        found = {}
        if user:
            found.update(user=user, password=password or "")
        if opts.token:
            found["token"] = opts.token
        return found

    async def _connect(self):
        opts = self.opts
        try:
            context = self._ssl_context()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise errors.DeliveryError(
                f"cannot load the TLS files for NATS at {self.describe()} "
                f"(tls_cafile, tls_certfile, tls_keyfile): {exc}",
                retriable=False) from exc
        scheme = "tls" if context else "nats"
        servers = [f"{scheme}://{host}:{port or DEFAULT_PORT}"
                   for host, port in self.hosts or [("127.0.0.1", None)]]
        seen = []
        nc = nats.NATS()

        async def on_error(exc):
            seen.append(exc)  # reported by _connect_error when connecting
            if nc is self._nc:
                # a lost connection, each failed reconnection attempt: the
                # connection state says it once
                lost = (self.connection.down_since is not None
                        or isinstance(exc, _CONNECTION_LOST))
                self._loop.note(logging.DEBUG if lost else logging.WARNING,
                                "notifbus: NATS at %s: %r", self.describe(),
                                exc)

        async def on_disconnected():
            if nc is not self._nc:  # closed on purpose, or replaced
                return
            self.connection.down("disconnected; nats-py reconnects")

        async def on_reconnected():
            self.connection.up()
            if context is not None and not internals.uses_tls(nc):
                self._loop.note(logging.ERROR,
                                "notifbus: NATS at %s answered without TLS "
                                "after a reconnection; closing",
                                self.describe())
                await _close_quietly(nc, 1.0)
            for consumer in list(self._consumers):
                consumer._forget_pulls()

        kwargs = dict(
            servers=servers, name=opts.client_name,
            connect_timeout=opts.connect_timeout_s,
            reconnect_time_wait=opts.reconnect_time_wait_s,
            # the first connection fails fast; reconnects follow the option
            allow_reconnect=False, max_reconnect_attempts=1,
            error_cb=on_error, disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected, dont_randomize=False,
            **self._credentials())
        if context is not None:
            kwargs["tls"] = context
            if opts.tls_hostname:
                kwargs["tls_hostname"] = opts.tls_hostname
        try:
            await asyncio.wait_for(nc.connect(**kwargs),
                                   opts.connect_timeout_s)
        except (asyncio.TimeoutError, Exception) as exc:
            server_info = internals.server_info(nc)
            await _discard(nc)
            error = self._connect_error(exc, seen, server_info, context)
            if error.retriable:
                self.connection.down(str(error))
            raise error from exc
        if context is not None and not internals.uses_tls(nc):
            await _discard(nc)
            raise errors.DeliveryError(
                f"NATS at {self.describe()} does not offer TLS, but TLS is "
                f"configured (tls, tls_cafile or tls_certfile); refusing a "
                f"plain connection", retriable=False)
        internals.allow_reconnects(nc, opts.max_reconnect_attempts)
        self._nc = nc
        self.connection.up()
        return nc

    def _connect_error(self, exc, seen, server_info, context):
        """A clear DeliveryError for a failed first connection."""
        causes = [e for e in seen if e is not exc] + [exc]
        where = f"NATS at {self.describe()}"
        for cause in causes:
            text = str(cause).lower()
            if (isinstance(cause, nerrors.AuthorizationError)
                    or "authorization" in text
                    or "authentication" in text):
                credentials = self._credentials()
                who = (f"user {credentials['user']!r}" if "user" in
                       credentials else "token" if "token" in credentials
                       else "no credentials given")
                return errors.DeliveryError(
                    f"{where} refused the connection: authorization failed "
                    f"({who}); check the user name and password in the "
                    f"transport URL or the user, password and token "
                    f"options of [notifbus_nats]", retriable=False)
            if isinstance(cause, ssl.SSLError):
                hint = ("the server requires TLS: set tls_cafile (or tls) "
                        "in [notifbus_nats] or the URL query"
                        if context is None and server_info.get(
                            "tls_required") else
                        "check tls_cafile, tls_hostname and the server's "
                        "certificate")
                return errors.DeliveryError(
                    f"TLS with {where} failed: {cause}; {hint}",
                    retriable=False)
        last = next((c for c in reversed(causes) if not isinstance(
            c, (asyncio.TimeoutError, nerrors.NoServersError))), exc)
        return errors.DeliveryError(
            f"no NATS server answered at {self.describe()} within "
            f"{self.opts.connect_timeout_s:g} s ({last!r}); check the "
            f"transport URL and that the servers run")

    # -- topics (loop thread) ---------------------------------------------

    async def _ensure(self, topic, partitions):
        nc = await self._client()
        jsm = nc.jsm()
        name = self.stream_name(topic)
        try:
            info = await jsm.stream_info(name)
        except jerrors.NotFoundError:
            config = self._stream_config(topic, partitions)
            try:
                info = await jsm.add_stream(config)
            except jerrors.APIError as exc:
                if exc.err_code == _STREAM_NAME_IN_USE:
                    info = await jsm.stream_info(name)
                elif exc.err_code == _SUBJECTS_OVERLAP:
                    raise errors.DeliveryError(
                        f"cannot create stream {name!r} for topic "
                        f"{topic!r}: its subjects overlap another stream's "
                        f"({exc.description}); use another stream_prefix",
                        retriable=False) from exc
                else:
                    raise api_error(f"cannot create stream {name!r}",
                                     exc) from exc
        except nerrors.NoRespondersError as exc:
            raise errors.DeliveryError(
                f"JetStream does not answer at {self.describe()}: is it "
                f"enabled (nats-server -js)?", retriable=False) from exc
        count = self._partitions_of(topic, info.config.subjects or [])
        if count is None:
            raise errors.DeliveryError(
                f"stream {name!r} exists but its subjects "
                f"{info.config.subjects} are not those of topic {topic!r} "
                f"({self.subject(topic, 0)}, ...): another topic maps to "
                f"the same stream name, or something else created it; use "
                f"another stream_prefix", retriable=False)
        self._partition_counts[topic] = count
        return count

    def _stream_config(self, topic, partitions):
        opts = self.opts
        return api.StreamConfig(
            name=self.stream_name(topic),
            description=f"notifbus topic {topic}",
            subjects=[self.subject(topic, n) for n in range(partitions)],
            retention=api.RetentionPolicy(opts.retention),
            max_age=float(opts.max_age_s),
            max_bytes=opts.max_bytes,
            storage=api.StorageType(opts.storage),
            num_replicas=opts.replicas,
            discard=api.DiscardPolicy.OLD)

    def ensure_topic(self, topic, partitions, timeout):
        return self._call(self._ensure(topic, partitions), timeout,
                          f"ensure stream for topic {topic!r}")

    # -- producing (loop thread) ------------------------------------------

    async def _ack_subscription(self, nc):
        if self._ack_nc is not nc:
            self._acks.clear()
            self._ack_inbox = nc.new_inbox()
            await nc.subscribe(f"{self._ack_inbox}.*", cb=self._on_puback)
            self._ack_nc = nc
        return self._ack_inbox

    async def _on_puback(self, msg):
        future = self._acks.pop(msg.subject.rsplit(".", 1)[-1], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def _produce(self, records, partitions, timeout):
        deadline = time.monotonic() + timeout
        results = [None] * len(records)
        try:
            nc = await asyncio.wait_for(self._client(), timeout)
        except asyncio.TimeoutError:
            error = errors.DeliveryError(
                f"no connection to NATS at {self.describe()} within "
                f"{timeout:.1f} s")
            return [error] * len(records)
        except errors.DeliveryError as exc:
            return [exc] * len(records)
        inbox = await self._ack_subscription(nc)
        pending = []
        for index, (record, partition) in enumerate(zip(records,
                                                        partitions)):
            headers = encode_headers(record)
            size = len(record.value) + header_bytes(headers)
            if size > nc.max_payload:
                results[index] = errors.RecordTooLarge(
                    f"record of {size} bytes for topic {record.topic!r} "
                    f"is larger than the NATS server's max_payload of "
                    f"{nc.max_payload} bytes")
                continue
            token = str(next(self._tokens))
            future = asyncio.get_running_loop().create_future()
            self._acks[token] = future
            subject = self.subject(record.topic, partition)
            try:
                await nc.publish(subject, record.value,
                                 reply=f"{inbox}.{token}", headers=headers)
            except Exception as exc:  # noqa: BLE001 - per record result
                self._acks.pop(token, None)
                results[index] = self._delivery_error(record, exc)
                continue
            pending.append((index, token, future, subject))
        if pending:
            await asyncio.wait([p[2] for p in pending],
                               timeout=max(deadline - time.monotonic(), 0))
        missing = set()
        for index, token, future, subject in pending:
            record = records[index]
            if not future.done():
                self._acks.pop(token, None)
                future.cancel()
                results[index] = errors.DeliveryError(
                    f"NATS at {self.describe()} did not acknowledge the "
                    f"record for topic {record.topic!r} within "
                    f"{timeout:.1f} s")
                continue
            results[index] = self._puback_error(record, subject,
                                                future.result())
            if getattr(results[index], "no_stream", False):
                missing.add(record.topic)
        for topic in missing:
            count = self._partition_counts.pop(topic, None)
            if count:
                try:  # the stream was deleted: recreate it for the retry
                    await self._ensure(topic, count)
                except errors.DeliveryError as exc:
                    self._loop.note(logging.WARNING,
                                    "notifbus: recreating the stream of "
                                    "%r failed: %s", topic, exc)
        return results

    def _puback_error(self, record, subject, msg):
        """None for a PubAck, else the DeliveryError the answer means."""
        status = (msg.headers or {}).get("Status")
        if status == "503":
            error = errors.DeliveryError(
                f"no JetStream stream takes subject {subject!r} of "
                f"topic {record.topic!r} at {self.describe()} (stream "
                f"{self.stream_name(record.topic)!r} missing?)")
            error.no_stream = True
            return error
        try:
            answer = json.loads(msg.data or b"{}")
        except ValueError:
            answer = {"error": {"code": 500,
                                "description": f"bad PubAck {msg.data!r}"}}
        failure = answer.get("error") if isinstance(answer, dict) else None
        if not failure:
            return None
        code = failure.get("code") or 500
        if failure.get("err_code") == _MESSAGE_TOO_LARGE:
            return errors.RecordTooLarge(
                f"JetStream refused a record of {record.size} bytes for "
                f"topic {record.topic!r} as too large: "
                f"{failure.get('description')}")
        return errors.DeliveryError(
            f"JetStream at {self.describe()} refused the record for topic "
            f"{record.topic!r}: {failure.get('description')} "
            f"(code {code}, err_code {failure.get('err_code')})",
            retriable=code >= 500)

    def _delivery_error(self, record, exc):
        if isinstance(exc, nerrors.MaxPayloadError):
            return errors.RecordTooLarge(
                f"record of {record.size} bytes for topic {record.topic!r} "
                f"is larger than the NATS server's max_payload: {exc!r}")
        return errors.DeliveryError(
            f"NATS at {self.describe()} did not take the record for topic "
            f"{record.topic!r}: {exc!r}")

    def produce(self, records, partitions, timeout):
        try:
            return self._call(self._produce(list(records), list(partitions),
                                            timeout),
                              timeout + 1.0, "publish")
        except errors.DeliveryError as exc:
            return [exc] * len(records)

    # -- consuming --------------------------------------------------------

    def subscribe(self, topics, group, on_revoke=None):
        """Join ``group`` on ``topics``. ``on_revoke`` is accepted for the
        contract and never called: members of a group share every
        partition, JetStream has no rebalances."""
        return NatsConsumer(self, list(topics), group)

    def consumer_config(self, group):
        """Configuration of a new durable consumer of ``group``."""
        opts = self.opts
        config = api.ConsumerConfig(
            durable_name=self.durable_name(group),
            description=f"notifbus group {group}",
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=float(opts.ack_wait_s),
            max_ack_pending=opts.max_ack_pending,
            deliver_policy=(api.DeliverPolicy.NEW
                            if opts.auto_offset_reset == "latest"
                            else api.DeliverPolicy.ALL))
        if opts.inactive_threshold_s:
            config.inactive_threshold = float(opts.inactive_threshold_s)
        if opts.deliver_start_sequence:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = opts.deliver_start_sequence
        elif self.start_time is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = self.start_time
        return config

    # -- replay (loop thread): reading outside any group -------------------
    # Offsets are stream sequences, shared by a topic's partitions: those of
    # one partition have gaps, which count_records accounts for.

    async def _partition_count(self, nc, topic):
        try:
            info = await nc.jsm().stream_info(self.stream_name(topic))
        except jerrors.NotFoundError as exc:
            raise errors.DeliveryError(
                f"topic {topic!r} has no stream "
                f"({self.stream_name(topic)!r}) at {self.describe()}",
                retriable=False) from exc
        count = self._partitions_of(topic, info.config.subjects or [])
        if count is None:
            raise errors.DeliveryError(
                f"stream {self.stream_name(topic)!r} is not notifbus's "
                f"stream of topic {topic!r}", retriable=False)
        return count

    async def _end_offsets(self, topic):
        nc = await self._client()
        ends = {}
        for partition in range(await self._partition_count(nc, topic)):
            try:
                last = await nc.jsm().get_msg(
                    self.stream_name(topic),
                    subject=self.subject(topic, partition))
            except jerrors.NotFoundError:
                ends[partition] = 0
            else:
                ends[partition] = last.seq + 1
        return ends

    async def _probe(self, nc, topic, partition=None, **config):
        """Info of a short-lived consumer starting per ``config``: where
        it starts and how many records it has pending."""
        jsm = nc.jsm()
        stream = self.stream_name(topic)
        info = await jsm.add_consumer(stream, api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE, mem_storage=True,
            inactive_threshold=30.0,
            filter_subject=None if partition is None else self.subject(
                topic, partition), **config))
        try:
            await jsm.delete_consumer(stream, info.name)
        except jerrors.NotFoundError:
            pass
        return info

    async def _offsets_for_time(self, topic, timestamp_ms):
        nc = await self._client()
        ends = await self._end_offsets(topic)
        info = await self._probe(
            nc, topic, deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.datetime.fromtimestamp(
                timestamp_ms / 1000.0, datetime.timezone.utc))
        if not info.num_pending:
            return ends
        # the first record of the stream at or after the time; each
        # partition's first such record is at or after it
        first = info.delivered.stream_seq + 1
        return {p: min(first, end) for p, end in ends.items()}

    async def _count(self, topic, partition, start, end):
        if end <= start:
            return 0
        nc = await self._client()
        counts = []
        for offset in (end, start):
            info = await self._probe(
                nc, topic, partition,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(offset, 1))
            counts.append(info.num_pending)
        return max(counts[1] - counts[0], 0)

    async def _read(self, topic, partition, offset, max_records, timeout):
        nc = await self._client()
        key = (topic, partition)
        reader = self._readers.get(key)
        if reader is None or reader["next"] != offset or (
                reader["nc"] is not nc):
            if reader is not None:
                await self._drop_reader(key)
            stream = self.stream_name(topic)
            info = await nc.jsm().add_consumer(stream, api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, mem_storage=True,
                inactive_threshold=60.0,
                filter_subject=self.subject(topic, partition),
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(offset, 1)))
            pull = await nc.jetstream().pull_subscribe_bind(
                info.name, stream=stream)
            reader = self._readers[key] = {"nc": nc, "name": info.name,
                                           "pull": pull, "next": offset}
        try:
            found = await reader["pull"].fetch(max_records,
                                               timeout=max(timeout, 0.01))
        except asyncio.TimeoutError:  # nats' TimeoutError is one too
            return []
        records = [to_received(self.opts.stream_prefix, msg)
                   for msg in found]
        if records:
            reader["next"] = records[-1].offset + 1
        return records

    async def _drop_reader(self, key):
        reader = self._readers.pop(key)
        try:
            await reader["pull"].unsubscribe()
            await reader["nc"].jsm().delete_consumer(
                self.stream_name(key[0]), reader["name"])
        except (nerrors.Error, asyncio.TimeoutError):
            pass  # it expires by its inactive threshold

    def end_offsets(self, topic, timeout):
        """``{partition: last stream sequence of the partition + 1}``, 0
        for an empty partition."""
        return self._call(self._end_offsets(topic), timeout,
                          f"end offsets of topic {topic!r}")

    def offsets_for_time(self, topic, timestamp_ms, timeout):
        return self._call(self._offsets_for_time(topic, timestamp_ms),
                          timeout, f"offsets of topic {topic!r} for a time")

    def count_records(self, topic, partition, start, end, timeout):
        """Records of the partition at offsets ``[start, end)``, counted by
        the server (offsets of a partition have gaps). Exact when nothing
        is written to the partition meanwhile."""
        return self._call(self._count(topic, partition, start, end),
                          timeout, f"count of topic {topic!r}")

    def read(self, topic, partition, offset, max_records, timeout):
        """Records of one partition from ``offset`` on, through a
        short-lived consumer that acknowledges nothing and is kept while
        the reads follow each other."""
        return self._call(
            self._read(topic, partition, offset, max_records, timeout),
            timeout + self.opts.connect_timeout_s + 1.0,
            f"read of topic {topic!r} partition {partition}")

    # -- administration ---------------------------------------------------

    async def _stream_names(self, nc):
        names, offset = [], 0
        while True:
            reply = await nc.request(
                "$JS.API.STREAM.NAMES",
                json.dumps({"offset": offset, "subject":
                            f"{self.opts.stream_prefix}.>"}).encode(),
                timeout=self.opts.connect_timeout_s)
            answer = json.loads(reply.data)
            found = answer.get("streams") or []
            names += found
            offset += len(found)
            if not found or offset >= answer.get("total", 0):
                return names

    async def _delete_streams(self):
        nc = await self._client()
        names = await self._stream_names(nc)
        for name in names:
            try:
                await nc.jsm().delete_stream(name)
            except jerrors.NotFoundError:
                pass
        self._partition_counts.clear()
        return names

    def delete_streams(self, timeout=30.0):
        """Delete every stream of this backend's ``stream_prefix``, with
        their records and durable consumers; return their names. For tests
        and for retiring a prefix."""
        return self._call(self._delete_streams(), timeout, "delete streams")

    def close(self, timeout=5.0):
        async def shutdown():
            nc, self._nc = self._nc, None
            if self._connecting is not None:
                self._connecting.cancel()
            if nc is not None:
                await _close_quietly(nc, timeout * 0.5)

        self._loop.close(timeout, shutdown)


def _parse_time(text):
    try:
        found = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise errors.ConfigError(
            f"deliver_start_time {text!r} is not an ISO 8601 time") from exc
    if found.tzinfo is None:
        raise errors.ConfigError(
            f"deliver_start_time {text!r} needs a time zone, for example "
            f"+00:00")
    return found.astimezone(datetime.timezone.utc)


async def _discard(nc):
    """Close a client whose connection failed or is refused. After a
    failed TLS handshake nats-py's close waits for a stream that never
    reports closing: abort the sockets and give the close a moment only.
    """
    internals.abort_connection(nc)
    await _close_quietly(nc, 0.1)


async def _close_quietly(nc, timeout):
    try:
        await asyncio.wait_for(nc.close(), timeout)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing
        pass
