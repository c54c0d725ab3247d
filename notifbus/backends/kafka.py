"""Kafka backend, on kafka-python.

Connection string::

    notifbus+kafka://[user:password@]host1[:9092][,host2[:9092]]/[vhost]?opt=v

Features:

- produce with the broker's acknowledgement (``acks=all`` by default):
  each batch of the bus is encoded once as Kafka record batches of
  notifbus's own (:mod:`~notifbus.backends.kafka_records`) and sent as one
  produce request per broker (:mod:`~notifbus.backends.kafka_produce`),
  written and answered on connections of notifbus's own
  (:mod:`~notifbus.backends.kafka_wire`; with SASL, over kafka-python's);
  with ``batch_writer=false`` or the idempotent producer
  (``enable_idempotence``), kafka-python's producer sends the records one
  by one;
- topics created on first use with ``num_partitions`` partitions;
- consumer groups with manual commits: the bus commits after dispatch;
- SASL (PLAIN, SCRAM-SHA-256/512) and TLS, with certificate verification on
  by default; credentials come from the URL or from the options.

Options: the ``[notifbus_kafka]`` group, see :func:`KafkaBackend.list_opts`;
each can be overridden in the URL query.

Broker-specific workarounds: :mod:`notifbus.backends.kafka_quirks`;
brokers tested, and their limits: ``doc/source/brokers.rst``.

Security: ``security_protocol`` is ``PLAINTEXT`` (the default), ``SSL``,
``SASL_PLAINTEXT`` or ``SASL_SSL``, as in Kafka::

    notifbus+kafka://u:p@h1:9093/?security_protocol=SASL_SSL&ssl_cafile=ca.pem

- TLS (``SSL``, ``SASL_SSL``) verifies the broker's certificate chain
  against ``ssl_cafile`` (else the system's CAs) and its name against the
  address connected to: the bootstrap host, then the listeners the brokers
  advertise. ``ssl_check_hostname=false`` skips the name check, never the
  chain. ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_password`` present a
  client certificate (mutual TLS).
- SASL (``SASL_PLAINTEXT``, ``SASL_SSL``) uses ``sasl_mechanism`` PLAIN
  (when unset), SCRAM-SHA-256 or SCRAM-SHA-512. The user name and password
  of the transport URL win over ``sasl_username`` and ``sasl_password``.
  PLAIN over ``SASL_PLAINTEXT`` sends the password in the clear: prefer
  ``SASL_SSL``.
- Settings that cannot work are refused with a ``ConfigError`` when the
  transport is created, before anything connects: a SASL protocol without
  credentials, SASL or TLS options with a protocol that does not use them,
  and certificate or key files that are missing or do not load.
- Before a client connects with TLS or SASL, one connection to a
  bootstrap broker makes the TLS handshake and the SASL login as the
  client would (:mod:`~notifbus.backends.kafka_sasl`): kafka-python 3.0
  waits without limit for a TLS handshake that a listener without TLS
  never answers, and retries refused handshakes and logins until its
  bootstrap timeout, then says only that no broker answered. Without TLS,
  a failed bootstrap is followed by a TLS handshake. What they find fails
  the send, or the listener start, with the reason: wrong credentials
  (naming the user and the mechanism), a mechanism the broker does not
  enable, a certificate signed by another CA or issued for another name,
  at once and without retries (only a change of configuration or
  certificate cures it); a TLS listener reached without TLS, likewise but
  after ``bootstrap_timeout_ms``; a listener that does not answer TLS,
  retriably.
- Passwords appear in no message and no log: brokers are named by
  ``host:port`` only, the passwords handed to kafka-python print as
  ``'***'`` (its admin client logs its configuration at DEBUG level), and
  the SASL token in kafka-python's DEBUG lines, which holds PLAIN's
  password, is hidden.
- Tested on Apache Kafka's own listeners
  (``tests/functional/test_kafka_security.py``): ``SSL``, and
  ``SASL_SSL`` with PLAIN and SCRAM-SHA-512, credentials in the URL or in
  the options, and each failure above. ``SASL_PLAINTEXT``, SCRAM-SHA-256
  and client certificates are checked by unit tests only (settings and
  refusals), not against a broker.

Install with ``pip install notifbus[kafka]``.
"""

import functools
import logging
import threading
import time

import kafka
import kafka.errors as kerrors
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata, TopicPartition
from oslo_config import cfg

from notifbus import errors
from notifbus.backends import (
    base,
    kafka_logging,
    kafka_options,
    kafka_produce,
    kafka_quirks,
    kafka_records,
    kafka_sasl,
    tls_config,
)
from notifbus.backends.kafka_assignor import (
    PartitionCountAssignor,
    RoundRobinAssignor,
    assume_assigned_counts,
)
from notifbus.backends.tls_config import ssl_context
from notifbus.record import Received

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 9092

