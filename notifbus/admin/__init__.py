"""Inspection and administration of a broker: topics, consumer groups,
lag and health, for ``notifbus topics``, ``notifbus groups`` and
``notifbus check``.

One module per backend implements :class:`Admin` over its client's admin
API (kafka-python's ``KafkaAdminClient``, confluent-kafka's
``AdminClient``, nats-py's JetStream manager); :func:`for_backend` loads
the one of a transport's backend. The command line only formats what
these return.

Offsets are those of the backend: Kafka's partition offsets, or NATS
JetStream's stream sequences (see :mod:`notifbus.backends.nats.admin` for how
streams and durable consumers map to topics and groups).
"""

import abc
import dataclasses
import importlib
from typing import List, Optional

from notifbus import errors

#: backend name -> module of its Admin
MODULES = {
    "kafka": "notifbus.backends.kafka.admin",
    "rdkafka": "notifbus.backends.rdkafka.admin",
    "nats": "notifbus.backends.nats.admin",
}


class NotSupported(errors.ConfigError):
    """The backend has no administration support (exit status 2)."""


@dataclasses.dataclass
class PartitionInfo:
    """One partition of a topic.

    ``end_offset`` is the offset the next record will get; ``leader``,
    ``replicas`` and ``isr`` are broker ids (Kafka only; ``None`` and
    empty elsewhere).
    """

    partition: int
    end_offset: int
    leader: Optional[int] = None
    replicas: List[int] = dataclasses.field(default_factory=list)
    isr: List[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TopicInfo:
    """A topic (NATS: a stream) and its partitions (NATS: subjects).

    ``name`` is notifbus's topic name; ``native`` the broker's name of it
    (the NATS stream) when it differs, else ``None``.
    """

    name: str
    partitions: List[PartitionInfo]
    replication_factor: Optional[int] = None
    native: Optional[str] = None

    @property
    def end_offsets(self):
        """``{partition: end offset}``."""
        return {p.partition: p.end_offset for p in self.partitions}


@dataclasses.dataclass
class Member:
    """A member of a consumer group and the partitions it reads
    (``[(topic, partition), ...]``)."""

    member_id: str
    client_id: str = ""
    host: str = ""
    assignment: List[tuple] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class GroupPosition:
    """A group's position in one partition of a topic.

    ``committed`` is the next offset the group reads (``None``: nothing
    committed yet); ``end_offset`` the partition's end; ``lag`` the
    records between them, ``end_offset - committed`` on Kafka (all of the
    partition when nothing is committed). ``partition`` is ``None`` where
    the broker keeps one position per topic (NATS). ``member`` is the
    member id reading it, if any.
    """

    topic: str
    partition: Optional[int]
    committed: Optional[int]
    end_offset: int
    lag: int
    member: Optional[str] = None


@dataclasses.dataclass
class GroupInfo:
    """A consumer group (a listener pool; NATS: its durable consumers).

    ``state`` is Kafka's group state (``Stable``, ``Empty``,
    ``PreparingRebalance``, ...; NATS: ``Active`` or ``Idle``);
    ``members`` is ``None`` where the broker does not name them (NATS).
    """

    #: properties added to the JSON output
    JSON_PROPERTIES = ("total_lag",)

    name: str
    state: str
    members: Optional[List[Member]]
    positions: List[GroupPosition]

    @property
    def total_lag(self):
        """Records of the group's topics it has not committed yet."""
        return sum(position.lag for position in self.positions)


@dataclasses.dataclass
class GroupSummary:
    """One line of a group list: its name, state and member count
    (``None`` where the broker does not say)."""

    name: str
    state: str
    members: Optional[int] = None


def lag(committed, end_offset, start_offset=0):
    """Records from ``committed`` (or ``start_offset`` when ``None``:
    nothing committed) to ``end_offset``, never below 0."""
    position = start_offset if committed is None else committed
    return max(end_offset - position, 0)


def group_positions(committed, owner, end_offsets):
    """The :class:`GroupPosition` of every partition a Kafka group has
    committed or owns, sorted by topic and partition.

    :param committed: ``{(topic, partition): offset}``, the group's
        committed offsets; a negative offset (Kafka's -1, librdkafka's
        ``OFFSET_INVALID``) counts as none.
    :param owner: ``{(topic, partition): member id}`` of the partitions
        assigned to a member.
    :param end_offsets: callable ``topic -> {partition: end offset}``,
        called once per topic.
    """
    partitions = set(owner) | set(committed)
    ends = {topic: end_offsets(topic)
            for topic in sorted({t for t, _ in partitions})}
    positions = []
    for topic, partition in sorted(partitions):
        done = committed.get((topic, partition))
        if done is not None and done < 0:
            done = None
        end = ends[topic].get(partition, 0)
        positions.append(GroupPosition(
            topic=topic, partition=partition, committed=done,
            end_offset=end, lag=lag(done, end),
            member=owner.get((topic, partition))))
    return positions


class Admin(abc.ABC):
    """Administration of the broker a backend instance talks to.

    It uses the backend's connection settings (hosts, SASL, TLS) and is
    closed with :meth:`close`; ``timeout`` is in seconds. Every method
    raises :class:`~notifbus.errors.DeliveryError` when the broker does
    not answer or refuses, naming what failed.
    """

    def __init__(self, backend):
        self.backend = backend

    @abc.abstractmethod
    def cluster(self, timeout) -> str:
        """Read the cluster's metadata; return a short description of it
        (``"1 broker, cluster id ..."``)."""

    @abc.abstractmethod
    def list_topics(self, timeout) -> List[TopicInfo]:
        """Every topic, sorted by name (Kafka: but internal ones)."""

    @abc.abstractmethod
    def describe_topic(self, topic, timeout) -> TopicInfo:
        """One topic.

        :raises notifbus.errors.NotifbusError: it does not exist.
        """

    @abc.abstractmethod
    def create_topic(self, topic, partitions, replication_factor,
                     timeout) -> TopicInfo:
        """Create ``topic``; ``None`` counts take the backend's options.

        :raises notifbus.errors.NotifbusError: it exists already.
        """

    @abc.abstractmethod
    def delete_topic(self, topic, timeout) -> None:
        """Delete ``topic`` and its records.

        :raises notifbus.errors.NotifbusError: it does not exist.
        """

    @abc.abstractmethod
    def list_groups(self, timeout) -> List[GroupSummary]:
        """Every consumer group, sorted by name."""

    @abc.abstractmethod
    def describe_group(self, group, timeout) -> GroupInfo:
        """Members, assignment, committed offsets and lag of ``group``.

        :raises notifbus.errors.NotifbusError: the group is unknown.
        """

    def close(self, timeout=5.0):
        """Release what this object opened; the backend is the caller's.
        The default opened nothing."""
        return None


def for_backend(name, backend):
    """The :class:`Admin` of backend ``name`` over ``backend``.

    :raises NotSupported: the backend has no administration support.
    """
    module = MODULES.get(name)
    if module is None:
        raise NotSupported(
            f"not supported by backend {name!r}: topics, groups and check "
            f"work with the {', '.join(sorted(MODULES))} backends")
    return importlib.import_module(module).ADMIN(backend)


def not_found(what, name, where):
    """The error of a topic or group that does not exist."""
    return errors.NotifbusError(f"{what} {name!r} does not exist at {where}")
