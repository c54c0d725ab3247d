"""Consumer-group assignors of the kafka backend.

:class:`RoundRobinAssignor` is Kafka's round robin assignor (protocol
``roundrobin``), which the kafka backend's listeners use with Kafka's range
assignor: kafka-python 3.0's own round robin assignor fails with a
``KeyError`` when members subscribe to different topics (it skips a member
by its ``(group_instance_id, member_id)`` pair instead of its id), as the
listeners of oslo services always do.

:class:`PartitionCountAssignor` does not depend on the leader's metadata,
for brokers that need it (``BrokerQuirks.leader_watches_own_topics``).

Kafka's client-side assignors (range, round robin) take partition counts
from the group leader's metadata. When the members of a group subscribe to
different topics, as the listeners of a service without a pool do, the
leader may have no metadata for another member's topics yet; those topics
are then left unassigned until the leader's metadata is refreshed, minutes
later by default.

Here each member announces the partition counts of its topics in its
subscription's user data, and the leader assigns every topic from the
largest count it knows (its own metadata or the members'). Partitions are
dealt round robin, topic after topic, each to the next member subscribed to
its topic, carrying on where the previous topic stopped: members with the
same subscription end up within one partition of each other, and small
topics spread too.
"""

import json
import logging

from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

LOG = logging.getLogger(__name__)


def plan(subscriptions, counts):
    """Pure assignment: ``{member: {topic: [partitions]}}``.

    :param subscriptions: ``{member_id: set of topics}``.
    :param counts: ``{topic: partition count}``.
    """
    assignment = {member: {} for member in subscriptions}
    members = sorted(subscriptions)
    cursor = 0
    for topic in sorted(counts):
        for partition in range(counts[topic]):
            for step in range(len(members)):
                member = members[(cursor + step) % len(members)]
                if topic in subscriptions[member]:
                    assignment[member].setdefault(topic, []).append(
                        partition)
                    cursor = (cursor + step + 1) % len(members)
                    break
    return assignment


class RoundRobinAssignor(AbstractPartitionAssignor):
    """Kafka's round robin assignor (``roundrobin``, as the Java client's
    ``RoundRobinAssignor`` and librdkafka's): every partition of the
    group's topics, in order, to the next member (by member id) subscribed
    to its topic. Partition counts come from the leader's metadata."""

    name = "roundrobin"
    version = 0

    @classmethod
    def metadata(cls, topics):
        return ConsumerProtocolSubscription(cls.version, sorted(topics), b"")

    @classmethod
    def assign(cls, cluster, members):
        subscriptions = {m.member_id: set(m.metadata.topics)
                         for m in members}
        counts = {}
        for topic in set().union(*subscriptions.values()):
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                counts[topic] = len(partitions)
            else:
                LOG.warning("notifbus: no metadata for topic %s; it is not "
                            "assigned in this generation", topic)
        return {member: ConsumerProtocolAssignment(
                    cls.version, sorted(topics.items()), b"")
                for member, topics in plan(subscriptions, counts).items()}

    @classmethod
    def on_assignment(cls, assignment, generation=None):
        pass


class PartitionCountAssignor(AbstractPartitionAssignor):
    """Round robin per topic, from partition counts the members announce.

    :param counts: a ``dict`` of ``{topic: partition count}`` that the
        backend fills as it creates or describes topics; read at each join.
    """

    name = "notifbus"
    version = 0

    def __init__(self, counts):
        self._counts = counts

    def metadata(self, topics):
        known = {t: self._counts[t] for t in topics if t in self._counts}
        return ConsumerProtocolSubscription(
            self.version, sorted(topics), json.dumps(known).encode())

    def assign(self, cluster, members):
        subscriptions, counts = {}, {}
        for member in members:
            subscriptions[member.member_id] = set(member.metadata.topics)
            for topic, count in _announced(member).items():
                counts[topic] = max(counts.get(topic, 0), int(count))
        for topic in set().union(*subscriptions.values()):
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                counts[topic] = max(counts.get(topic, 0), len(partitions))
            elif topic not in counts:
                LOG.warning("notifbus: no partition count for topic %s; "
                            "it is not assigned in this generation", topic)
        result = plan(subscriptions, counts)
        return {member: ConsumerProtocolAssignment(
                    self.version, sorted(topics.items()), b"")
                for member, topics in result.items()}

    def on_assignment(self, assignment, generation=None):
        pass


def _announced(member):
    try:
        counts = json.loads(member.metadata.user_data or b"{}")
    except ValueError:
        return {}
    return counts if isinstance(counts, dict) else {}
