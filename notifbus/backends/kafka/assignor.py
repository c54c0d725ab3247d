"""Consumer-group assignors of the kafka backend.

:class:`RoundRobinAssignor` is Kafka's round robin assignor (protocol
``roundrobin``), which the kafka backend's listeners use with Kafka's range
assignor: kafka-python 3.0's own round robin assignor fails with a
``KeyError`` when members subscribe to different topics (it skips a member
by its ``(group_instance_id, member_id)`` pair instead of its id), as the
listeners of oslo services always do.

Kafka's client-side assignors (range, round robin) take partition counts
from the group leader's metadata. When the members of a group subscribe to
different topics, as the listeners of a service without a pool do, the
leader may have no metadata for another member's topics yet; those topics
are then left unassigned until the leader's metadata is refreshed, and the
group rebalances a second time.

Here each member announces the partition counts of its topics in its
subscription's user data (which Kafka's other clients ignore), and the
leader assigns every topic from the largest count it knows (its own
metadata or the members'). Partitions are dealt round robin, topic after
topic, each to the next member subscribed to its topic, carrying on where
the previous topic stopped: members with the same subscription end up
within one partition of each other, and small topics spread too.
:func:`assume_assigned_counts` makes kafka-python's leader compare later
metadata with the counts it assigned from, so that the metadata of the new
topics, once it arrives, does not start the second rebalance.

:class:`PartitionCountAssignor` is the same under a protocol name of its
own, for brokers that need it (``BrokerQuirks.leader_watches_own_topics``).
"""

import json
import logging

from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

from notifbus.backends.kafka import internals
from notifbus.policy.assignment import plan

LOG = logging.getLogger(__name__)


class RoundRobinAssignor(AbstractPartitionAssignor):
    """Kafka's round robin assignor (``roundrobin``, as the Java client's
    ``RoundRobinAssignor`` and librdkafka's): every partition of the
    group's topics, in order, to the next member (by member id) subscribed
    to its topic.

    :param counts: a ``dict`` of ``{topic: partition count}`` that the
        backend fills as it creates or describes topics, read at each join
        and announced to the leader; ``None`` announces nothing.

    ``assigned_counts`` holds the counts of the last assignment this member
    made as leader: ``{topic: partition count}`` (topics without a known
    count left out), or ``None`` before its first.
    """

    name = "roundrobin"
    version = 0

    def __init__(self, counts=None):
        self._counts = {} if counts is None else counts
        self.assigned_counts = None

    def metadata(self, topics):
        known = {t: self._counts[t] for t in topics if t in self._counts}
        return ConsumerProtocolSubscription(
            self.version, sorted(topics),
            json.dumps(known).encode() if known else b"")

    def assign(self, cluster, members):
        subscriptions, counts = {}, {}
        for member in members:
            subscriptions[member.member_id] = set(member.metadata.topics)
            for topic, count in _announced(member).items():
                counts[topic] = max(counts.get(topic, 0), count)
        for topic in set().union(*subscriptions.values()):
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                counts[topic] = max(counts.get(topic, 0), len(partitions))
            elif topic not in counts:
                LOG.warning("notifbus: no partition count for topic %s; "
                            "it is not assigned in this generation", topic)
        self.assigned_counts = dict(counts)
        return {member: ConsumerProtocolAssignment(
                    self.version, sorted(topics.items()), b"")
                for member, topics in plan(subscriptions, counts).items()}

    def on_assignment(self, assignment, generation=None):
        pass


class PartitionCountAssignor(RoundRobinAssignor):
    """:class:`RoundRobinAssignor` under the protocol name ``notifbus``
    (``BrokerQuirks.leader_watches_own_topics``)."""

    name = "notifbus"


def assume_assigned_counts(consumer, assignor):
    """Make a kafka-python group leader take the partition counts it
    assigned from as its metadata, until its metadata says otherwise.

    kafka-python's leader keeps a snapshot of the metadata of the group's
    topics at each assignment and rejoins (a whole rebalance of the group
    on Apache Kafka) when a metadata update changes it. A snapshot taken
    before the metadata of a new member's topics arrived always changes:
    every listener joining with topics of its own made the group rebalance
    twice, and moved partitions just after the new listener started. With
    this, the snapshot holds the counts the assignment used (announced by
    the members, see :class:`RoundRobinAssignor`): only a count that the
    metadata contradicts, such as partitions added to a topic, starts a
    rebalance, as in Kafka's Java client. Does nothing with a kafka-python
    that lacks the hooks used.
    """
    def wrap(perform, coordinator):
        def perform_assignment(leader_id, protocol_name, members):
            result = perform(leader_id, protocol_name, members)
            counts = assignor.assigned_counts
            if protocol_name == assignor.name and counts is not None:
                internals.set_snapshots(coordinator, {
                    topic: set(range(counts[topic])) if topic in counts
                    else set()
                    for topic in internals.group_subscription(coordinator)})
            return result
        return perform_assignment

    internals.wrap_perform_assignment(consumer, wrap)


def _announced(member):
    """The valid ``{topic: count}`` a member announced; ``{}`` for user
    data of another client."""
    try:
        counts = json.loads(member.metadata.user_data or b"{}")
    except ValueError:
        return {}
    if not isinstance(counts, dict):
        return {}
    return {topic: count for topic, count in counts.items()
            if isinstance(count, int) and count > 0}
