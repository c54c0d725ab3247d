"""The options both Kafka backends declare, and those that depend on
each other.

:func:`shared_opts` declares, once, what the ``[notifbus_kafka]`` and
``[notifbus_rdkafka]`` groups have in common (producer acknowledgements
and compression, timeouts, the consumer group, the topics notifbus
creates, security, broker quirks); each backend's ``options`` module adds
its own client's options. Where the two clients differ for a reason (a
client's limit), the help says which and why.

Both Kafka backends declare the consumer group's
``session_timeout_ms`` and ``heartbeat_interval_ms``. The heartbeat
follows the session timeout unless it is set (:func:`heartbeat_opt`,
:func:`heartbeat_interval_ms`), so that setting the session timeout alone
works: a third of it, at most :data:`HEARTBEAT_MAX_MS`.

Options that constrain each other are checked when a transport is created,
before anything connects (:func:`check`, with each backend's :class:`Below`
rules): settings that the client library would refuse later, when a
listener starts, or that would work badly, are refused with a
:class:`~notifbus.errors.ConfigError` naming both options and the fix.
"""

import dataclasses
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

from oslo_config import cfg

from notifbus import errors
from notifbus.backends.kafka_common import quirks
from notifbus.option_values import OptionValues

#: Longest heartbeat interval derived from ``session_timeout_ms``, in
#: milliseconds. A member learns of a rebalance at its next heartbeat, so
#: a listener that joins a pool waits up to one interval for the others:
#: Kafka's clients derive no heartbeat and default to 3000 ms, notifbus
#: keeps the 1000 ms of its former default.
HEARTBEAT_MAX_MS = 1000


def shared_opts(request_timeout_min: int = 1,
                request_timeout_max: Optional[int] = None) -> List[cfg.Opt]:
    """The options of both Kafka backends' groups, new objects at each
    call: a backend's ``list_opts()`` adds its own client's.

    ``request_timeout_min`` and ``request_timeout_max`` bound
    ``request_timeout_ms`` as the backend's client library does.
    """
    return [
        cfg.StrOpt("acks", default="all", choices=["all", "1"],
                   help="Acknowledgement a send waits for: 'all' in-sync "
                        "replicas, or '1', the partition leader only."),
        cfg.StrOpt("compression_type", default="none",
                   choices=["none", "gzip", "snappy", "lz4", "zstd"],
                   help="Compression of record batches."),
        enable_idempotence_opt(),
        cfg.IntOpt("request_timeout_ms", default=30000,
                   min=request_timeout_min, max=request_timeout_max,
                   help="How long the client waits for a broker's answer. "
                        "Must be higher than fetch_max_wait_ms, and at "
                        "most the time a record may take to be delivered "
                        "(kafka: delivery_timeout_ms; rdkafka: "
                        "message_timeout_ms - producer_linger_ms). The "
                        "clients bound it differently: kafka-python "
                        "refuses 540000 and more (its "
                        "connections_max_idle_ms), librdkafka takes 10 to "
                        "300000 (its socket.timeout.ms)."),
        cfg.IntOpt("bootstrap_timeout_ms", default=5000, min=1,
                   help="How long connecting to the brokers may take, and "
                        "a send may wait while none can be reached, before "
                        "it fails with a clear error."),
        *provisioning_opts(),
        session_timeout_opt(),
        heartbeat_opt(),
        cfg.IntOpt("max_poll_interval_ms", default=300000, min=1,
                   help="Longest time between two polls before the "
                        "consumer leaves the group and its partitions are "
                        "reassigned. rdkafka: at least session_timeout_ms, "
                        "as librdkafka requires."),
        cfg.IntOpt("max_poll_records", default=500, min=1,
                   help="Most records returned by one poll."),
        cfg.IntOpt("fetch_max_wait_ms", default=100, min=0,
                   help="How long the broker may hold a fetch waiting for "
                        "data; lower means lower latency. Must be lower "
                        "than request_timeout_ms."),
        cfg.IntOpt("fetch_max_bytes", default=52428800, min=1,
                   help="Most bytes returned by one fetch. rdkafka: at "
                        "least message_max_bytes, as librdkafka "
                        "requires."),
        cfg.StrOpt("auto_offset_reset", default="earliest",
                   choices=["earliest", "latest"],
                   help="Where a consumer group with no committed offset "
                        "starts: 'earliest' delivers what was stored "
                        "before the group first subscribed (store and "
                        "forward)."),
        cfg.IntOpt("commit_timeout_ms", default=5000, min=1,
                   help="How long a commit waits for the broker before it "
                        "fails; the bus commits again later."),
        cfg.StrOpt("client_id", default="notifbus",
                   help="Client id sent to the brokers."),
        *security_opts(),
        *quirks.quirks_opts(),
    ]


