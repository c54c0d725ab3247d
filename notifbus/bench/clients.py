"""What each row publishes through, behind one small interface.

A :class:`Target` is opened before the clock starts, sends one
notification per :meth:`~Target.send` call (from several senders at once),
and :meth:`~Target.finish`, which is timed, returns once everything sent is
acknowledged or flushed, as far as the client can tell. Notifications
carry ``{"seq": n, "pad": "xx..."}`` as their payload, ``size`` bytes of
JSON; the raw clients send the bytes of one such notification, encoded
once as oslo's drivers encode it, so the same bytes go over the wire.
With ``"stamped": true`` in the spec, an oslo row's payloads also carry
their send time, ``"sent_at"`` (``time.time()``, seconds), for the
end-to-end latency.
"""

import logging
import os
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid

from notifbus import codec

EVENT_TYPE = "bench.event"
PUBLISHER_ID = "notifbus.bench"
NOTIFIER_LOGGER = "oslo_messaging.notify.notifier"


def payload_maker(size, stamped=False):
    """``make(seq)`` -> the payload of notification ``seq``, whose JSON
    (as ``json.dumps`` writes it) is ``size`` bytes long, or as short as
    the sequence number allows. ``stamped``: the payload also has
    ``"sent_at"``, the time of the call (``time.time()``), in about as
    many bytes (a float's JSON varies by a few)."""
    pad = "x" * size
    if stamped:
        def make(seq):
            return {"seq": seq, "sent_at": time.time(),
                    "pad": pad[:max(size - 51 - len(str(seq)), 0)]}
        return make

    def make(seq):
        return {"seq": seq, "pad": pad[:max(size - 20 - len(str(seq)), 0)]}
    return make


def encoded_notification(size):
    """The bytes oslo's messagingv2 drivers write for one notification
    with a ``size``-byte payload."""
    message = {"message_id": str(uuid.uuid4()), "publisher_id": PUBLISHER_ID,
               "event_type": EVENT_TYPE, "priority": "INFO",
               "payload": payload_maker(size)(0),
               "timestamp": "2025-01-01 00:00:00.000000"}
    return codec.encode({}, message)


class FailureCount(logging.Handler):
    """Counts the sends an oslo ``Notifier`` failed: it logs them and
    raises nothing."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.count = 0
        self.first = None

    def emit(self, record):
        self.count += 1
        if self.first is None:
            message = record.getMessage()
            self.first = message.split(" Payload=")[0][:300]


class Target:
    """One way of publishing; subclasses fill in the client."""

    def __init__(self, spec):
        self.spec = spec
        self.topic = spec["topic"]
        self.wire_topic = f"{self.topic}.info"
        self.count = spec["count"]

    def describe(self):
        """The settings that matter, for the JSON result."""
        return {}

    def prepare(self):
        """Before the clock: create topics, check the broker answers."""
        if self.spec["row"]["kafka"]:
            create_topic(self.spec["bootstrap"], self.wire_topic,
                         self.spec["partitions"],
                         self.spec.get("replication_factor") or 1)

    def open(self):
        raise NotImplementedError

    def send(self, seq):
        raise NotImplementedError

    def warm_up(self):
        """Send one notification (sequence -1, not counted) and wait for
        it, so that connecting is not timed."""
        self.send(-1)
        self.finish()

    def finish(self):
        """Timed: until what was sent is acknowledged or flushed."""

    def failures(self):
        """``(count, first message)`` of failed sends."""
        return 0, None

    def close(self):
        """Untimed: release the client."""

    def remove(self):
        """After the row: delete what the row left on a shared broker."""


def create_topic(bootstrap, topic, partitions, replication_factor=1,
                 timeout_s=10.0):
    """Create ``topic`` with ``partitions`` partitions of
    ``replication_factor`` replicas, unless it exists."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                             client_id="notifbus-bench",
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        admin.create_topics([NewTopic(topic, partitions,
                                      replication_factor)],
                            timeout_ms=int(timeout_s * 1000))
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def check_reachable(host, port, what, timeout_s=3.0):
    """:raises ConnectionError: nothing listens at ``host:port``."""
    try:
        socket.create_connection((host, port), timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"{what} at {host}:{port} did not answer "
                              f"within {timeout_s:.0f} s: {exc}") from exc


# -- oslo.messaging ------------------------------------------------------


