"""The backend class of the ``kafka`` backend, which the package's
docstring (:mod:`notifbus.backends.kafka`) describes."""

import functools
import logging
import threading
import time

import kafka
import kafka.errors as kerrors
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from notifbus import errors
from notifbus.backends import base, tls_config
from notifbus.backends.kafka import logs as kafka_logging
from notifbus.backends.kafka import options as own_options
from notifbus.backends.kafka import produce as kafka_produce
from notifbus.backends.kafka import records as kafka_records
from notifbus.backends.kafka import sasl as kafka_sasl
from notifbus.backends.kafka.consumer import KafkaConsumer, to_received
from notifbus.backends.kafka_common import delivery
from notifbus.backends.kafka_common import options as kafka_options
from notifbus.backends.kafka_common import quirks as kafka_quirks
from notifbus.backends.threads import close_within
from notifbus.backends.tls_config import ssl_context

LOG = logging.getLogger(__name__)

DEFAULT_PORT = delivery.DEFAULT_PORT

#: longest wait of one kafka-python poll: how late a wakeup may end a poll
_POLL_SLICE_S = 0.1

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


    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        self.client_config()  # refuse what cannot work before connecting
        kafka_options.check("kafka", self.opts, own_options.RULES)
        self.quirks = kafka_quirks.for_options(self.opts)
        codec = self.opts.compression_type
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
        return own_options.list_opts()

    @property
    def bootstrap_servers(self):
        return delivery.bootstrap_servers(self.hosts)

    def _describe(self):
        return ",".join(self.bootstrap_servers)

    def client_config(self):
        """Settings shared by the producer, consumers and admin client.

        :raises ConfigError: the security settings cannot work.
        """
        opts = self.opts
        config = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": opts.client_id,
            "request_timeout_ms": opts.request_timeout_ms,
            "bootstrap_timeout_ms": opts.bootstrap_timeout_ms,
            "security_protocol": opts.security_protocol,
        }
        config.update(self._security_config(config["security_protocol"]))
        return config

    def _security_config(self, protocol):
        """kafka-python's SASL and TLS settings for ``protocol``."""
        opts = self.opts
        config = {}
        login = tls_config.sasl_login(opts, protocol, self.username,
                                      self.password)
        if login is not None:
            mechanism, user, password = login
            config.update(sasl_mechanism=mechanism,
                          sasl_plain_username=user,
                          sasl_plain_password=Secret(password))
        if tls_config.uses_tls(opts, protocol):
            config.update(
                ssl_cafile=opts.ssl_cafile,
                ssl_certfile=opts.ssl_certfile,
                ssl_keyfile=opts.ssl_keyfile,
                ssl_password=Secret.of(opts.ssl_password),
                ssl_check_hostname=opts.ssl_check_hostname)
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
        bootstrap_s = self.opts.bootstrap_timeout_s
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
                opts = self.opts
                compression = opts.compression_type
                self._producer = self._connect(
                    kafka.KafkaProducer, "producer",
                    metrics_enabled=False,
                    acks=-1 if opts.acks == "all" else 1,
                    compression_type=(None if compression == "none"
                                      else compression),
                    batch_size=opts.producer_batch_bytes,
                    linger_ms=0,
                    # with the batch writer, the writer is idempotent
                    enable_idempotence=(
                        not opts.batch_writer
                        and kafka_options.idempotent(opts, self.quirks,
                                                     LOG)),
                    max_request_size=max(opts.producer_batch_bytes,
                                         1048576),
                    delivery_timeout_ms=opts.delivery_timeout_ms,
                    max_block_ms=opts.bootstrap_timeout_ms)
                self._batches = self._batch_producer(self._producer)
            return self._producer

    def _batch_producer(self, producer):
        """The writer of notifbus's own record batches over ``producer``,
        or ``None`` where kafka-python's producer sends one by one."""
        opts = self.opts
        if not opts.batch_writer:
            return None
        config = self.client_config()
        protocol = config["security_protocol"]
        connections = None
        if protocol not in _SASL_PROTOCOLS:
            connections = {
                "client_id": config["client_id"],
                "ssl_context": (ssl_context(config)
                                if protocol in _SSL_PROTOCOLS else None),
                "connect_timeout": opts.bootstrap_timeout_s}
        return kafka_produce.BatchProducer(
            producer, acks=-1 if opts.acks == "all" else 1,
            max_batch_bytes=opts.producer_batch_bytes,
            compression_type=opts.compression_type,
            request_timeout_ms=opts.request_timeout_ms,
            connections=connections,
            idempotent=kafka_options.idempotent(opts, self.quirks, LOG))

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
            elif not self.opts.create_topics:
                raise kafka_options.missing_topic(topic, self._describe())
            else:
                factor, configs = kafka_options.new_topic(self.opts)
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
            return delivery.too_large(record, repr(exc))
        error = delivery.not_acknowledged(
            self._describe(), record, repr(exc),
            retriable=not isinstance(exc, _PERMANENT))
        if not error.retriable:
            return error
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
                    fetch_max_wait_ms=self.opts.fetch_max_wait_ms)
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
        return {tp.partition: kafka_quirks.end_after_last_batch(
                    self, topic, tp.partition, offset,
                    min(timeout, _PROBE_TIMEOUT_S),
                    self.opts.max_poll_records)
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
        return [to_received(tp, m) for m in batches.get(tp, [])]

    def close(self, timeout=5.0):
        with self._lock:
            producer, self._producer = self._producer, None
            batches, self._batches = self._batches, None
            admin, self._admin = self._admin, None
            reader, self._reader = self._reader, None
        if batches is not None:
            batches.close()
        if reader is not None:
            close_within(lambda: reader.close(autocommit=False), timeout,
                         "the replay reader", native=False)
        if producer is not None:
            close_within(lambda: producer.close(timeout=timeout), timeout,
                         "the Kafka producer", native=False)
        if admin is not None:
            close_within(admin.close, timeout, "the Kafka admin client",
                         native=False)
