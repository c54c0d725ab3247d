"""Tests of the partition-count assignor used by the Kafka backend."""

import collections
import copy
import itertools
import json
import random

import pytest
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

from notifbus.backends.kafka.assignor import (
    PartitionCountAssignor,
    RoundRobinAssignor,
    plan,
)

Member = collections.namedtuple(
    "Member", ["member_id", "group_instance_id", "metadata"])


class FakeCluster:
    """The one method of kafka's ClusterMetadata that assignors call."""

    def __init__(self, partitions):
        self._partitions = partitions
        self.asked = []

    def partitions_for_topic(self, topic):
        self.asked.append(topic)
        count = self._partitions.get(topic)
        return None if count is None else set(range(count))


def member(member_id, assignor, topics):
    """A member as kafka's coordinator hands it to ``assign``: its
    subscription encoded by ``metadata`` then decoded."""
    encoded = assignor.metadata(set(topics)).encode()
    return Member(member_id, None, ConsumerProtocolSubscription.decode(
        encoded))


def owners(assignment):
    """``{(topic, partition): [members]}`` from a plan."""
    found = collections.defaultdict(list)
    for member_id, topics in assignment.items():
        for topic, partitions in topics.items():
            for partition in partitions:
                found[(topic, partition)].append(member_id)
    return found


def totals(assignment):
    return {m: sum(len(p) for p in topics.values())
            for m, topics in assignment.items()}


def check_complete(subscriptions, counts, assignment):
    """Each partition of each subscribed topic to exactly one of the members
    subscribed to it; nothing else."""
    assert set(assignment) == set(subscriptions)
    found = owners(assignment)
    subscribed = set().union(*subscriptions.values()) if subscriptions \
        else set()
    expected = {(t, p) for t in counts if t in subscribed
                for p in range(counts[t])}
    assert set(found) == expected
    for (topic, _), members in found.items():
        assert len(members) == 1
        assert topic in subscriptions[members[0]]


def test_single_topic_round_robin():
    subscriptions = {"m1": {"t"}, "m2": {"t"}, "m3": {"t"}}
    counts = {"t": 7}
    assignment = plan(subscriptions, counts)
    check_complete(subscriptions, counts, assignment)
    assert sorted(totals(assignment).values()) == [2, 2, 3]
    for topics in assignment.values():
        assert topics["t"] == sorted(topics["t"])


@pytest.mark.parametrize("members, counts", [
    (2, {"a": 3}),
    (3, {"a": 2, "b": 2}),
    (4, {"a": 2, "b": 2}),
    (4, {"info": 2, "error": 2, "warn": 2}),
    (3, {"a": 2, "b": 1}),
    (5, {"a": 1, "b": 1, "c": 1, "d": 1}),
    (3, {"a": 4, "b": 3, "c": 1, "d": 5}),
    (6, {"a": 8}),
])
def test_identical_subscriptions_balanced_within_one(members, counts):
    subscriptions = {f"m{i}": set(counts) for i in range(members)}
    assignment = plan(subscriptions, counts)
    check_complete(subscriptions, counts, assignment)
    load = totals(assignment).values()
    assert max(load) - min(load) <= 1
    # Each topic is spread within one too.
    for topic, count in counts.items():
        per_topic = [len(t.get(topic, [])) for t in assignment.values()]
        assert sum(per_topic) == count
        assert max(per_topic) - min(per_topic) <= 1


def test_random_subscriptions_complete_and_exclusive():
    rng = random.Random(1234)
    topics = [f"t{i}" for i in range(6)]
    for _ in range(200):
        counts = {t: rng.randint(1, 6) for t in topics}
        subscriptions = {
            f"m{i}": set(rng.sample(topics, rng.randint(1, len(topics))))
            for i in range(rng.randint(1, 6))}
        assignment = plan(subscriptions, counts)
        check_complete(subscriptions, counts, assignment)


