"""The in-process group coordinator of the memory backend.

:class:`ConsumerGroup` is the coordinator's side: the members of one
consumer group, the generation, the target assignment (dealt by
:func:`notifbus.policy.assignment.plan`, as the kafka backend's round robin
assignor deals it), which member owns which partition, and the committed
offsets. :class:`Membership` is one member's side: it applies a new
generation's target on the member's own thread, calling ``on_revoke``
first, and takes a gained partition only once its previous owner released
it.

Neither does any locking of its own: the memory cluster's
:class:`threading.Condition` guards them, and every method expects it held
unless its docstring says otherwise.
"""

import dataclasses
import logging
import threading
from typing import Callable, Dict, FrozenSet, Optional, Set, Tuple

from notifbus.backends.base import TopicPartition
from notifbus.policy.assignment import plan

LOG = logging.getLogger(__name__)


class ConsumerGroup:
    """Members, assignment and committed offsets of one consumer group."""

    def __init__(self, name: str):
        self.name = name
        #: member id -> topics it subscribes to, in join order.
        self.members: Dict[int, FrozenSet[str]] = {}
        #: Bumped by every join and leave.
        self.generation = 0
        #: member id -> partitions the member should own.
        self.targets: Dict[int, Set[TopicPartition]] = {}
        #: partition -> id of the member that owns it now.
        self.owners: Dict[TopicPartition, int] = {}
        #: partition -> next offset to read.
        self.committed: Dict[TopicPartition, int] = {}

    def join(self, member: int, topics: FrozenSet[str],
             count: Callable[[str], int]) -> None:
        """Add ``member`` and rebalance; ``count(topic)`` is the partition
        count of a topic."""
        self.members[member] = topics
        self.rebalance(count)

    def leave(self, member: int, count: Callable[[str], int]) -> None:
        """Drop ``member`` and its partitions, then rebalance. Does nothing
        for a member that already left."""
        if self.members.pop(member, None) is None:
            return
        self.targets.pop(member, None)
        for tp in [tp for tp, owner in self.owners.items()
                   if owner == member]:
            del self.owners[tp]
        self.rebalance(count)

    def rebalance(self, count: Callable[[str], int]) -> None:
        """Start a new generation whose targets deal every partition of the
        members' topics round robin, members in join order."""
        topics = set().union(*self.members.values())
        dealt = plan(self.members, {topic: count(topic) for topic in topics})
        self.targets = {member: {(topic, partition)
                                 for topic, partitions in topics.items()
                                 for partition in partitions}
                        for member, topics in dealt.items()}
        self.generation += 1


def _field(factory):
    return dataclasses.field(default_factory=factory, init=False)


@dataclasses.dataclass(eq=False)
class Membership:
    """One member's view of a :class:`ConsumerGroup`: the generation and
    target it applied, and the partitions it owns with its position in
    each.

    :param group: the group, which the member has joined.
    :param member: the member's id in ``group``.
    :param cond: the condition guarding the group; notified when this
        member releases partitions.
    :param start_offset: ``start_offset(tp)``, where reading a partition
        taken without a pending seek starts.
    :param on_revoke: ``None``, or called with the partitions about to be
        released, by :meth:`sync` with ``may_revoke``, without the lock
        held.
    """

    group: ConsumerGroup
    member: int
    cond: threading.Condition
    start_offset: Callable[[TopicPartition], int]
    on_revoke: Optional[Callable[[Set[TopicPartition]], None]]
    closed: bool = dataclasses.field(default=False, init=False)
    #: Partitions owned, with the next offset to read from each.
    positions: Dict[TopicPartition, int] = _field(dict)
    #: Owned partitions from which records were handed out.
    delivered: Set[TopicPartition] = _field(set)
    # Generation and target assignment this member has applied.
    _generation: int = dataclasses.field(default=0, init=False)
    _target: Set[TopicPartition] = _field(set)
    # Seeks of partitions not owned yet, with the group generation they
    # were made in; applied when taken in that generation.
    _pending_seeks: Dict[TopicPartition, Tuple[int, int]] = _field(dict)

    def sync(self, may_revoke: bool) -> None:
        """Apply the group's current assignment as far as possible. Takes
        the lock itself: call it without.

        Releases the partitions this member lost (calling ``on_revoke``
        first when ``may_revoke``) and takes the gained partitions that
        their previous owner has released. Without ``may_revoke``, lost
        partitions from which records were handed out are kept until a
        call with it.
        """
        with self.cond:
            if self.closed:
                return
            generation = self.group.generation
            if generation == self._generation:
                self._take()
                return
            target = set(self.group.targets.get(self.member, ()))
            lost = set(self.positions) - target
            if not lost or not may_revoke:
                if lost & self.delivered:
                    return
                self._apply(generation, target, lost)
                return
        if self.on_revoke is not None:
            try:
                self.on_revoke(set(lost))
            except Exception:
                LOG.exception("group %s: on_revoke(%s) failed; the "
                              "partitions are released anyway",
                              self.group.name, sorted(lost))
        with self.cond:
            if not self.closed:
                self._apply(generation, target, lost)

    def _apply(self, generation, target, lost):
        owners = self.group.owners
        for tp in lost:
            self.positions.pop(tp, None)
            self.delivered.discard(tp)
            if owners.get(tp) == self.member:
                del owners[tp]
        if lost:
            self.cond.notify_all()
        self._generation = generation
        self._target = target
        self._take()

    def _take(self):
        # Only a current target is taken.
        if self._generation != self.group.generation:
            return
        owners = self.group.owners
        for tp in self._target:
            if tp in self.positions or tp in owners:
                continue
            owners[tp] = self.member
            start, seen = self._pending_seeks.pop(tp, (None, None))
            if start is None or seen != self._generation:
                start = self.start_offset(tp)
            self.positions[tp] = start

    def settled(self) -> bool:
        """Whether the latest generation is applied and every partition of
        its target owned."""
        return (self._generation == self.group.generation
                and set(self.positions) == self._target)

    def behind(self) -> bool:
        """Whether a new generation waits to be applied."""
        return self._generation != self.group.generation

    def blocked_on_revoke(self) -> bool:
        """Whether only a :meth:`sync` with ``may_revoke`` can apply the
        new generation (it takes partitions records came from)."""
        target = self.group.targets.get(self.member, set())
        return bool((set(self.positions) - target) & self.delivered)

    def owns(self, tp: TopicPartition) -> bool:
        """Whether this member owns ``tp`` in the group now."""
        return self.group.owners.get(tp) == self.member

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on; for a partition not owned yet,
        once taken, unless the group rebalanced again in between."""
        if tp in self.positions:
            self.positions[tp] = offset
        else:
            self._pending_seeks[tp] = (offset, self.group.generation)

    def close(self) -> None:
        """Stop applying assignments and drop the positions; the caller
        makes the member leave the group."""
        self.closed = True
        self.positions.clear()