_OPTS = [
    cfg.StrOpt("acks", default="all", choices=["all", "1"],
               help="Acknowledgement a send waits for: 'all' in-sync "
                    "replicas, or '1', the partition leader only."),
    cfg.StrOpt("compression_type", default="none",
               choices=["none", "gzip", "snappy", "lz4", "zstd"],
               help="Compression of record batches."),
    cfg.IntOpt("producer_batch_bytes", default=262144, min=1,
               help="Largest record batch the client builds per "
                    "partition, in bytes."),
    cfg.BoolOpt("batch_writer", default=True,
                help="Encode each batch of the bus as Kafka record batches "
                     "of notifbus's own, once per batch, and send one "
                     "produce request per broker. False hands the records "
                     "one by one to kafka-python's producer, which batches "
                     "them again."),
    kafka_options.enable_idempotence_opt(),
    cfg.IntOpt("request_timeout_ms", default=30000, min=1,
               help="How long the client waits for a broker's answer. "
                    "Must be higher than fetch_max_wait_ms, at most "
                    "delivery_timeout_ms, and lower than 540000 "
                    "(kafka-python's connections_max_idle_ms)."),
    cfg.IntOpt("delivery_timeout_ms", default=120000, min=1,
               help="How long the client keeps retrying a record inside "
                    "one send attempt before reporting it failed. At least "
                    "request_timeout_ms, as Kafka's producers require "
                    "(delivery.timeout.ms >= linger.ms + request.timeout.ms;"
                    " this client lingers 0 ms, the bus batches)."),
    cfg.IntOpt("bootstrap_timeout_ms", default=5000, min=1,
               help="How long connecting to the bootstrap brokers may "
                    "take before the attempt fails with a clear error."),
    *kafka_options.provisioning_opts(),
    kafka_options.session_timeout_opt(),
    kafka_options.heartbeat_opt(),
    cfg.IntOpt("max_poll_interval_ms", default=300000, min=1,
               help="Longest time between two polls before the consumer "
                    "is considered dead and its partitions reassigned."),
    cfg.IntOpt("max_poll_records", default=500, min=1,
               help="Most records returned by one fetch."),
    cfg.IntOpt("fetch_max_wait_ms", default=100, min=0,
               help="How long the broker may hold a fetch waiting for "
                    "data; lower means lower latency. Must be lower than "
                    "request_timeout_ms."),
    cfg.IntOpt("fetch_max_bytes", default=52428800, min=1,
               help="Most bytes returned by one fetch."),
    cfg.StrOpt("auto_offset_reset", default="earliest",
               choices=["earliest", "latest"],
               help="Where a consumer group with no committed offset "
                    "starts: 'earliest' delivers what was stored before "
                    "the group first subscribed (store and forward)."),
    cfg.IntOpt("commit_timeout_ms", default=5000, min=1,
               help="How long a commit waits for the broker before it "
                    "fails; the bus commits again later."),
    cfg.StrOpt("client_id", default="notifbus",
               help="Client id sent to the brokers."),
] + tls_config.security_opts() + kafka_quirks.quirks_opts()

#: Options that constrain each other, checked when a transport is created.
_RULES = [
    kafka_options.HEARTBEAT_WITHIN_SESSION,
    kafka_options.Below(
        ("fetch_max_wait_ms",), "request_timeout_ms",
        "a fetch that the broker holds that long would time out, and "
        "kafka-python refuses such a consumer"),
    kafka_options.Below(
        ("request_timeout_ms",), "delivery_timeout_ms",
        "a record would expire before the broker's answer to its first "
        "send is due", or_equal=True),
    kafka_options.Below(
        ("request_timeout_ms",), kafka_options.Limit(
            "kafka-python's connections_max_idle_ms",
            kafka.KafkaConsumer.DEFAULT_CONFIG["connections_max_idle_ms"]),
        "kafka-python refuses a request timeout that outlasts an idle "
        "connection"),
]


#: longest wait of one kafka-python poll: how late a wakeup may end a poll
_POLL_SLICE_S = 0.1
#: how long a member must stay in a stable group, its assignment unchanged
#: and without partitions of some of its topics, before wait_assigned takes
#: that as final (more members than partitions)
_IDLE_MEMBER_S = 1.0

_UNREACHABLE = (kerrors.KafkaTimeoutError, kerrors.KafkaConnectionError,
                kerrors.NodeNotReadyError)
_RETRIABLE = _UNREACHABLE + (kerrors.RetriableError,)
# errors that no retry can cure: the record or the credentials are wrong
_PERMANENT = (kerrors.InvalidTopicError, kerrors.InvalidRecordError,
              kerrors.AuthorizationError,
              kerrors.SaslAuthenticationFailedError,
              kerrors.UnsupportedVersionError)

_SASL_PROTOCOLS = tls_config.SASL_PROTOCOLS
_SSL_PROTOCOLS = tls_config.SSL_PROTOCOLS
# most time the diagnosis of a failed bootstrap may take
_PROBE_TIMEOUT_S = 1.5


class Secret(str):
    """A password that shows as ``'***'`` in a ``repr``, hence in every
    formatted dict: kafka-python's admin client logs its whole
    configuration at DEBUG level."""

    __slots__ = ()

    def __repr__(self):
        return "'***'"

    @classmethod
    def of(cls, value):
        return None if value is None else cls(value)