class OsloTarget(Target):
    """An oslo ``Notifier`` over a transport URL."""

    driver = "messagingv2"

    def __init__(self, spec):
        super().__init__(spec)
        self._make_payload = payload_maker(spec["size"],
                                           bool(spec.get("stamped")))
        self._failures = FailureCount()
        self._files = []
        self.transport = None
        self.notifier = None

    def url(self):
        raise NotImplementedError

    def config(self):
        """``{section: {option: value}}`` for the configuration file."""
        return {}

    def describe(self):
        return {"url": hide_password(self.url()), "config": self.config()}

    def new_conf(self):
        from oslo_config import cfg

        args = []
        sections = self.config()
        if sections:
            handle, path = tempfile.mkstemp(prefix="notifbus-bench-",
                                            suffix=".conf")
            with os.fdopen(handle, "w") as out:
                for section, options in sections.items():
                    out.write(f"[{section}]\n")
                    for key, value in options.items():
                        out.write(f"{key} = {value}\n")
            self._files.append(path)
            args = ["--config-file", path]
        conf = cfg.ConfigOpts()
        conf(args, project="notifbus-bench")
        return conf

    def new_transport(self):
        import oslo_messaging

        return oslo_messaging.get_notification_transport(self.new_conf(),
                                                         url=self.url())

    def open(self):
        import oslo_messaging

        logger = logging.getLogger(NOTIFIER_LOGGER)
        logger.addHandler(self._failures)
        logger.propagate = False
        self.transport = self.new_transport()
        self.notifier = oslo_messaging.Notifier(
            self.transport, publisher_id=PUBLISHER_ID, driver=self.driver,
            topics=[self.topic])

    def send(self, seq):
        self.notifier.info({}, EVENT_TYPE, self._make_payload(seq))

    def failures(self):
        return self._failures.count, self._failures.first

    def close(self):
        if self.transport is not None:
            transport, self.transport = self.transport, None
            transport.cleanup()
        for path in self._files:
            os.unlink(path)
        self._files = []


class NoopTarget(OsloTarget):
    driver = "noop"

    def url(self):
        return "fake://"