def test_members_not_subscribed_get_none_of_a_topic():
    subscriptions = {"a": {"t1"}, "b": {"t2"}, "c": {"t1", "t2"}}
    counts = {"t1": 4, "t2": 3}
    assignment = plan(subscriptions, counts)
    check_complete(subscriptions, counts, assignment)
    assert "t2" not in assignment["a"]
    assert "t1" not in assignment["b"]
    # Shared fairly among the subscribers of each topic.
    assert sorted([len(assignment["a"]["t1"]),
                   len(assignment["c"].get("t1", []))]) == [2, 2]
    assert sorted([len(assignment["b"]["t2"]),
                   len(assignment["c"].get("t2", []))]) == [1, 2]


def test_topic_nobody_subscribes_is_left_out():
    assignment = plan({"a": {"t1"}}, {"t1": 1, "unused": 5})
    assert assignment == {"a": {"t1": [0]}}


def test_member_without_topics_gets_nothing():
    assignment = plan({"a": {"t"}, "idle": set()}, {"t": 3})
    assert assignment["idle"] == {}
    assert assignment["a"] == {"t": [0, 1, 2]}


def test_no_members():
    assert plan({}, {"t": 3}) == {}


def test_subscribed_topic_without_count_is_not_assigned():
    assignment = plan({"a": {"t1", "t2"}}, {"t1": 2})
    assert assignment == {"a": {"t1": [0, 1]}}


def test_deterministic_whatever_the_order():
    counts = {"t1": 3, "t2": 2, "t3": 5}
    subscriptions = {"m3": {"t1", "t3"}, "m1": {"t1", "t2"},
                     "m2": {"t2", "t3"}, "m4": {"t1", "t2", "t3"}}
    expected = plan(subscriptions, counts)
    for order in itertools.permutations(subscriptions):
        shuffled = {m: set(sorted(subscriptions[m], reverse=True))
                    for m in order}
        reordered_counts = dict(reversed(list(counts.items())))
        assert plan(shuffled, reordered_counts) == expected


def test_pure():
    subscriptions = {"a": {"t1", "t2"}, "b": {"t2"}}
    counts = {"t1": 2, "t2": 3}
    before = (copy.deepcopy(subscriptions), dict(counts))
    first = plan(subscriptions, counts)
    assert (subscriptions, counts) == before
    assert plan(subscriptions, counts) == first


def test_topics_rotate_starting_member():
    # One partition per topic: without rotation the first member would
    # get every topic.
    subscriptions = {m: {"t1", "t2", "t3", "t4"} for m in ("a", "b", "c")}
    counts = {"t1": 1, "t2": 1, "t3": 1, "t4": 1}
    assignment = plan(subscriptions, counts)
    first_owner = {topic: members[0] for (topic, _), members
                   in owners(assignment).items()}
    assert len({first_owner["t1"], first_owner["t2"],
                first_owner["t3"]}) == 3
    assert sorted(totals(assignment).values()) == [1, 1, 2]


# The kafka-python assignor around plan().


def test_metadata_announces_known_counts():
    counts = {"t1": 3, "t2": 5}
    assignor = PartitionCountAssignor(counts)
    subscription = assignor.metadata({"t2", "t1", "t3"})
    assert isinstance(subscription, ConsumerProtocolSubscription)
    assert subscription.version == assignor.version
    assert list(subscription.topics) == ["t1", "t2", "t3"]
    assert json.loads(subscription.user_data) == {"t1": 3, "t2": 5}
    # It reads the dict at each join: counts learnt later are announced.
    counts["t3"] = 2
    later = assignor.metadata({"t3"})
    assert json.loads(later.user_data) == {"t3": 2}


def test_metadata_survives_the_wire():
    assignor = PartitionCountAssignor({"t1": 4})
    decoded = ConsumerProtocolSubscription.decode(
        assignor.metadata({"t1"}).encode())
    assert list(decoded.topics) == ["t1"]
    assert json.loads(decoded.user_data) == {"t1": 4}


def test_assign_uses_announced_counts_when_cluster_lacks_topic():
    leader = PartitionCountAssignor({"t1": 2})
    other = PartitionCountAssignor({"t2": 3})
    members = [member("m1", leader, {"t1"}), member("m2", other, {"t2"})]
    cluster = FakeCluster({"t1": 2})  # no metadata for t2
    result = leader.assign(cluster, members)
    assert set(cluster.asked) == {"t1", "t2"}
    assert set(result) == {"m1", "m2"}
    for assignment in result.values():
        assert isinstance(assignment, ConsumerProtocolAssignment)
    assert sorted(tp for tp in result["m1"].partitions()) == [
        ("t1", 0), ("t1", 1)]
    assert sorted(result["m2"].partitions()) == [
        ("t2", 0), ("t2", 1), ("t2", 2)]