def security_opts():
    """The TLS and SASL options of a Kafka backend's group, new objects
    at each call; :mod:`notifbus.backends.tls_config` checks them."""
    return [
        cfg.StrOpt("security_protocol", default="PLAINTEXT",
                   choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT",
                            "SASL_SSL"],
                   help="Protocol used to talk to the brokers."),
        cfg.StrOpt("sasl_mechanism",
                   choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
                   help="SASL mechanism, with a SASL_* security_protocol "
                        "only; PLAIN when unset."),
        cfg.StrOpt("sasl_username",
                   help="SASL user name; the transport URL's user name "
                        "wins."),
        cfg.StrOpt("sasl_password", secret=True,
                   help="SASL password; the transport URL's password "
                        "wins."),
        cfg.StrOpt("ssl_cafile",
                   help="CA bundle that verifies the brokers' "
                        "certificates; the system's CAs when unset."),
        cfg.StrOpt("ssl_certfile", help="Client certificate (mutual TLS)."),
        cfg.StrOpt("ssl_keyfile", help="Client private key (mutual TLS)."),
        cfg.StrOpt("ssl_password", secret=True,
                   help="Password of the client private key."),
        cfg.BoolOpt("ssl_check_hostname", default=True,
                    help="Check that the broker certificate matches its "
                         "host name."),
    ]


def session_timeout_opt():
    """The ``session_timeout_ms`` option of a Kafka backend's group, a new
    object at each call."""
    return cfg.IntOpt(
        "session_timeout_ms", default=10000, min=1,
        help="Consumer group session timeout. A consumer that sends no "
             "heartbeat for this long leaves the group. Apache Kafka "
             "accepts 6000 to 1800000 by default (its "
             "group.min.session.timeout.ms and "
             "group.max.session.timeout.ms). heartbeat_interval_ms follows "
             "it unless set. Joining a group takes about half of it on some "
             "brokers (see doc/source/brokers.rst): keep it low where "
             "listeners must start fast.")


def provisioning_opts():
    """The options of a Kafka backend's group on the topics notifbus
    creates, new objects at each call; read them with
    :func:`new_topic` and :func:`missing_topic`."""
    return [
        cfg.BoolOpt(
            "create_topics", default=True,
            help="Create a topic that does not exist when a notifier "
                 "first sends to it or a listener first reads it. False "
                 "for clusters where topics are made by the operator (or "
                 "clients may not create them): a missing topic then "
                 "fails the send, or the listener's start, at once with "
                 "an error naming it."),
        cfg.IntOpt(
            "replication_factor", default=-1, min=-1,
            help="Replication factor of topics that notifbus creates; -1 "
                 "takes the broker's default.replication.factor (Kafka "
                 "2.4 and later, KIP-464). Production clusters: 3, with "
                 "min.insync.replicas=2 in topic_config or on the "
                 "brokers."),
        cfg.DictOpt(
            "topic_config", default={},
            help="Topic configs of topics that notifbus creates, as "
                 "name:value pairs, for example "
                 "retention.ms:604800000,min.insync.replicas:2 (Kafka's "
                 "topic-level configs). Topics that exist keep theirs."),
    ]


def new_topic(opts: OptionValues) -> Tuple[int, dict]:
    """``(replication_factor, {config: value})`` of a topic to create,
    from a Kafka backend's option values."""
    configs = {str(name): str(value)
               for name, value in (opts.topic_config or {}).items()}
    return opts.replication_factor, configs


def missing_topic(topic, where):
    """The error of a topic that does not exist while ``create_topics`` is
    false: not retriable, naming the fix."""
    return errors.DeliveryError(
        f"topic {topic!r} does not exist at {where}, and create_topics is "
        f"false: create it (notifbus topics create {topic} --partitions N "
        f"--replication-factor R) or set create_topics = true",
        retriable=False)


def enable_idempotence_opt():
    """The ``enable_idempotence`` option of a Kafka backend's group, a new
    object at each call; read it with :func:`idempotent`."""
    return cfg.BoolOpt(
        "enable_idempotence", default=True,
        help="Idempotent producer (KIP-98): record batches carry a "
             "producer id and sequence numbers, so a batch sent again "
             "after its answer was lost (a leader that died, a connection "
             "reset) is stored once, and records keep their order across "
             "retries. Only with acks=all, as in Kafka's own producer. "
             "Needs a broker that gives producer ids (Kafka 0.11 and "
             "later, IDEMPOTENT_WRITE allowed where an authorizer runs); "
             "where it gives none, batches go without, and the log says "
             "so once. False: a batch sent again may be stored twice (at "
             "least once).")


