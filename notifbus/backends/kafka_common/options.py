"""Options of the Kafka backends that depend on each other.

Both Kafka backends (``kafka``, ``rdkafka``) declare the consumer group's
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
from typing import Tuple, Union

from oslo_config import cfg

from notifbus import errors

#: Longest heartbeat interval derived from ``session_timeout_ms``, in
#: milliseconds. A member learns of a rebalance at its next heartbeat, so
#: a listener that joins a pool waits up to one interval for the others:
#: Kafka's clients derive no heartbeat and default to 3000 ms, notifbus
#: keeps the 1000 ms of its former default.
HEARTBEAT_MAX_MS = 1000


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


def new_topic(options):
    """``(replication_factor, {config: value})`` of a topic to create."""
    factor = options.get("replication_factor", -1)
    configs = {str(name): str(value)
               for name, value in (options.get("topic_config") or {}).items()}
    return factor, configs


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


def idempotent(options, quirks, log):
    """Whether the producer is idempotent: ``enable_idempotence`` with
    ``acks=all`` (Kafka's producer refuses idempotence with other acks),
    unless the broker's quirks forbid it
    (:meth:`~notifbus.backends.kafka_common.quirks.BrokerQuirks.idempotence`)."""
    wanted = (options.get("enable_idempotence", True)
              and options.get("acks", "all") == "all")
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


def heartbeat_interval_ms(options, session_default=10000):
    """``heartbeat_interval_ms`` of ``options`` (a backend's option
    values), or the one derived from its ``session_timeout_ms``."""
    found = options.get("heartbeat_interval_ms")
    if found is not None:
        return found
    return derived_heartbeat_ms(options.get("session_timeout_ms",
                                            session_default))


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


def check(backend, declared, options, rules):
    """Refuse ``options`` of backend ``backend`` that break one of
    ``rules``; options missing from ``options`` take their default from
    the ``declared`` option list, and the heartbeat is derived when unset.

    :raises ConfigError: naming the options and the fix.
    """
    values = {opt.dest: opt.default for opt in declared}
    values.update(options)
    if values.get("replication_factor") == 0:
        raise errors.ConfigError(
            f"notifbus+{backend}: replication_factor must be -1 (the "
            f"broker's default) or at least 1, not 0")
    derived = ()
    if values.get("heartbeat_interval_ms") is None:
        values["heartbeat_interval_ms"] = heartbeat_interval_ms(values)
        derived = ("heartbeat_interval_ms",)
    for rule in rules:
        problem = rule.problem(values, derived)
        if problem:
            raise errors.ConfigError(f"notifbus+{backend}: {problem}")