def test_assign_takes_the_largest_count():
    assignor = PartitionCountAssignor({"t": 2})
    members = [member("m1", assignor, {"t"}),
               member("m2", PartitionCountAssignor({"t": 4}), {"t"})]
    result = assignor.assign(FakeCluster({"t": 3}), members)
    assigned = sorted(tp for a in result.values() for tp in a.partitions())
    assert assigned == [("t", p) for p in range(4)]
    assert len(result["m1"].partitions()) == 2


def test_assign_cluster_metadata_beats_stale_announcement():
    assignor = PartitionCountAssignor({"t": 1})
    members = [member("m1", assignor, {"t"}), member("m2", assignor, {"t"})]
    result = assignor.assign(FakeCluster({"t": 6}), members)
    assert sorted(len(a.partitions()) for a in result.values()) == [3, 3]


def test_assign_leaves_unknown_topic_unassigned():
    assignor = PartitionCountAssignor({})
    members = [member("m1", assignor, {"known", "unknown"})]
    result = assignor.assign(FakeCluster({"known": 2}), members)
    assert sorted(result["m1"].partitions()) == [("known", 0),
                                                 ("known", 1)]


def test_assign_ignores_bad_user_data():
    assignor = PartitionCountAssignor({})
    members = [
        Member("m1", None, ConsumerProtocolSubscription(0, ["t"], b"junk")),
        Member("m2", None, ConsumerProtocolSubscription(0, ["t"], b"[1]")),
        Member("m3", None, ConsumerProtocolSubscription(0, ["t"], None)),
    ]
    result = assignor.assign(FakeCluster({"t": 3}), members)
    assert sorted(len(a.partitions()) for a in result.values()) == [1, 1, 1]


def test_assignment_encodes():
    assignor = PartitionCountAssignor({"t": 2})
    members = [member("m1", assignor, {"t"}), member("m2", assignor, {"t"}),
               member("m3", assignor, {"t"})]
    result = assignor.assign(FakeCluster({}), members)
    for assignment in result.values():
        decoded = ConsumerProtocolAssignment.decode(assignment.encode())
        assert sorted(decoded.partitions()) == sorted(
            assignment.partitions())
    assert sorted(len(a.partitions()) for a in result.values()) == [0, 1, 1]


def _decoded(assignment):
    """``{member: {topic: [partitions]}}`` of an ``assign`` result, read
    back as members read it."""
    found = {}
    for member_id, encoded in assignment.items():
        decoded = ConsumerProtocolAssignment.decode(encoded.encode())
        found[member_id] = {topic: list(partitions) for topic, partitions
                            in decoded.assigned_partitions}
    return found


def test_round_robin_assigns_members_with_different_subscriptions():
    """oslo's listeners each subscribe to a topic of their own besides the
    shared ones (kafka-python 3.0.12's round robin assignor raises
    KeyError on that)."""
    from kafka.coordinator.assignors.roundrobin import (
        RoundRobinPartitionAssignor,
    )

    cluster = FakeCluster({"shared": 4, "own-a": 2, "own-b": 1})
    members = [member("a", RoundRobinAssignor(), ["shared", "own-a"]),
               member("b", RoundRobinAssignor(), ["shared", "own-b"])]
    subscriptions = {"a": {"shared", "own-a"}, "b": {"shared", "own-b"}}
    found = _decoded(RoundRobinAssignor().assign(cluster, members))
    check_complete(subscriptions, {"shared": 4, "own-a": 2, "own-b": 1},
                   found)
    assert sorted(found["a"]["shared"] + found["b"]["shared"]) == [0, 1, 2, 3]
    assert found["a"]["own-a"] == [0, 1] and found["b"]["own-b"] == [0]
    assert RoundRobinAssignor.name == RoundRobinPartitionAssignor.name