class KafkaBackend(base.Backend):
    """Kafka through kafka-python; one producer and one admin client per
    backend, one consumer per subscription."""

    extra = "kafka"

    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        self.client_config()  # refuse what cannot work before connecting
        kafka_options.check("kafka", _OPTS, options, _RULES)
        self.quirks = kafka_quirks.for_options(options)
        codec = self.options.get("compression_type", "none")
        try:
            kafka_records.compressor(codec)
        except ValueError as exc:
            raise errors.ConfigError(
                f"compression_type={codec}: {exc}; install the kafka "
                f"extra's codecs (pip install notifbus[kafka]) or choose "
                f"another compression_type") from exc
        kafka_logging.quiet_reconnects()
        self.connection = kafka_logging.connection_state(self._describe())
        self._lock = threading.Lock()
        self._producer = None
        self._batches = None
        self._admin = None
        self._reader = None
        # topic -> partition count, announced to consumer groups
        self.partition_counts = {}

    @classmethod
    def list_opts(cls):
        return list(_OPTS)

    @property
    def bootstrap_servers(self):
        return [f"{host}:{port or DEFAULT_PORT}" for host, port in self.hosts]

    def _describe(self):
        return ",".join(self.bootstrap_servers)

    def client_config(self):
        """Settings shared by the producer, consumers and admin client.

        :raises ConfigError: the security settings cannot work.
        """
        opt = self.options
        config = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": opt.get("client_id", "notifbus"),
            "request_timeout_ms": opt.get("request_timeout_ms", 30000),
            "bootstrap_timeout_ms": opt.get("bootstrap_timeout_ms", 5000),
            "security_protocol": opt.get("security_protocol", "PLAINTEXT"),
        }
        config.update(self._security_config(config["security_protocol"]))
        return config

    def _security_config(self, protocol):
        """kafka-python's SASL and TLS settings for ``protocol``."""
        opt = self.options
        config = {}
        login = tls_config.sasl_login(opt, protocol, self.username,
                                      self.password)
        if login is not None:
            mechanism, user, password = login
            config.update(sasl_mechanism=mechanism,
                          sasl_plain_username=user,
                          sasl_plain_password=Secret(password))
        if tls_config.uses_tls(opt, protocol):
            config.update(
                ssl_cafile=opt.get("ssl_cafile"),
                ssl_certfile=opt.get("ssl_certfile"),
                ssl_keyfile=opt.get("ssl_keyfile"),
                ssl_password=Secret.of(opt.get("ssl_password")),
                ssl_check_hostname=opt.get("ssl_check_hostname", True))
        return config

    def _raise_session_problem(self, config, what, timeout, cause=None,
                               login=False):
        """Raise what keeps every bootstrap broker from a session with
        this client (:func:`tls_config.session_problem`, with the client's
        SASL login if ``login``); with a protocol without TLS, whether the
        brokers expect TLS."""
        found = tls_config.session_problem(
            config, self.hosts, DEFAULT_PORT, timeout,
            functools.partial(kafka_sasl.login, config) if login else None)
        if found:
            problem, retriable = found
            raise errors.DeliveryError(
                f"could not connect the Kafka {what} to {self._describe()}: "
                f"{problem}", retriable=retriable) from cause

    def _connect(self, factory, what, **extra):
        config = self.client_config()
        config.update(extra)
        bootstrap_s = config["bootstrap_timeout_ms"] / 1000.0
        protocol = config["security_protocol"]
        if protocol in _SSL_PROTOCOLS or protocol in _SASL_PROTOCOLS:
            # kafka-python 3.0 waits without limit for a TLS handshake that
            # a listener without TLS never answers, and retries failed ones
            # and refused SASL logins until its bootstrap timeout without
            # saying why
            self._raise_session_problem(
                config, what, bootstrap_s,
                login=protocol in _SASL_PROTOCOLS)
        try:
            client = factory(**config)
        except _UNREACHABLE as exc:
            self._raise_session_problem(
                config, what, min(bootstrap_s, _PROBE_TIMEOUT_S), exc)
            self.connection.down(
                f"the {what} found none within "
                f"{config['bootstrap_timeout_ms']} ms")
            raise errors.DeliveryError(
                f"no Kafka broker answered at {self._describe()} within "
                f"{config['bootstrap_timeout_ms']} ms ({what}); check the "
                f"transport URL and that the brokers run") from exc
        except kerrors.KafkaError as exc:
            raise errors.DeliveryError(
                f"could not connect the Kafka {what} to {self._describe()}: "
                f"{exc!r}") from exc
        self.connection.up()
        return client

    def _get_producer(self):
        with self._lock:
            if self._producer is None:
                opt = self.options
                compression = opt.get("compression_type", "none")
                self._producer = self._connect(
                    kafka.KafkaProducer, "producer",
                    metrics_enabled=False,
                    acks=-1 if opt.get("acks", "all") == "all" else 1,
                    compression_type=(None if compression == "none"
                                      else compression),
                    batch_size=opt.get("producer_batch_bytes", 262144),
                    linger_ms=0,
                    # with the batch writer, the writer is idempotent
                    enable_idempotence=(
                        not opt.get("batch_writer", True)
                        and kafka_options.idempotent(opt, self.quirks,
                                                     LOG)),
                    max_request_size=max(
                        opt.get("producer_batch_bytes", 262144), 1048576),
                    delivery_timeout_ms=opt.get("delivery_timeout_ms",
                                                120000),
                    max_block_ms=opt.get("bootstrap_timeout_ms", 5000))
                self._batches = self._batch_producer(self._producer)
            return self._producer

    def _batch_producer(self, producer):
        """The writer of notifbus's own record batches over ``producer``,
        or ``None`` where kafka-python's producer sends one by one."""
        opt = self.options
        if not opt.get("batch_writer", True):
            return None
        config = self.client_config()
        protocol = config["security_protocol"]
        connections = None
        if protocol not in _SASL_PROTOCOLS:
            connections = {
                "client_id": config["client_id"],
                "ssl_context": (ssl_context(config)
                                if protocol in _SSL_PROTOCOLS else None),
                "connect_timeout": config["bootstrap_timeout_ms"] / 1000.0}
        return kafka_produce.BatchProducer(
            producer, acks=-1 if opt.get("acks", "all") == "all" else 1,
            max_batch_bytes=opt.get("producer_batch_bytes", 262144),
            compression_type=opt.get("compression_type", "none"),
            request_timeout_ms=opt.get("request_timeout_ms", 30000),
            connections=connections,
            idempotent=kafka_options.idempotent(opt, self.quirks, LOG))

    def _get_admin(self):
        with self._lock:
            if self._admin is None:
                self._admin = self._connect(kafka.KafkaAdminClient, "admin")
            return self._admin

    def ensure_topic(self, topic, partitions, timeout):
        admin = self._get_admin()
        try:
            # a service that may write but not create topics is refused
            # CreateTopics even for a topic that exists: look first
            if topic in admin.list_topics():
                pass
            elif not self.options.get("create_topics", True):
                raise kafka_options.missing_topic(topic, self._describe())
            else:
                factor, configs = kafka_options.new_topic(self.options)
                admin.create_topics(
                    [NewTopic(topic, partitions, factor,
                              topic_configs=configs)],
                    timeout_ms=int(timeout * 1000))
        except kerrors.TopicAlreadyExistsError:
            pass
        except _RETRIABLE as exc:
            raise errors.DeliveryError(
                f"could not create topic {topic!r} at {self._describe()}: "
                f"{exc!r}") from exc
        except kerrors.KafkaError as exc:
            raise errors.DeliveryError(
                f"could not create topic {topic!r} at {self._describe()}: "
                f"{exc!r}", retriable=getattr(exc, "retriable", False)
            ) from exc
        try:
            found = self._get_producer().partitions_for(topic)
        except kerrors.KafkaError as exc:
            raise errors.DeliveryError(
                f"no metadata for topic {topic!r} at {self._describe()}: "
                f"{exc!r}") from exc
        count = len(found) if found else partitions
        self.partition_counts[topic] = count
        return count

    def produce(self, records, partitions, timeout):
        try:
            producer = self._get_producer()
        except errors.DeliveryError as exc:
            return [exc] * len(records)
        batches = self._batches
        if batches is not None and batches.owns(producer):
            raw = batches.send(records, partitions, timeout)
        else:
            raw = self._send_one_by_one(producer, records, partitions,
                                        timeout)
        results = [None if exc is None else self._delivery_error(record, exc)
                   for record, exc in zip(records, raw)]
        unreachable = [exc for exc in raw if isinstance(exc, _UNREACHABLE)]
        if unreachable:
            self.connection.down(repr(unreachable[0]))
        elif all(exc is None for exc in raw):
            self.connection.up()
        if any(getattr(r, "reset_client", False) for r in results):
            self._reset_producer(producer)
        return results

    def _send_one_by_one(self, producer, records, partitions, timeout):
        """Through kafka-python's producer: one kafka-python exception or
        ``None`` per record."""
        deadline = time.monotonic() + timeout
        results = [None] * len(records)
        futures = []
        for index, (record, partition) in enumerate(zip(records,
                                                        partitions)):
            try:
                futures.append((index, producer.send(
                    record.topic, value=record.value, key=record.key,
                    headers=list(record.headers) or None,
                    partition=partition,
                    timestamp_ms=record.timestamp_ms)))
            except kerrors.KafkaError as exc:
                results[index] = exc
        for index, future in futures:
            left = max(deadline - time.monotonic(), 0)
            try:
                future.get(timeout=left)
            except kerrors.KafkaError as exc:
                results[index] = exc
        return results

    def _reset_producer(self, producer):
        """Drop a producer whose session the broker no longer knows (a
        restarted broker forgets idempotent producer ids); the next attempt
        builds a new one."""
        with self._lock:
            batches = None
            if self._producer is producer:
                self._producer = None
                batches, self._batches = self._batches, None
        if batches is not None:
            batches.close()
        LOG.warning("notifbus: resetting the Kafka producer for %s",
                    self._describe())
        try:
            producer.close(timeout=0)
        except Exception:  # noqa: BLE001 - it is being discarded
            LOG.debug("notifbus: closing a discarded producer failed",
                      exc_info=True)

    def _delivery_error(self, record, exc):
        if isinstance(exc, (kerrors.MessageSizeTooLargeError,
                            kerrors.RecordListTooLargeError)):
            return errors.RecordTooLarge(
                f"the broker or client refused a record of {record.size} "
                f"bytes for topic {record.topic!r} as too large: {exc!r}")
        message = (f"Kafka at {self._describe()} did not acknowledge the "
                   f"record for topic {record.topic!r}: {exc!r}")
        if isinstance(exc, _PERMANENT):
            return errors.DeliveryError(message, retriable=False)
        error = errors.DeliveryError(message, retriable=True)
        # A new client session cures what the client does not retry itself
        # (a restarted broker forgets idempotent producer ids); with a
        # broker whose nodes share one id, an unreachable broker too: the
        # new client bootstraps again from every host of the URL instead of
        # the address it last had metadata for.
        error.reset_client = not isinstance(exc, _RETRIABLE) or (
            self.quirks.rebuild_clients_when_unreachable
            and isinstance(exc, _UNREACHABLE))
        return error

    def subscribe(self, topics, group, on_revoke=None):
        return KafkaConsumer(self, list(topics), group, on_revoke)

    # -- replay ---------------------------------------------------------------

    def _get_reader(self):
        """A consumer outside any group, for replay (assign and seek)."""
        with self._lock:
            if self._reader is None:
                self._reader = self._connect(
                    kafka.KafkaConsumer, "replay reader", group_id=None,
                    metrics_enabled=False,
                    enable_auto_commit=False,
                    fetch_max_wait_ms=self.options.get("fetch_max_wait_ms",
                                                       100))
            return self._reader

    def _partitions_of(self, reader, topic):
        found = reader.partitions_for_topic(topic)
        if not found:
            raise errors.NotifbusError(
                f"topic {topic!r} does not exist at {self._describe()}")
        return [TopicPartition(topic, p) for p in sorted(found)]

    def end_offsets(self, topic, timeout):
        reader = self._get_reader()
        ends = reader.end_offsets(self._partitions_of(reader, topic),
                                  timeout_ms=int(timeout * 1000))
        if not self.quirks.end_offsets_per_batch:
            return {tp.partition: offset for tp, offset in ends.items()}
        return {tp.partition: base.end_after_last_batch(
                    self, topic, tp.partition, offset,
                    min(timeout, _PROBE_TIMEOUT_S),
                    self.options.get("max_poll_records", 500))
                for tp, offset in ends.items()}

    def offsets_for_time(self, topic, timestamp_ms, timeout):
        reader = self._get_reader()
        partitions = self._partitions_of(reader, topic)
        found = reader.offsets_for_times(
            {tp: timestamp_ms for tp in partitions},
            timeout_ms=int(timeout * 1000))
        ends = self.end_offsets(topic, timeout)
        unmatched_at_zero = self.quirks.offsets_for_time_unmatched_at_zero
        return {tp.partition: (found[tp].offset if found.get(tp) and not (
                    unmatched_at_zero and found[tp].timestamp < 0)
                               else ends[tp.partition])
                for tp in partitions}

    def read(self, topic, partition, offset, max_records, timeout):
        reader = self._get_reader()
        tp = TopicPartition(topic, partition)
        if reader.assignment() != {tp}:
            reader.assign([tp])
        if reader.position(tp) != offset:
            reader.seek(tp, offset)
        batches = reader.poll(timeout_ms=int(timeout * 1000),
                              max_records=max_records)
        return [_received(tp, m) for m in batches.get(tp, [])]

    def close(self, timeout=5.0):
        with self._lock:
            producer, self._producer = self._producer, None
            batches, self._batches = self._batches, None
            admin, self._admin = self._admin, None
            reader, self._reader = self._reader, None
        if batches is not None:
            batches.close()
        if reader is not None:
            _close_within(lambda: reader.close(autocommit=False), timeout,
                          "the replay reader")
        if producer is not None:
            _close_within(lambda: producer.close(timeout=timeout), timeout,
                          "the Kafka producer")
        if admin is not None:
            _close_within(admin.close, timeout, "the Kafka admin client")


