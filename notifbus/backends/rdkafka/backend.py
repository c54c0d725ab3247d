"""The backend class of the ``rdkafka`` backend, which the package's
docstring (:mod:`notifbus.backends.rdkafka`) describes."""

import functools
import logging
import threading
import time

import confluent_kafka as ck
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from notifbus import errors
from notifbus.backends import base, tls_config
from notifbus.backends.connection import ConnectionState
from notifbus.backends.kafka_common import delivery
from notifbus.backends.kafka_common import options as kafka_options
from notifbus.backends.kafka_common import quirks as kafka_quirks
from notifbus.backends.rdkafka import options as own_options
from notifbus.backends.rdkafka.consumer import RdkafkaConsumer, to_received
from notifbus.backends.rdkafka.delivery import PENDING, Delivery, HeldRecords
from notifbus.backends.rdkafka.failures import reason
from notifbus.backends.threads import close_within, wait_future
from notifbus.deferred_log import DeferredLog
from notifbus.loop_thread import blocking

LOG = logging.getLogger(__name__)

DEFAULT_PORT = delivery.DEFAULT_PORT

#: librdkafka properties that notifbus sets: not allowed in extra_config.
MANAGED = frozenset((
    "bootstrap.servers", "client.id", "security.protocol", "sasl.mechanism",
    "sasl.mechanisms", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
    "ssl.key.password", "ssl.endpoint.identification.algorithm",
    "socket.timeout.ms", "request.timeout.ms", "message.timeout.ms",
    "acks", "request.required.acks", "compression.type",
    "compression.codec", "linger.ms", "queue.buffering.max.ms",
    "batch.size", "batch.num.messages", "message.max.bytes",
    "enable.idempotence", "max.in.flight.requests.per.connection",
    "max.in.flight", "group.id", "enable.auto.commit",
    "enable.auto.offset.store", "auto.offset.reset",
    "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
    "fetch.wait.max.ms", "fetch.max.bytes", "allow.auto.create.topics",
    "partition.assignment.strategy", "error_cb", "logger", "on_delivery",
    "enable.partition.eof", "group.protocol",
    "topic.metadata.propagation.max.ms",
))

# delivery errors that no retry can cure
_PERMANENT = frozenset((
    KafkaError.INVALID_MSG, KafkaError.TOPIC_EXCEPTION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION,
    KafkaError._SSL, KafkaError.UNSUPPORTED_VERSION,
    KafkaError._INVALID_ARG, KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
))
_TOO_LARGE = frozenset((KafkaError.MSG_SIZE_TOO_LARGE,
                        KafkaError.RECORD_LIST_TOO_LARGE,
                        KafkaError.INVALID_MSG_SIZE))
# client-wide errors that fail every send at once
_REFUSED = frozenset((KafkaError._SSL, KafkaError._AUTHENTICATION,
                      KafkaError.SASL_AUTHENTICATION_FAILED))
#: seconds without an answer after which a send or a join probes the
#: brokers for a TLS listener reached without TLS (see ``_problem``)
_PROBE_AFTER_S = 1.0
#: seconds a topic's min.insync.replicas is taken from the last look
_MIN_ISR_KEEP_S = 60.0
# how librdkafka words a SASL mechanism that the broker does not enable
_MECHANISM_HANDSHAKE_FAILED = "mechanism handshake failed"
# errors that librdkafka's own log lines tell already
_LOGGED = frozenset((KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT,
                     KafkaError._RESOLVE))
# librdkafka's log facilities of reconnect chatter (a failed connection, a
# request timed out: once per broker and attempt; a group session that
# timed out, which notifbus reports as the partitions lost), and of
# properties meant for other clients (extra_config); logged at DEBUG
_DEBUG_FACILITIES = frozenset(("FAIL", "REQTMOUT", "SESSTMOUT", "CONFWARN"))
# a topic the broker does not know (any more)
_NO_TOPIC = frozenset((KafkaError._UNKNOWN_TOPIC,
                       KafkaError.UNKNOWN_TOPIC_OR_PART))