class NotifbusTarget(OsloTarget):
    def __init__(self, spec, delivery, backend="kafka"):
        super().__init__(spec)
        self.delivery = delivery
        self.backend = backend
        self._spool = (tempfile.mkdtemp(prefix="notifbus-bench-spool-")
                       if delivery == "buffered" else None)

    def query(self, listener=False):
        spec = self.spec
        query = {"delivery": self.delivery,
                 "num_partitions": spec["partitions"], "acks": spec["acks"],
                 "linger_ms": spec["linger_ms"],
                 "broker_quirks": spec.get("broker_quirks", "none")}
        if spec.get("max_batch_records"):
            query["max_batch_records"] = spec["max_batch_records"]
        if spec.get("session_timeout_ms"):  # fast joins, on our own broker
            query["session_timeout_ms"] = spec["session_timeout_ms"]
            query["heartbeat_interval_ms"] = max(
                spec["session_timeout_ms"] // 10, 1)
        if self.backend == "rdkafka":  # librdkafka lingers too
            query["producer_linger_ms"] = spec["linger_ms"]
        if self._spool:
            query["spool_dir"] = self._spool
        if listener:
            query["assign_timeout_ms"] = int(spec["consume_wait_s"] * 1000)
        return query

    def url(self, listener=False):
        return (f"notifbus+{self.backend}://{self.spec['bootstrap']}/?" +
                urllib.parse.urlencode(self.query(listener)))

    def listener_transport(self):
        import oslo_messaging

        return oslo_messaging.get_notification_transport(
            self.new_conf(), url=self.url(listener=True))

    def finish(self):
        from notifbus.oslo_driver import counters

        while True:
            totals = counters(self.transport)
            if totals["acked"] + totals["failed"] >= totals["sent"]:
                return
            time.sleep(0.001)

    def failures(self):
        count, first = super().failures()
        if self.transport is not None:
            from notifbus.oslo_driver import counters

            count = max(count, counters(self.transport)["failed"])
        return count, first

    def close(self):
        super().close()
        if self._spool:
            for name in os.listdir(self._spool):
                os.unlink(os.path.join(self._spool, name))
            os.rmdir(self._spool)
            self._spool = None


class OsloKafkaTarget(OsloTarget):
    """oslo's builtin driver: ``finish`` flushes the producer by cleaning
    up the transport, the only public way to flush it."""

    def url(self):
        return f"kafka://{self.spec['bootstrap']}/"

    def config(self):
        options = {"producer_batch_timeout":
                   self.spec["linger_ms"] / 1000.0}
        if self.spec.get("max_batch_records"):
            options["producer_batch_size"] = self.spec["max_batch_records"]
        return {"oslo_messaging_kafka": options}

    def listener_transport(self):
        return self.new_transport()

    def warm_up(self):
        # a send returns before the client is even connected: give it the
        # time to connect, without closing it
        self.send(-1)
        time.sleep(1.0)

    def finish(self):
        transport, self.transport = self.transport, None
        transport.cleanup()


class OsloRabbitTarget(OsloTarget):
    def url(self):
        return self.spec["rabbit_url"]

    def listener_transport(self):
        return self.new_transport()

    def batch_pool(self):
        return f"{self.topic}-batch"

    def prepare(self):
        parsed = urllib.parse.urlsplit(self.url())
        check_reachable(parsed.hostname or "127.0.0.1", parsed.port or 5672,
                        "RabbitMQ")
        # the batch listener reads a queue of its own (its pool), which
        # must exist before publishing to receive the notifications; the
        # plain listener reads the topic's queue, which the notifier
        # declares itself
        from notifbus.bench import listeners

        transport = self.new_transport()
        try:
            listeners.declare_pool(transport, self.topic, self.batch_pool())
        finally:
            transport.cleanup()

    def remove(self):
        import kombu

        parsed = urllib.parse.urlsplit(self.url())
        vhost = urllib.parse.unquote(parsed.path[1:]) or "/"
        with kombu.Connection(hostname=parsed.hostname or "127.0.0.1",
                              port=parsed.port or 5672,
                              userid=urllib.parse.unquote(
                                  parsed.username or "guest"),
                              password=urllib.parse.unquote(
                                  parsed.password or "guest"),
                              virtual_host=vhost,
                              connect_timeout=5) as conn:
            channel = conn.channel()
            for queue in (self.wire_topic, self.batch_pool()):
                channel.queue_delete(queue)


# -- raw clients -----------------------------------------------------------


class KafkaPythonTarget(Target):
    def __init__(self, spec, wait):
        super().__init__(spec)
        self.wait = wait
        self.value = encoded_notification(spec["size"])
        self.producer = None

    def settings(self):
        return {"bootstrap_servers": self.spec["bootstrap"],
                "acks": -1 if self.spec["acks"] == "all" else 1,
                "linger_ms": self.spec["linger_ms"],
                "client_id": "notifbus-bench"}

    def describe(self):
        return {"client": "kafka-python", "config": self.settings(),
                "wire_bytes": len(self.value)}

    def open(self):
        import kafka

        self.producer = kafka.KafkaProducer(**self.settings())

    def send(self, seq):
        future = self.producer.send(self.wire_topic, self.value)
        if self.wait:
            future.get(timeout=30)

    def finish(self):
        self.producer.flush(timeout=60)

    def close(self):
        if self.producer is not None:
            self.producer.close(timeout=5)
            self.producer = None


class ConfluentTarget(Target):
    def __init__(self, spec, wait):
        super().__init__(spec)
        self.wait = wait
        self.value = encoded_notification(spec["size"])
        self.producer = None
        self._errors = []

    def settings(self):
        config = {"bootstrap.servers": self.spec["bootstrap"],
                  "acks": self.spec["acks"],
                  "linger.ms": self.spec["linger_ms"],
                  "client.id": "notifbus-bench"}
        if self.spec.get("max_batch_records"):
            config["batch.num.messages"] = self.spec["max_batch_records"]
        return config

    def describe(self):
        return {"client": "confluent-kafka", "config": self.settings(),
                "wire_bytes": len(self.value)}

    def open(self):
        import confluent_kafka

        self.producer = confluent_kafka.Producer(self.settings())

    def _delivered(self, error, message):
        if error is not None:
            self._errors.append(str(error))

    def send(self, seq):
        if self.wait:
            self._send_and_wait()
            return
        while True:
            try:
                self.producer.produce(self.wire_topic, self.value,
                                      on_delivery=self._delivered)
                break
            except BufferError:  # the client's queue is full
                self.producer.poll(0.01)
        self.producer.poll(0)

    def _send_and_wait(self):
        done = threading.Event()
        outcome = []

        def delivered(error, message):
            outcome.append(error)
            done.set()

        self.producer.produce(self.wire_topic, self.value,
                              on_delivery=delivered)
        deadline = time.monotonic() + 30
        while not done.is_set():
            self.producer.poll(0.01)
            if time.monotonic() > deadline:
                raise TimeoutError("no delivery report within 30 s")
        if outcome[0] is not None:
            raise RuntimeError(f"delivery failed: {outcome[0]}")

    def finish(self):
        left = self.producer.flush(60)
        if left:
            raise TimeoutError(f"{left} messages not delivered within 60 s")

    def failures(self):
        return len(self._errors), (self._errors[0] if self._errors else None)

    def close(self):
        if self.producer is not None:
            self.producer.flush(5)
            self.producer = None


def make(spec):
    """The :class:`Target` of the row described by ``spec``."""
    kind = spec["row"]["kind"]
    factories = {
        "noop": lambda: NoopTarget(spec),
        "oslo-kafka": lambda: OsloKafkaTarget(spec),
        "oslo-rabbit": lambda: OsloRabbitTarget(spec),
        "notifbus-confirmed": lambda: NotifbusTarget(spec, "confirmed"),
        "notifbus-buffered": lambda: NotifbusTarget(spec, "buffered"),
        "notifbus-rdkafka-confirmed": lambda: NotifbusTarget(
            spec, "confirmed", backend="rdkafka"),
        "notifbus-rdkafka-buffered": lambda: NotifbusTarget(
            spec, "buffered", backend="rdkafka"),
        "kafka-python-ack": lambda: KafkaPythonTarget(spec, wait=True),
        "kafka-python-buffered": lambda: KafkaPythonTarget(spec, wait=False),
        "confluent-ack": lambda: ConfluentTarget(spec, wait=True),
        "confluent-buffered": lambda: ConfluentTarget(spec, wait=False),
    }
    return factories[kind]()


def hide_password(url):
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url