def _received(tp, message):
    return Received(topic=tp.topic, partition=tp.partition,
                    offset=message.offset, value=message.value,
                    key=message.key, headers=tuple(message.headers or ()),
                    timestamp_ms=message.timestamp)


def _close_within(close, timeout, what):
    """Run ``close`` and return within about ``timeout`` seconds.

    kafka-python's close may wait for a broker answer longer than asked
    (a request timeout) when the broker vanished mid-request; the close then
    finishes in the background instead of holding up the caller.
    """
    outcome = {}

    def run():
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="notifbus-close",
                              daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if thread.is_alive():
        LOG.warning("notifbus: closing %s did not finish within %.1f s; "
                    "it goes on in the background", what, timeout)
    elif "error" in outcome:
        LOG.warning("notifbus: closing %s failed: %r", what,
                    outcome["error"])


class _Revocations(ConsumerRebalanceListener):
    """Hands revocations to the bus, and the partitions that a rebalance
    revoked then gave back to ``on_kept``.

    Kafka's round robin and range assignors are eager: a rebalance revokes
    every partition, and the bus forgets what it read of them. kafka-python
    3.0 keeps the position of a partition assigned again to the same
    member, past records the bus dropped: those partitions must be read
    again from their committed offsets, as a new owner would.
    """

    def __init__(self, on_revoke, on_kept, group=None):
        self._on_revoke = on_revoke
        self._on_kept = on_kept
        self._group = group
        self._revoked = set()

    def on_partitions_revoked(self, revoked):
        self._revoked = set(revoked)
        if self._on_revoke and revoked:
            self._on_revoke({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned):
        LOG.info("notifbus: group %r rebalanced: this listener reads %s",
                 self._group, kafka_logging.partition_list(
                     (tp.topic, tp.partition) for tp in assigned))
        kept, self._revoked = self._revoked & set(assigned), set()
        if kept:
            self._on_kept(kept)


def _watch_own_topics_only(consumer):
    """Make a group leader rejoin only when its own topics change
    (``BrokerQuirks.leader_watches_own_topics``).

    kafka-python's leader compares the metadata it assigned from with the
    metadata of every topic in the group, and rejoins once metadata of the
    other members' topics arrives, which it always does after the first
    assignment of a group whose members subscribe to different topics.
    Apache Kafka rebalances the whole group then; Tansu 0.6 answers such a
    lone rejoin without rebalancing the other members, and two members then
    read the same partitions. The :class:`PartitionCountAssignor` needs no
    leader metadata, so the leader only watches its own subscription.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator,
                                          "_build_metadata_snapshot"):
        return

    def own_topics_snapshot(subscription, cluster):
        return {topic: cluster.partitions_for_topic(topic) or set()
                for topic in subscription.subscription or ()}

    coordinator._build_metadata_snapshot = own_topics_snapshot


def _skip_unreadable_batch(consumer, exc):
    """After ``consumer.poll`` raised ``exc``: when it came from reading a
    record batch (a codec that is not installed, a corrupt batch), a
    :class:`Received` marker of the record at the partition's position,
    whose ``error`` names the cause and the fix, and the position moved one
    record on; else ``None``.

    kafka-python 3.0 keeps the failed batch in its fetcher's
    ``_next_partition_records`` and, on the next poll, spins on it without
    end. The batch's extent is not known without reading it, so the
    partition goes on one record at a time (each a fetch) until the records
    read again; the other partitions keep flowing meanwhile.
    """
    if isinstance(exc, kerrors.KafkaError) and not isinstance(
            exc, (kerrors.UnsupportedCodecError, kerrors.CorruptRecordError)):
        return None  # the network's or the group's, not a batch's
    fetcher = getattr(consumer, "_fetcher", None)
    pending = getattr(fetcher, "_next_partition_records", None)
    if not pending:
        return None
    tp = pending.topic_partition
    pending.drain()
    fetcher._next_partition_records = None
    try:
        offset = consumer.position(tp, timeout_ms=1000)
    except kerrors.KafkaError:
        offset = None
    if offset is None:
        offset = pending.next_fetch_offset
    consumer.seek(tp, offset + 1)
    if isinstance(exc, kerrors.UnsupportedCodecError):
        cause = (f"its record batch is compressed with a codec that is not "
                 f"installed ({exc}); install the kafka extra's codecs "
                 f"(pip install notifbus[kafka]: python-snappy, lz4, "
                 f"zstandard)")
    else:
        cause = (f"its record batch could not be read ({exc!r}); skipped, "
                 f"it stays in the log for replay with another client")
    return Received(topic=tp.topic, partition=tp.partition, offset=offset,
                    value=None, error=f"unreadable record: {cause}")


class KafkaConsumer(base.Consumer):
    """One kafka-python consumer in ``group``, with manual commits."""

    def __init__(self, backend, topics, group, on_revoke):
        self._group = group
        self._backend = backend
        self._topics = list(topics)
        self._on_revoke = on_revoke
        opt = backend.options
        # a consumer that cannot find its group coordinator for this long
        # is rebuilt, bootstrapping again from every host of the URL
        self._rebuild_after_s = max(
            3 * opt.get("session_timeout_ms", 10000) / 1000.0, 5.0)
        self._lost_since = None
        self._no_coordinator_since = None
        self._woken = threading.Event()
        # partitions to read again from their committed offsets
        self._kept = set()
        self._kept_lock = threading.Lock()
        self._consumer = self._new_consumer()
        self._buffer = []

    def _new_consumer(self):
        opt = self._backend.options
        quirks = self._backend.quirks
        counts = self._backend.partition_counts
        round_robin = RoundRobinAssignor(counts)
        if quirks.leader_watches_own_topics:
            assignors = [PartitionCountAssignor(counts), round_robin]
        else:
            # round robin spreads the partitions of all the pool's topics
            # over its members (range would give every member the same
            # partition numbers of each topic, and leave members idle on
            # topics with fewer partitions than members); range is offered
            # too, so that members of other Kafka clients (librdkafka's
            # default is range,roundrobin, Java's range,cooperative-sticky)
            # can share a pool
            assignors = [round_robin, RangePartitionAssignor]
        consumer = self._backend._connect(
            kafka.KafkaConsumer, f"consumer of group {self._group!r}",
            group_id=self._group, metrics_enabled=False,
            enable_auto_commit=False,
            auto_offset_reset=opt.get("auto_offset_reset", "earliest"),
            session_timeout_ms=opt.get("session_timeout_ms", 10000),
            heartbeat_interval_ms=kafka_options.heartbeat_interval_ms(opt),
            max_poll_interval_ms=opt.get("max_poll_interval_ms", 300000),
            max_poll_records=opt.get("max_poll_records", 500),
            fetch_max_wait_ms=opt.get("fetch_max_wait_ms", 100),
            fetch_max_bytes=opt.get("fetch_max_bytes", 52428800),
            partition_assignment_strategy=assignors,
            allow_auto_create_topics=False)
        if quirks.leader_watches_own_topics:
            _watch_own_topics_only(consumer)
        else:
            assume_assigned_counts(consumer, round_robin)
        consumer.subscribe(self._topics,
                           listener=_Revocations(self._on_revoke,
                                                 self._rewind_later,
                                                 self._group))
        return consumer

    def _rebuild_if_lost(self):
        """Replace a consumer that lost its group coordinator for long.

        Positions restart from the committed offsets: records delivered
        but not committed are delivered again (at least once). Only with
        ``BrokerQuirks.rebuild_clients_when_unreachable``.
        """
        if not self._backend.quirks.rebuild_clients_when_unreachable:
            return
        coordinator = getattr(self._consumer, "_coordinator", None)
        unknown = getattr(coordinator, "coordinator_unknown", None)
        if unknown is None or not unknown():
            self._lost_since = None
            return
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
            return
        if now - self._lost_since < self._rebuild_after_s:
            return
        # while the brokers do not answer, their state line says it
        level = (logging.DEBUG if self._backend.connection.down_since
                 is not None else logging.WARNING)
        LOG.log(level, "notifbus: group %r has had no coordinator for "
                "%.0f s; reconnecting to %s", self._group,
                now - self._lost_since, self._backend._describe())
        try:
            fresh = self._new_consumer()
        except errors.DeliveryError as exc:
            LOG.log(logging.DEBUG if self._backend.connection.down_since
                    is not None else logging.WARNING,
                    "notifbus: reconnecting group %r failed, will retry: %s",
                    self._group, exc)
            self._lost_since = now
            return
        old, self._consumer = self._consumer, fresh
        self._buffer = []
        self._lost_since = None
        _close_within(lambda: old.close(autocommit=False, timeout_ms=0),
                      1.0, f"the lost consumer of group {self._group!r}")

    def _report_coordinator(self):
        """Mark the brokers down after ``bootstrap_timeout_ms`` without a
        group coordinator, up once there is one."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        unknown = getattr(coordinator, "coordinator_unknown", None)
        if unknown is None:
            return
        if not unknown():
            self._no_coordinator_since = None
            self._backend.connection.up()
            return
        now = time.monotonic()
        if self._no_coordinator_since is None:
            self._no_coordinator_since = now
        elif now - self._no_coordinator_since > self._backend.options.get(
                "bootstrap_timeout_ms", 5000) / 1000.0:
            self._backend.connection.down(
                f"group {self._group!r} has no coordinator")

    def poll(self, timeout, max_records):
        if self._buffer:
            taken, self._buffer = (self._buffer[:max_records],
                                   self._buffer[max_records:])
            return taken
        self._rebuild_if_lost()
        self._report_coordinator()
        # kafka-python's poll runs until its timeout even once woken up:
        # it is called in slices, and a wakeup ends the slices
        deadline = time.monotonic() + timeout
        while not self._woken.is_set():
            left = deadline - time.monotonic()
            try:
                batches = self._consumer.poll(
                    timeout_ms=int(max(min(left, _POLL_SLICE_S), 0) * 1000),
                    max_records=max_records)
            except Exception as exc:  # noqa: BLE001 - a decompressor's too
                unreadable = _skip_unreadable_batch(self._consumer, exc)
                if unreadable is not None:
                    return [unreadable]
                if not isinstance(exc, kerrors.KafkaError):
                    raise
                LOG.warning("notifbus: poll of group %r failed, will "
                            "retry: %r", self._group, exc)
                return []
            if self._kept:
                batches = self._rewind_kept(batches)
            if batches or left <= _POLL_SLICE_S:
                return [_received(tp, m)
                        for tp, messages in batches.items() for m in messages]
        self._woken.clear()
        return []

    def _rewind_later(self, partitions):
        """From kafka-python's IO thread: ``partitions`` were revoked and
        assigned again; the next poll rewinds them."""
        with self._kept_lock:
            self._kept |= set(partitions)

    def _rewind_kept(self, batches):
        """Seek the kept partitions to their committed offsets (or by
        ``auto_offset_reset`` where the group has none), and drop what
        ``batches`` holds of them."""
        with self._kept_lock:
            kept, self._kept = self._kept, set()
        try:
            committed = {tp: self._consumer.committed(tp) for tp in kept}
        except kerrors.KafkaError as exc:
            LOG.warning("notifbus: group %r: no committed offsets for %s, "
                        "will retry: %r", self._group, sorted(kept), exc)
            with self._kept_lock:
                self._kept |= kept
            return {tp: m for tp, m in batches.items() if tp not in kept}
        for tp, offset in committed.items():
            if offset is not None:
                self._consumer.seek(tp, offset)
            elif self._backend.options.get("auto_offset_reset",
                                           "earliest") == "earliest":
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek_to_end(tp)
        return {tp: m for tp, m in batches.items() if tp not in kept}

    def commit(self, offsets):
        """Commit within ``commit_timeout_ms``; from ``on_revoke``, without
        waiting for the answer.

        kafka-python 3.0 calls rebalance listeners on its IO thread, where
        a commit cannot wait (it raises ``RuntimeError``): the commit is
        then sent asynchronously, ahead of the group's next request; if it
        fails, the next owner of the partitions reads from the previous
        commit (at least once).
        """
        points = {TopicPartition(topic, partition): OffsetAndMetadata(
                      offset, "", -1)
                  for (topic, partition), offset in offsets.items()}
        try:
            self._consumer.commit(points, timeout_ms=self._backend.options.get(
                "commit_timeout_ms", 5000))
        except kerrors.KafkaError as exc:
            raise errors.DeliveryError(
                f"commit for group {self._group!r} failed: {exc!r}") from exc
        except RuntimeError:  # called on kafka-python's IO thread
            self._consumer.commit_async(points)

    def seek(self, topic, partition, offset):
        tp = TopicPartition(topic, partition)
        self._buffer = [r for r in self._buffer
                        if (r.topic, r.partition) != (topic, partition)]
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)

    def assignment(self):
        return {(tp.topic, tp.partition)
                for tp in self._consumer.assignment()}

    def lag(self):
        """See :meth:`notifbus.backends.base.Consumer.lag`: the highwater
        minus the position of each assigned partition, from kafka-python's
        state as of its last fetch (no request); partitions not fetched
        from yet are left out."""
        states = getattr(self._consumer._subscription, "assignment", {})
        found = {}
        for tp, state in list(states.items()):
            position = state.position
            if state.highwater is not None and position is not None:
                found[(tp.topic, tp.partition)] = max(
                    state.highwater - position.offset, 0)
        return found

    def wait_assigned(self, timeout):
        """Poll (keeping what arrives for the next :meth:`poll`) until the
        group gave this member partitions of each of its topics, or has
        been stable for ``_IDLE_MEMBER_S`` without changing what it gave
        (more members than partitions leave some without a topic, or
        without any). A group leader without metadata for a topic just
        created assigns none of it, and joins again once the metadata
        arrives: a member that took the first assignment as final would
        see its partitions move again right after."""
        deadline = time.monotonic() + timeout
        settled_since, last = None, None
        while True:
            assignment = self._consumer.assignment()
            if {tp.topic for tp in assignment} >= set(self._topics):
                return True
            if not self._stable() or assignment != last:
                settled_since, last = None, assignment
            elif settled_since is None:
                settled_since = time.monotonic()
            elif time.monotonic() - settled_since >= _IDLE_MEMBER_S:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._buffer.extend(self.poll(min(left, 0.1), 500))

    def _stable(self):
        coordinator = getattr(self._consumer, "_coordinator", None)
        stable = getattr(coordinator, "stable", None)
        return bool(stable and stable())

    def wakeup(self):
        self._woken.set()
        try:
            self._consumer._client.wakeup()
        except Exception:  # noqa: BLE001 - best effort, poll is bounded
            pass

    def close(self, timeout=5.0):
        """Leave the group, within about ``timeout`` seconds. With
        ``BrokerQuirks.finish_rebalance_before_leave``, a rebalance in
        flight is finished first (within half of ``timeout``)."""
        deadline = time.monotonic() + timeout / 2
        while (self._backend.quirks.finish_rebalance_before_leave
               and not self._stable() and time.monotonic() < deadline):
            try:
                self._consumer.poll(timeout_ms=100, max_records=1)
            except kerrors.KafkaError:
                break
        left = max(deadline + timeout / 2 - time.monotonic(), 0.1)
        _close_within(
            lambda: self._consumer.close(autocommit=False,
                                         timeout_ms=int(left * 1000)),
            left, f"the consumer of group {self._group!r}")