class ClientEvents:
    """What librdkafka's threads report to Python (log lines, client-wide
    errors), kept without locks for the caller to log: the callbacks run
    on whichever thread serves the client, a native one under eventlet,
    where a green logging lock must not be taken.

    ``connection`` is the backend's
    :class:`~notifbus.backends.connection.ConnectionState`: down when
    librdkafka reports every broker unreachable, up again once a broker
    answered (one line each); ``down_since`` is its time of going down.
    librdkafka's own connection failures (its ``FAIL``, ``REQTMOUT`` and
    ``SESSTMOUT`` log lines, once per broker and attempt) are kept at
    DEBUG.
    ``refused`` is the last TLS or SASL failure, as ``(monotonic time,
    error code, message)``.
    """

    def __init__(self, describe):
        self._describe = describe
        self.notes = DeferredLog()
        self._last = None
        self.connection = ConnectionState(
            "Kafka brokers", describe(), log=self._log_line,
            hint=" (librdkafka's connection messages are at DEBUG on the "
                 "'notifbus.backends.rdkafka.backend' logger)")
        self.last_error = None
        self.refused = None

    @property
    def down_since(self):
        return self.connection.down_since

    def _note(self, level, message, args):
        note = (level, message, args)
        if note != self._last:  # a broker that stays down repeats itself
            self._last = note
            self.notes.note(level, message, *args)

    def _log_line(self, level, message, *args):
        self._note(level, message, args)

    # librdkafka's ``logger``: an object with ``log(level, msg, *args)``
    def log(self, level, message, *args):
        if args and args[0] in _DEBUG_FACILITIES:
            level = logging.DEBUG
        self._note(level, "librdkafka: " + message, args)

    def error(self, err):
        """librdkafka's ``error_cb``."""
        code = err.code()
        self.last_error = err.str()
        if code == KafkaError._ALL_BROKERS_DOWN:
            # librdkafka also says it while it replaces its bootstrap
            # connection, as "0/2 brokers are down"
            if not err.str().startswith("0/"):
                self.connection.down(err.str())
        elif code in _REFUSED:
            self.refused = (time.monotonic(), code, err.str())
        if code not in _LOGGED:
            level = logging.WARNING if err.fatal() else logging.INFO
            self._note(level, "librdkafka error for %s: %s",
                       (self._describe(), err.str()))

    def answered(self):
        """A broker acknowledged something: it is reachable."""
        self.connection.up()
        self.refused = None

    def flush(self, logger=LOG):
        """Log what librdkafka's threads noted, on the caller's thread."""
        self.notes.flush(logger)


