"""Round-robin assignment of partitions to the members of a consumer group.

One pure function, :func:`plan`, used by the kafka backend's assignor
(:mod:`notifbus.backends.kafka.assignor`) and by the memory backend's group
coordinator (:mod:`notifbus.backends.memory.group`), so that both deal
partitions the same way.
"""

from typing import Dict, Hashable, List, Mapping, Set, TypeVar

Member = TypeVar("Member", bound=Hashable)


def plan(subscriptions: Mapping[Member, Set[str]],
         counts: Mapping[str, int]) -> Dict[Member, Dict[str, List[int]]]:
    """Deal every partition to the members, round robin.

    Topics are taken in name order and their partitions in number order;
    each partition goes to the next member (in sorted member order) that
    subscribes to its topic, carrying on where the previous topic stopped,
    so that members with the same subscription end up within one partition
    of each other.

    :param subscriptions: ``{member: set of topic names}``; members must
        sort (member ids, join numbers).
    :param counts: ``{topic: partition count}``; topics no member
        subscribes to are skipped.
    :returns: ``{member: {topic: [partition, ...]}}``, every member of
        ``subscriptions`` present (``{}`` for one that gets nothing).
    """
    assignment: Dict[Member, Dict[str, List[int]]] = {
        member: {} for member in subscriptions}
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