def idempotent(opts, quirks, log):
    """Whether the producer is idempotent: ``enable_idempotence`` with
    ``acks=all`` (Kafka's producer refuses idempotence with other acks),
    unless the broker's quirks forbid it
    (:meth:`~notifbus.backends.kafka_common.quirks.BrokerQuirks.idempotence`)."""
    wanted = opts.enable_idempotence and opts.acks == "all"
    return quirks.idempotence(wanted, log)


def heartbeat_opt():
    """The ``heartbeat_interval_ms`` option of a Kafka backend's group, a
    new object at each call."""
    return cfg.IntOpt(
        "heartbeat_interval_ms", min=1,
        help="Interval between a listener's heartbeats to its consumer "
             "group. A member learns of a rebalance (a listener joining or "
             "leaving its pool) at its next heartbeat. Unset (the "
             "default): a third of session_timeout_ms, at most "
             f"{HEARTBEAT_MAX_MS}. Must be lower than session_timeout_ms; "
             "Kafka recommends at most a third of it.")


def derived_heartbeat_ms(session_timeout_ms):
    """The heartbeat interval for ``session_timeout_ms`` when none is set:
    a third of it, at most :data:`HEARTBEAT_MAX_MS`, at least 1."""
    return max(1, min(session_timeout_ms // 3, HEARTBEAT_MAX_MS))


def heartbeat_interval_ms(values: Mapping[str, Any]) -> int:
    """``heartbeat_interval_ms`` of ``values`` (a Kafka backend's option
    values, by name), or the one derived from its ``session_timeout_ms``.
    """
    found = values["heartbeat_interval_ms"]
    if found is not None:
        return found
    return derived_heartbeat_ms(values["session_timeout_ms"])


@dataclasses.dataclass(frozen=True)
class Limit:
    """A fixed limit of a client library, in a :class:`Below` rule."""

    name: str
    value: int


@dataclasses.dataclass(frozen=True)
class Below:
    """The sum of the options ``low`` must be lower than ``high`` (an
    option or a :class:`Limit`), or at most ``high`` with ``or_equal``;
    ``why`` says what goes wrong otherwise."""

    low: Tuple[str, ...]
    high: Union[str, Limit]
    why: str
    or_equal: bool = False

    def problem(self, values, derived=()):
        """The error message when ``values`` break the rule, else
        ``None``; ``derived`` names the options whose value was derived."""
        low = sum(values[name] for name in self.low)
        if isinstance(self.high, Limit):
            high, high_name = self.high.value, self.high.name
        else:
            high, high_name = values[self.high], self.high
        if low < high or (self.or_equal and low == high):
            return None
        shown = " + ".join(
            f"{name} ({_number(values[name])}"
            + (", derived from session_timeout_ms" if name in derived
               else "") + ")"
            for name in self.low)
        relation = "at most" if self.or_equal else "lower than"
        if set(self.low) & set(derived):
            fix = f"raise {high_name}"
        else:
            fix = f"lower {' or '.join(self.low)}"
            if not isinstance(self.high, Limit):
                fix += f", or raise {high_name}"
            if "heartbeat_interval_ms" in self.low:
                fix += (", or leave heartbeat_interval_ms unset: it then "
                        "follows session_timeout_ms")
        return (f"{shown} must be {relation} {high_name} ({_number(high)}):"
                f" {self.why}; {fix}")


def _number(value):
    """``10``, ``2.5``: an option's value as it would be written."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return str(int(value))


#: The rule of both backends: a heartbeat within the session.
HEARTBEAT_WITHIN_SESSION = Below(
    ("heartbeat_interval_ms",), "session_timeout_ms",
    "the group would drop a listener between two of its heartbeats")


def check(backend: str, opts: OptionValues,
          rules: Iterable["Below"]) -> None:
    """Refuse option values ``opts`` of backend ``backend`` that break
    one of ``rules``; the heartbeat is derived when unset.

    :raises ConfigError: naming the options and the fix.
    """
    values = dict(opts)
    if values["replication_factor"] == 0:
        raise errors.ConfigError(
            f"notifbus+{backend}: replication_factor must be -1 (the "
            f"broker's default) or at least 1, not 0")
    derived = ()
    if values["heartbeat_interval_ms"] is None:
        values["heartbeat_interval_ms"] = heartbeat_interval_ms(values)
        derived = ("heartbeat_interval_ms",)
    for rule in rules:
        problem = rule.problem(values, derived)
        if problem:
            raise errors.ConfigError(f"notifbus+{backend}: {problem}")