class RdkafkaBackend(base.Backend):
    """Kafka through librdkafka: one producer, one admin client and one
    replay reader per backend, created on first use; one consumer per
    subscription."""


    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        self.events = ClientEvents(self._describe)
        self.connection = self.events.connection
        # (down_since, what a probe found) of the last outage, see _why_down
        self._diagnosed = None
        self._base_config = self.client_config()  # refuse what cannot work
        kafka_options.check("rdkafka", self.opts, own_options.RULES)
        self.quirks = kafka_quirks.for_options(self.opts)
        self._lock = threading.Lock()  # taken by callers only
        self._producer = None
        self._admin = None
        self._reader = None
        self._reader_at = None
        # topic -> partition count, to create a vanished topic again
        self.partition_counts = {}
        # records that a failed attempt left with librdkafka: a retry
        # waits for their delivery instead of producing them again
        self._held = HeldRecords(self.opts.message_timeout_s + 60.0)
        # topic -> (min.insync.replicas, monotonic time of the look)
        self._min_isr = {}

    @classmethod
    def list_opts(cls):
        return own_options.list_opts()

    @property
    def bootstrap_servers(self):
        return ",".join(delivery.bootstrap_servers(self.hosts))

    def _describe(self):
        return self.bootstrap_servers

    # -- configuration ------------------------------------------------------

    def client_config(self):
        """librdkafka properties shared by every client of this backend.

        :raises ConfigError: the settings cannot work.
        """
        opts = self.opts
        extra = dict(opts.extra_config or {})
        managed = sorted(set(extra) & MANAGED)
        if managed:
            raise errors.ConfigError(
                f"extra_config sets {', '.join(managed)}, which notifbus "
                f"sets itself: use the options of [notifbus_rdkafka] "
                f"instead")
        config = dict(extra)
        config.update({
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": opts.client_id,
            "socket.timeout.ms": opts.request_timeout_ms,
            "security.protocol": opts.security_protocol.lower(),
        })
        config.update(self._security_config(opts.security_protocol))
        if extra:
            _check_properties(config)
        return config

    def _security_config(self, protocol):
        """librdkafka's SASL and TLS properties for ``protocol``."""
        opts = self.opts
        config = {}
        login = tls_config.sasl_login(opts, protocol, self.username,
                                      self.password)
        if login is not None:
            mechanism, user, password = login
            config.update({"sasl.mechanism": mechanism,
                           "sasl.username": user,
                           "sasl.password": password})
        if tls_config.uses_tls(opts, protocol):
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if opts.ssl_check_hostname else "none")
            for name, key in (("ssl_cafile", "ssl.ca.location"),
                              ("ssl_certfile", "ssl.certificate.location"),
                              ("ssl_keyfile", "ssl.key.location"),
                              ("ssl_password", "ssl.key.password")):
                if opts[name]:
                    config[key] = opts[name]
        return config

    def _client(self, factory, what, **extra):
        """A librdkafka client of ``factory`` with the shared properties,
        ``extra`` ones and the callbacks that feed :attr:`events`."""
        config = dict(self._base_config)
        config.update(extra)
        config.update({"error_cb": self.events.error,
                       "logger": self.events})
        try:
            return factory(config)
        except (KafkaException, ValueError, TypeError) as exc:
            # librdkafka names the property, never its value
            raise errors.DeliveryError(
                f"could not create the librdkafka {what} for "
                f"{self._describe()}: {reason(exc)}",
                retriable=False) from exc
        finally:
            self.events.flush()

    # -- producing ----------------------------------------------------------

    def producer_config(self):
        """Properties of the producer, besides the shared ones."""
        opts = self.opts
        idempotent = kafka_options.idempotent(opts, self.quirks, LOG)
        return {
            "acks": -1 if opts.acks == "all" else 1,
            "compression.type": opts.compression_type,
            "linger.ms": opts.producer_linger_ms,
            "batch.size": opts.producer_batch_bytes,
            "batch.num.messages": opts.producer_batch_records,
            "message.max.bytes": opts.message_max_bytes,
            "enable.idempotence": idempotent,
            # librdkafka's idempotent producer takes a batch refused with
            # NOT_LEADER_OR_FOLLOWER as acknowledged when a later batch of
            # the partition, in flight at the same time, is stored (a
            # leader without state for the producer id takes any first
            # sequence): on a topic just created, the first records of a
            # partition were lost that way about once in twenty topics
            # on Apache Kafka 4.4 (confluent-kafka-go#921). One request in
            # flight per broker keeps the batches of a partition in order.
            "max.in.flight.requests.per.connection": 1 if idempotent else 5,
            "message.timeout.ms": opts.message_timeout_ms,
            "request.timeout.ms": opts.request_timeout_ms,
            "allow.auto.create.topics": False,
            # notifbus waits for the topics it creates to show in the
            # metadata: a topic missing from it is gone
            "topic.metadata.propagation.max.ms": 1000,
        }

    def _get_producer(self):
        with self._lock:
            if self._producer is None:
                self._producer = self._client(ck.Producer, "producer",
                                              **self.producer_config())
            return self._producer

    def _serve(self, producer, timeout):
        """Serve delivery reports and events for up to ``timeout``
        seconds, without blocking eventlet's hub."""
        blocking(producer.poll, timeout)
        self.events.flush()

    def produce(self, records, partitions, timeout):
        """See :meth:`notifbus.backends.base.Backend.produce`.

        A record that an earlier attempt left with librdkafka (the same
        object, retried by the bus) is not produced again: this attempt
        waits for the report of its first delivery (see
        :mod:`notifbus.backends.rdkafka.delivery`). With ``acks=all``, an
        attempt without an answer for a second looks at the partitions it
        waits for, and ends with a retriable error naming
        NOT_ENOUGH_REPLICAS when one has fewer in-sync replicas than its
        ``min.insync.replicas`` (librdkafka retries that refusal itself,
        without telling).
        """
        started = time.monotonic()
        deadline = started + timeout
        try:
            producer = self._get_producer()
        except errors.DeliveryError as exc:
            return [exc] * len(records)
        delivery = Delivery(len(records), self.events.answered)
        results = [None] * len(records)
        for index, (record, partition) in enumerate(zip(records,
                                                        partitions)):
            report = functools.partial(delivery.report, index)
            if self._held and self._held.follow(record, report):
                continue
            failed = self._enqueue(producer, record, partition, deadline,
                                   report)
            if failed is not None:
                delivery.report(index, failed, None)
        problem = None
        look_at = started + _PROBE_AFTER_S
        while delivery.pending:
            left = deadline - time.monotonic()
            problem = self._problem(started)
            if (problem is not None and problem.retriable
                    and self._answers(producer, records[0].topic)):
                problem = None  # a broker is back: wait for it
            if problem is None and time.monotonic() >= look_at:
                look_at = time.monotonic() + _PROBE_AFTER_S
                problem = self._short_of_replicas(producer, records,
                                                  partitions, delivery,
                                                  deadline)
            if left <= 0 or problem is not None:
                break
            self._serve(producer, min(left, 0.05))
        if delivery.pending:
            self._abandon(producer, records, delivery)
            if problem is None:
                problem = errors.DeliveryError(
                    f"Kafka at {self._describe()} did not acknowledge the "
                    f"record within {timeout:.1f} s")
        for index, outcome in enumerate(delivery.outcome):
            if outcome is PENDING:
                results[index] = problem
            elif outcome is not None:
                results[index] = self._delivery_error(records[index],
                                                      outcome)
        self._held.release(records, delivery.outcome)
        outcomes = [o for o in delivery.outcome if isinstance(o, KafkaError)]
        if any(o.fatal() for o in outcomes):
            self._reset_producer(producer)
        lost = {record.topic for record, o in zip(records, delivery.outcome)
                if isinstance(o, KafkaError) and o.code() in _NO_TOPIC}
        for topic in sorted(lost):
            self._recreate(topic)
        return results

    def _enqueue(self, producer, record, partition, deadline, report):
        """Hand one record to librdkafka; a KafkaError if it refused it."""
        while True:
            try:
                producer.produce(
                    record.topic, value=record.value, key=record.key,
                    partition=partition,
                    headers=list(record.headers) or None,
                    timestamp=record.timestamp_ms or 0,
                    on_delivery=report)
                return None
            except BufferError:  # librdkafka's queue is full
                if time.monotonic() >= deadline:
                    return KafkaError(KafkaError._QUEUE_FULL)
                self._serve(producer, 0.05)
            except KafkaException as exc:
                return exc.args[0]

    def _problem(self, started):
        """Why a send begun at ``started`` should stop waiting, as a
        DeliveryError, or ``None``."""
        events = self.events
        refused = events.refused
        if refused is not None and refused[0] >= started - 1.0:
            return self._refusal(*refused[1:])
        down_since = events.down_since
        # librdkafka does not always call every broker down when a TLS
        # listener cuts its plaintext connections: probe once an attempt
        # has had no answer for a while, whatever it says
        probe_key = down_since
        if probe_key is None and time.monotonic() - started >= _PROBE_AFTER_S:
            probe_key = started
        if probe_key is not None:
            found = self._why_down(probe_key)
            if found is not None:
                return found
        bootstrap_s = self.opts.bootstrap_timeout_s
        if (down_since is not None and time.monotonic()
                - max(down_since, started) >= bootstrap_s):
            return errors.DeliveryError(
                f"no Kafka broker answered at {self._describe()} within "
                f"{self.opts.bootstrap_timeout_ms} ms (last error: "
                f"{events.last_error}); check the transport URL and that "
                f"the brokers run")
        return None

    def _unanswered(self, started, exc):
        """The DeliveryError of a metadata request that failed with a
        transport error (connection refused, no broker up) at
        ``bootstrap_timeout_ms`` or more after ``started``, else ``None``.
        librdkafka may take longer than that to report every broker down
        (the event :meth:`_problem` waits for): without this, a send or a
        listener start on a broker that refuses connections failed at
        ``send_timeout_ms`` instead."""
        err = exc.args[0] if exc.args else None
        if not (isinstance(err, KafkaError)
                and err.code() == KafkaError._TRANSPORT):
            return None
        if time.monotonic() - started < self.opts.bootstrap_timeout_s:
            return None
        return errors.DeliveryError(
            f"no Kafka broker answered at {self._describe()} within "
            f"{self.opts.bootstrap_timeout_ms} ms ({reason(exc)}); check "
            f"the transport URL and that the brokers run")

    def _refusal(self, code, text):
        """The DeliveryError of the TLS or SASL failure that librdkafka
        reported as ``text``. A refused login names the user and the
        mechanism; a failed TLS handshake is made again here for its
        cause, which librdkafka words as a CA problem even for a
        certificate issued for another name."""
        found = None
        if code == KafkaError._SSL:
            found = tls_config.session_problem(
                self.opts, self.hosts, DEFAULT_PORT,
                tls_config.PROBE_TIMEOUT_S)
        login = tls_config.sasl_login(self.opts, self.opts.security_protocol,
                                      self.username, self.password)
        if found:
            problem = found[0]
        elif code != KafkaError._SSL and login is not None:
            mechanism, user, _ = login
            # librdkafka gives both the same code
            refused = (tls_config.mechanism_refused
                       if _MECHANISM_HANDSHAKE_FAILED in text
                       else functools.partial(tls_config.login_refused,
                                              user=user))
            problem = refused(where=self._describe(), mechanism=mechanism,
                              detail=text)
        else:
            problem = (f"{text}; check the security settings "
                       f"(security_protocol, ssl_*, sasl_*)")
        return errors.DeliveryError(
            f"Kafka at {self._describe()} refused the connection: "
            f"{problem}", retriable=False)

    def _why_down(self, down_since):
        """While no broker can be reached: a TLS listener reached without
        TLS, or a TLS handshake that cannot work, as a DeliveryError that
        no retry cures; else ``None``. One probe per host and outage."""
        diagnosed = self._diagnosed
        if diagnosed is None or diagnosed[0] != down_since:
            found = tls_config.session_problem(
                self.opts, self.hosts, DEFAULT_PORT,
                tls_config.PROBE_TIMEOUT_S)
            diagnosed = self._diagnosed = (down_since, found)
        found = diagnosed[1]
        if found and not found[1]:
            return errors.DeliveryError(
                f"could not connect to Kafka at {self._describe()}: "
                f"{found[0]}", retriable=False)
        return None

    def _answers(self, producer, topic):
        """Whether a broker answers a metadata request now; librdkafka
        reports no broker coming back, only all of them going away."""
        try:
            blocking(functools.partial(producer.list_topics, topic,
                                       timeout=0.5))
        except KafkaException:
            return False
        self.events.answered()
        return True

    def _abandon(self, producer, records, delivery):
        """Leave the records of a failed attempt that librdkafka still
        holds to a retry, which waits for their delivery (see
        :class:`~notifbus.backends.rdkafka.delivery.HeldRecords`).

        While no broker answers at all, the records that never left the
        client are taken back (purged) instead, so that a send that
        failed is not stored later; only when no other caller's records
        wait there. Records that were sent are never purged: they may be
        stored already, and a retry would store them again.
        """
        if self.events.down_since is not None:
            try:
                if len(producer) <= delivery.pending:
                    producer.purge(in_queue=True, in_flight=False,
                                   blocking=False)
                    self._serve(producer, 0)  # the purged records' reports
            except (KafkaException, RuntimeError) as exc:
                LOG.debug("notifbus: purging the producer queue failed: "
                          "%r", exc)
        self._held.hold(records, delivery)

    def _short_of_replicas(self, producer, records, partitions, delivery,
                           deadline):
        """With ``acks=all``: a retriable DeliveryError naming the
        partitions of the pending records that have fewer in-sync
        replicas than their topic's ``min.insync.replicas``, whose leader
        refuses the records with NOT_ENOUGH_REPLICAS; else ``None`` (also
        when no answer came before ``deadline``). A partition whose
        replicas are all in sync costs one metadata request; the topic's
        configs are asked for only when one is not."""
        if self.opts.acks != "all":
            return None
        waiting = {}
        for index, outcome in enumerate(delivery.outcome):
            if outcome is PENDING and partitions[index] is not None:
                waiting.setdefault(records[index].topic, set()).add(
                    partitions[index])
        short = []
        for topic, numbers in sorted(waiting.items()):
            left = deadline - time.monotonic()
            if left <= 0.05:
                return None
            try:
                metadata = blocking(functools.partial(
                    producer.list_topics, topic, timeout=min(left, 0.5)))
            except KafkaException:
                return None
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                continue
            shrunk = [(number, len(found.partitions[number].isrs))
                      for number in sorted(numbers)
                      if number in found.partitions
                      and len(found.partitions[number].isrs)
                      < len(found.partitions[number].replicas)]
            required = self._min_isr_of(topic, deadline) if shrunk else None
            if required is None:
                continue
            short.extend(f"{topic!r} partition {number}: {in_sync} in "
                         f"sync, min.insync.replicas is {required}"
                         for number, in_sync in shrunk
                         if in_sync < required)
        if not short:
            return None
        return errors.DeliveryError(
            f"Kafka at {self._describe()} has not enough in-sync replicas "
            f"(NOT_ENOUGH_REPLICAS) for topic {'; '.join(short)}: its "
            f"leader refuses records sent with acks=all. librdkafka keeps "
            f"them until message_timeout_ms and a retry of this send waits "
            f"for them; they are stored once enough replicas are back in "
            f"sync (bring the brokers back)")

    def _min_isr_of(self, topic, deadline):
        """``min.insync.replicas`` of ``topic`` (its own or the brokers'
        default), looked up again after a minute; ``None`` if the admin
        client got no answer before ``deadline``."""
        now = time.monotonic()
        known = self._min_isr.get(topic)
        if known is not None and now - known[1] < _MIN_ISR_KEEP_S:
            return known[0]
        left = min(deadline - now, 1.5)
        if left <= 0.05:
            return None
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            (future,) = self._get_admin().describe_configs(
                [resource], request_timeout=left).values()
            value = int(wait_future(future, left)[
                "min.insync.replicas"].value)
        except (errors.DeliveryError, KafkaException, TimeoutError,
                KeyError, TypeError, ValueError) as exc:
            LOG.debug("notifbus: no min.insync.replicas of topic %r from "
                      "%s: %r", topic, self._describe(), exc)
            return None
        self._min_isr[topic] = (value, now)
        return value

    def _delivery_error(self, record, err):
        code = err.code()
        if code in _TOO_LARGE:
            return delivery.too_large(
                record, f"{err.str()} (the client's limit is "
                f"message_max_bytes={self.opts.message_max_bytes})")
        return delivery.not_acknowledged(
            self._describe(), record, f"{err.str()} ({err.name()})",
            retriable=code not in _PERMANENT)

    def _reset_producer(self, producer):
        """Drop a producer that librdkafka reported a fatal error for;
        the next attempt builds a new one."""
        with self._lock:
            if self._producer is producer:
                self._producer = None
        self._held.clear()
        LOG.warning("notifbus: resetting the librdkafka producer for %s",
                    self._describe())
        close_within(functools.partial(close_producer, producer, 0), 1.0,
                     "a discarded librdkafka producer")

    # -- delivery=buffered (notifbus.backends.rdkafka.queued) ---------------

    def buffered_sender(self, publisher, **options):
        """The sender of ``delivery=buffered`` on this backend: a
        :class:`~notifbus.backends.rdkafka.queued.QueuedSender`, whose
        buffer is librdkafka's queue. ``options`` are those of
        :class:`~notifbus.buffered.BufferedSender`."""
        from notifbus.backends.rdkafka.queued import QueuedSender

        return QueuedSender(self, publisher, **options)

    def buffered_producer(self, on_failure):
        """A producer of its own for the buffered sender, which reports
        only failed deliveries (``delivery.report.only.error``), to
        ``on_failure(err, message)`` unless a produce names its own
        ``on_delivery``; its log lines and errors go to :attr:`events`.

        :raises DeliveryError: librdkafka refused to make it.
        """
        return self._client(ck.Producer, "producer",
                            **self.producer_config(),
                            **{"delivery.report.only.error": True,
                               "on_delivery": on_failure})

    def producer(self):
        """The producer, made on first use.

        :raises DeliveryError: librdkafka refused to make it.
        """
        return self._get_producer()

    def current_producer(self):
        """The producer, or ``None`` when none is made (or it was reset)."""
        return self._producer

    def reset_producer(self):
        """Drop the producer after a fatal error; the next send makes a
        new one."""
        producer = self._producer
        if producer is not None:
            self._reset_producer(producer)

    def delivery_error(self, record, err):
        """The :class:`~notifbus.errors.DeliveryError` of ``record`` for
        librdkafka's ``err`` (a KafkaError): retriable unless permanent,
        :class:`~notifbus.errors.RecordTooLarge` for a size refusal."""
        return self._delivery_error(record, err)

    # -- topics -------------------------------------------------------------

    def _get_admin(self):
        with self._lock:
            if self._admin is None:
                self._admin = self._client(AdminClient, "admin client")
            return self._admin

    def _partition_count(self, client, topic, timeout, started=None):
        """Partitions of ``topic``, 0 if it does not exist.

        With ``started`` (``client`` is the producer), gives up as a send
        does once no broker answered for ``bootstrap_timeout_ms``.

        :raises DeliveryError: no metadata within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            wait = left if started is None else min(left, 0.5)
            try:
                metadata = blocking(functools.partial(
                    client.list_topics, topic, timeout=max(wait, 0.01)))
                break
            except KafkaException as exc:
                if started is not None:
                    self._serve(client, 0)  # error events
                    problem = (self._problem(started)
                               or self._unanswered(started, exc))
                    if problem is not None:
                        raise problem from exc
                if time.monotonic() >= deadline:
                    err = exc.args[0] if exc.args else None
                    if (isinstance(err, KafkaError)
                            and err.code() == KafkaError._TRANSPORT):
                        # librdkafka has not called every broker down yet
                        raise errors.DeliveryError(
                            f"no Kafka broker answered at "
                            f"{self._describe()} within {timeout:.1f} s "
                            f"({reason(exc)}); check the transport URL "
                            f"and that the brokers run") from exc
                    raise errors.DeliveryError(
                        f"no metadata for topic {topic!r} from "
                        f"{self._describe()} within {timeout:.1f} s: "
                        f"{reason(exc)}; check the transport URL and that "
                        f"the brokers run") from exc
            finally:
                self.events.flush()
        self.events.answered()
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return 0
        return len(found.partitions)

    def ensure_topic(self, topic, partitions, timeout):
        started = time.monotonic()
        deadline = started + timeout
        producer = self._get_producer()
        count = self._partition_count(producer, topic, timeout, started)
        if not count and not self.opts.create_topics:
            raise kafka_options.missing_topic(topic, self._describe())
        if not count:
            self._create_topic(topic, partitions, deadline)
        while not count:
            left = deadline - time.monotonic()
            count = self._partition_count(producer, topic, max(left, 0.1),
                                          started)
            if count:
                break
            if left <= 0:
                raise errors.DeliveryError(
                    f"topic {topic!r} was created at {self._describe()} "
                    f"but its metadata did not appear within "
                    f"{timeout:.1f} s")
            time.sleep(0.05)
        self.partition_counts[topic] = count
        return count

    def _recreate(self, topic):
        """Create again a topic that the broker no longer knows (a broker
        that lost its storage), with the partitions it had, so that the
        next attempt finds it."""
        count = self.partition_counts.get(topic)
        if not count or not self.opts.create_topics:
            return
        LOG.warning("notifbus: topic %r is gone from %s; creating it again "
                    "with %d partitions", topic, self._describe(), count)
        started = time.monotonic()
        timeout = self.opts.bootstrap_timeout_s
        try:
            self._create_topic(topic, count, started + timeout)
            self._partition_count(self._get_producer(), topic, timeout,
                                  started)
        except errors.DeliveryError as exc:
            LOG.warning("notifbus: creating topic %r again failed, the "
                        "next attempt tries again: %s", topic, exc)

    def _create_topic(self, topic, partitions, deadline):
        left = max(deadline - time.monotonic(), 0.1)
        factor, configs = kafka_options.new_topic(self.opts)
        new = NewTopic(topic, num_partitions=partitions,
                       replication_factor=factor, config=configs)
        try:
            future = self._get_admin().create_topics(
                [new], request_timeout=left, operation_timeout=left)[topic]
        except KafkaException as exc:
            raise errors.DeliveryError(
                f"could not create topic {topic!r} at {self._describe()}: "
                f"{reason(exc)}") from exc
        try:
            wait_future(future, left + 1.0)
        except KafkaException as exc:
            err = exc.args[0]
            if (isinstance(err, KafkaError)
                    and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                return
            raise errors.DeliveryError(
                f"could not create topic {topic!r} at {self._describe()}: "
                f"{reason(exc)}",
                retriable=not (isinstance(err, KafkaError)
                               and err.code() in _PERMANENT)) from exc
        except TimeoutError as exc:
            raise errors.DeliveryError(
                f"could not create topic {topic!r} at {self._describe()}: "
                f"no answer within {left:.1f} s") from exc

    # -- consuming ----------------------------------------------------------

    def consumer_config(self, group):
        """Properties of a consumer of ``group``: no automatic commits or
        offset stores, the bus commits."""
        opts = self.opts
        return {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": opts.auto_offset_reset,
            "session.timeout.ms": opts.session_timeout_ms,
            "heartbeat.interval.ms": kafka_options.heartbeat_interval_ms(
                opts),
            "max.poll.interval.ms": opts.max_poll_interval_ms,
            "fetch.wait.max.ms": opts.fetch_max_wait_ms,
            "fetch.max.bytes": opts.fetch_max_bytes,
            "partition.assignment.strategy": "roundrobin",
            "allow.auto.create.topics": False,
            "enable.partition.eof": False,
        }

    def new_consumer(self, group, what):
        return self._client(ck.Consumer, what,
                            **self.consumer_config(group))

    def subscribe(self, topics, group, on_revoke=None):
        return RdkafkaConsumer(self, list(topics), group, on_revoke)

    # -- replay -------------------------------------------------------------

    def _get_reader(self):
        """A consumer that is assigned partitions, never in a group and
        never committing, for replay."""
        with self._lock:
            if self._reader is None:
                self._reader = self.new_consumer("notifbus-replay",
                                                 "replay reader")
            return self._reader

    def _partitions_of(self, topic, timeout):
        count = self._partition_count(self._get_reader(), topic, timeout)
        if not count:
            raise errors.NotifbusError(
                f"topic {topic!r} does not exist at {self._describe()}")
        return range(count)

    def _watermarks(self, reader, topic, partition, timeout):
        try:
            return blocking(functools.partial(
                reader.get_watermark_offsets,
                TopicPartition(topic, partition), timeout=timeout,
                cached=False))
        except KafkaException as exc:
            raise errors.DeliveryError(
                f"no offsets for topic {topic!r} partition {partition} "
                f"from {self._describe()}: {reason(exc)}") from exc

    def end_offsets(self, topic, timeout):
        reader = self._get_reader()
        ends = {partition: self._watermarks(reader, topic, partition,
                                            timeout)[1]
                for partition in self._partitions_of(topic, timeout)}
        if not self.quirks.end_offsets_per_batch:
            return ends
        return {partition: kafka_quirks.end_after_last_batch(
                    self, topic, partition, end, min(timeout, 1.5))
                for partition, end in ends.items()}

    def offsets_for_time(self, topic, timestamp_ms, timeout):
        reader = self._get_reader()
        partitions = self._partitions_of(topic, timeout)
        try:
            found = blocking(functools.partial(
                reader.offsets_for_times,
                [TopicPartition(topic, p, timestamp_ms) for p in partitions],
                timeout=timeout))
        except KafkaException as exc:
            raise errors.DeliveryError(
                f"no offsets by time for topic {topic!r} from "
                f"{self._describe()}: {reason(exc)}") from exc
        ends = self.end_offsets(topic, timeout)
        offsets = {tp.partition: (tp.offset if tp.offset >= 0
                                  else ends[tp.partition])
                   for tp in found}
        if not self.quirks.offsets_for_time_unmatched_at_zero:
            return offsets
        return {partition: kafka_quirks.first_at_or_after(
                    self, topic, partition, offset, ends[partition],
                    timestamp_ms, min(timeout, 1.5))
                for partition, offset in offsets.items()}

    def read(self, topic, partition, offset, max_records, timeout):
        reader = self._get_reader()
        if self._reader_at != (topic, partition, offset):
            reader.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        found = []
        while not found:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            messages = blocking(functools.partial(
                reader.consume, max_records, min(left, 0.1)))
            self.events.flush()
            for message in messages:
                if message.error() is None:
                    found.append(to_received(message))
                elif message.error().code() != KafkaError._PARTITION_EOF:
                    LOG.warning("notifbus: reading %s[%d] from %s: %s",
                                topic, partition, self._describe(),
                                message.error().str())
        if found:
            self._reader_at = (topic, partition, found[-1].offset + 1)
        else:
            self._reader_at = (topic, partition, offset)
        return found

    def close(self, timeout=5.0):
        with self._lock:
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
            reader, self._reader = self._reader, None
        self._held.clear()
        deadline = time.monotonic() + timeout
        if reader is not None:
            close_within(reader.close, timeout / 4, "the replay reader")
        if producer is not None:
            left = max(deadline - time.monotonic(), 0.1)
            close_within(functools.partial(close_producer, producer,
                                           left * 0.8),
                         left, "the librdkafka producer")
        if admin is not None:
            # the last reference goes on a native thread, where librdkafka
            # destroys the client
            held = [admin]
            del admin
            close_within(held.clear, timeout / 4, "the admin client")
        self.events.flush()


def _check_properties(config):
    """Have librdkafka check ``config``: a client without brokers (which
    connects nowhere) is built and dropped.

    :raises ConfigError: librdkafka refused a property; its message names
        the property, never the value.
    """
    config = dict(config, logger=_Discard())
    config.pop("bootstrap.servers", None)
    try:
        ck.Producer(config)
    except (KafkaException, ValueError, TypeError) as exc:
        raise errors.ConfigError(
            f"librdkafka refused the configuration (check extra_config): "
            f"{reason(exc)}") from exc


class _Discard:
    """A librdkafka ``logger`` that drops what it is given."""

    def log(self, *args):
        pass


def close_producer(producer, timeout):
    """Deliver what is queued for up to ``timeout`` seconds, then drop
    the rest and release the producer."""
    producer.flush(timeout)
    producer.purge()
    producer.poll(0)  # serve the purge reports
    close = getattr(producer, "close", None)
    if close is not None:  # confluent-kafka >= 2.8
        close()