def test_round_robin_spreads_one_subscription_evenly():
    cluster = FakeCluster({"t1": 2, "t2": 2, "t3": 2})
    members = [member(m, RoundRobinAssignor(), ["t1", "t2", "t3"])
               for m in ("a", "b", "c")]
    found = _decoded(RoundRobinAssignor().assign(cluster, members))
    assert totals(found) == {"a": 2, "b": 2, "c": 2}


def test_round_robin_announces_counts_under_kafkas_protocol_name():
    """Members announce their counts in the subscription's user data,
    which Kafka's other clients ignore; with nothing known, none."""
    assignor = RoundRobinAssignor({"own": 3})
    assert assignor.name == "roundrobin"
    assert json.loads(assignor.metadata({"own", "shared"}).user_data) == {
        "own": 3}
    assert RoundRobinAssignor().metadata({"t"}).user_data == b""


def test_round_robin_leader_assigns_topics_it_has_no_metadata_for():
    leader = RoundRobinAssignor({"shared": 2, "own-a": 2})
    joining = RoundRobinAssignor({"shared": 2, "own-b": 2})
    members = [member("a", leader, {"shared", "own-a"}),
               member("b", joining, {"shared", "own-b"})]
    cluster = FakeCluster({"shared": 2, "own-a": 2})  # none for own-b
    found = _decoded(leader.assign(cluster, members))
    assert found["b"]["own-b"] == [0, 1]
    assert leader.assigned_counts == {"shared": 2, "own-a": 2, "own-b": 2}


def test_partition_count_assignor_is_round_robin_under_its_own_name():
    assert PartitionCountAssignor.name == "notifbus"
    assert issubclass(PartitionCountAssignor, RoundRobinAssignor)


class _Coordinator:
    """What :func:`assume_assigned_counts` touches of kafka-python's
    ConsumerCoordinator, after its ``_perform_assignment``: the snapshots
    are of the metadata the leader had, without the new member's topic."""

    class _Subscription:
        def group_subscription(self):
            return {"shared", "own-a", "own-b"}

    def __init__(self, assignor, cluster):
        self._assignor, self._cluster = assignor, cluster
        self._subscription = self._Subscription()
        self._metadata_snapshot = {"shared": {0, 1}, "own-a": {0, 1}}
        self._assignment_snapshot = None

    def _perform_assignment(self, leader_id, protocol_name, members):
        self._assignment_snapshot = self._metadata_snapshot
        return self._assignor.assign(self._cluster, members)


class _Consumer:
    def __init__(self, coordinator):
        self._coordinator = coordinator


@pytest.mark.parametrize("protocol, rejoins", [
    ("roundrobin", False), ("range", True)])
def test_leader_snapshot_holds_the_counts_it_assigned(protocol, rejoins):
    """The metadata of the new member's topic, when it arrives with the
    count announced, must not differ from the leader's snapshot (which
    would rebalance the group again); another protocol's assignment is
    left as kafka-python made it."""
    from notifbus.backends.kafka.assignor import assume_assigned_counts

    leader = RoundRobinAssignor({"shared": 2, "own-a": 2})
    members = [member("a", leader, {"shared", "own-a"}),
               member("b", RoundRobinAssignor({"own-b": 3}),
                      {"shared", "own-b"})]
    coordinator = _Coordinator(
        leader, FakeCluster({"shared": 2, "own-a": 2}))
    assume_assigned_counts(_Consumer(coordinator), leader)
    coordinator._perform_assignment("a", protocol, members)
    arrived = {"shared": {0, 1}, "own-a": {0, 1}, "own-b": {0, 1, 2}}
    assert (coordinator._assignment_snapshot != arrived) is rejoins
    if not rejoins:
        assert coordinator._metadata_snapshot == arrived
        # a count the metadata contradicts still rebalances
        assert coordinator._assignment_snapshot != dict(
            arrived, **{"own-b": {0, 1, 2, 3}})


def test_assume_assigned_counts_leaves_other_consumers_alone():
    from notifbus.backends.kafka.assignor import assume_assigned_counts

    consumer = _Consumer(object())
    assume_assigned_counts(consumer, RoundRobinAssignor())
    assert not hasattr(consumer._coordinator, "_perform_assignment")
