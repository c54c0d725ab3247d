"""Tests of the memory backend's group coordinator on its own."""

import threading

from notifbus.backends.memory.group import ConsumerGroup, Membership
from notifbus.policy.assignment import plan

COUNTS = {"a": 3, "b": 2}


def test_join_and_leave_deal_partitions_as_the_kafka_plan():
    group = ConsumerGroup("g")
    group.join(1, frozenset({"a", "b"}), COUNTS.get)
    group.join(2, frozenset({"a"}), COUNTS.get)
    assert group.generation == 2
    expected = plan({1: {"a", "b"}, 2: {"a"}}, COUNTS)
    assert group.targets == {
        member: {(t, p) for t, ps in topics.items() for p in ps}
        for member, topics in expected.items()}
    assert group.targets == {1: {("a", 0), ("a", 2), ("b", 0), ("b", 1)},
                             2: {("a", 1)}}
    group.owners[("a", 1)] = 2
    group.leave(2, COUNTS.get)
    assert group.generation == 3 and group.owners == {}
    assert group.targets == {1: {("a", 0), ("a", 1), ("a", 2),
                                 ("b", 0), ("b", 1)}}
    group.leave(2, COUNTS.get)  # already gone: nothing moves
    assert group.generation == 3


def test_member_takes_a_partition_only_once_released():
    group, cond = ConsumerGroup("g"), threading.Condition()
    group.join(1, frozenset({"b"}), COUNTS.get)
    revoked = []
    first = Membership(group, 1, cond, lambda tp: 0, revoked.append)
    first.sync(may_revoke=True)
    assert first.settled() and set(first.positions) == {("b", 0), ("b", 1)}
    group.join(2, frozenset({"b"}), COUNTS.get)
    second = Membership(group, 2, cond, lambda tp: 7, None)
    second.sync(may_revoke=True)
    assert not second.settled() and second.positions == {}
    first.sync(may_revoke=True)
    assert revoked == [{("b", 1)}]
    second.sync(may_revoke=True)
    assert second.settled() and second.positions == {("b", 1): 7}
    assert second.owns(("b", 1)) and not first.owns(("b", 1))
