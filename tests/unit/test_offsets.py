"""Tests of the commit points computed from out-of-order acks."""

import random
import threading

from notifbus.offsets import OffsetTracker

TP = ("notifications.info", 0)
TP1 = ("notifications.info", 1)


def delivered(tracker, offsets, tp=TP):
    for offset in offsets:
        tracker.delivered(tp, offset)


def test_nothing_delivered_nothing_to_commit():
    tracker = OffsetTracker()
    assert tracker.commit_points() == {}
    assert tracker.outstanding() == 0


def test_no_commit_before_any_ack():
    tracker = OffsetTracker()
    delivered(tracker, range(5))
    assert tracker.commit_points() == {}
    assert tracker.outstanding() == 5


def test_commit_point_past_contiguous_acks():
    tracker = OffsetTracker()
    delivered(tracker, range(5))
    tracker.acked(TP, 0)
    assert tracker.commit_points() == {TP: 1}
    tracker.acked(TP, 1)
    tracker.acked(TP, 2)
    assert tracker.commit_points() == {TP: 3}


def test_out_of_order_acks_wait_for_the_gap():
    tracker = OffsetTracker()
    delivered(tracker, range(5))
    tracker.acked(TP, 1)
    tracker.acked(TP, 2)
    tracker.acked(TP, 4)
    assert tracker.commit_points() == {}
    tracker.acked(TP, 0)
    assert tracker.commit_points() == {TP: 3}
    tracker.acked(TP, 3)
    assert tracker.commit_points() == {TP: 5}


def test_partitions_are_independent():
    tracker = OffsetTracker()
    delivered(tracker, range(3), TP)
    delivered(tracker, range(10, 13), TP1)
    tracker.acked(TP, 0)
    tracker.acked(TP1, 11)
    assert tracker.commit_points() == {TP: 1}
    tracker.acked(TP1, 10)
    assert tracker.commit_points() == {TP: 1, TP1: 12}


def test_unknown_ack_ignored():
    tracker = OffsetTracker()
    delivered(tracker, [0, 1])
    tracker.acked(TP, 7)
    tracker.acked(TP1, 0)
    assert tracker.commit_points() == {}
    assert tracker.outstanding() == 2


def test_committed_forgets_below():
    tracker = OffsetTracker()
    delivered(tracker, range(5))
    for offset in (0, 1, 2):
        tracker.acked(TP, offset)
    points = tracker.commit_points()
    assert points == {TP: 3}
    tracker.committed(points)
    assert tracker.outstanding() == 2
    # Nothing new is acked: no commit point until 3 is.
    assert tracker.commit_points() == {}
    tracker.acked(TP, 3)
    assert tracker.commit_points() == {TP: 4}
    # An ack of a forgotten offset changes nothing.
    tracker.acked(TP, 1)
    assert tracker.commit_points() == {TP: 4}


def test_committed_keeps_later_acks():
    tracker = OffsetTracker()
    delivered(tracker, range(4))
    tracker.acked(TP, 0)
    points = tracker.commit_points()
    tracker.acked(TP, 1)  # acked while the commit was in flight
    tracker.committed(points)
    assert tracker.commit_points() == {TP: 2}
    assert tracker.outstanding() == 3


def test_committed_for_unknown_partition():
    tracker = OffsetTracker()
    delivered(tracker, [0])
    tracker.committed({TP1: 5})
    assert tracker.outstanding() == 1


def test_requeued_record_holds_the_commit_and_later_acks_count():
    tracker = OffsetTracker()
    delivered(tracker, range(6))
    tracker.acked(TP, 0)
    tracker.acked(TP, 1)
    assert tracker.requeued(TP, 2)
    for offset in (3, 4, 5):
        tracker.acked(TP, offset)
    # nothing after 2 is dropped, and the commit stops below 2
    assert tracker.outstanding() == 6
    assert tracker.commit_points() == {TP: 2}
    tracker.committed({TP: 2})
    # delivered again, then acknowledged: the commit jumps past the rest
    tracker.delivered(TP, 2)
    assert tracker.commit_points() == {}
    tracker.acked(TP, 2)
    assert tracker.commit_points() == {TP: 6}


def test_requeue_of_unknown_or_acked_offset_is_refused():
    tracker = OffsetTracker()
    delivered(tracker, range(3))
    tracker.acked(TP, 1)
    assert not tracker.requeued(TP, 9)
    assert not tracker.requeued(TP1, 0)
    assert not tracker.requeued(TP, 1)
    assert tracker.requeued(TP, 0)
    assert tracker.outstanding() == 3


def test_requeue_of_first_blocks_commit():
    tracker = OffsetTracker()
    delivered(tracker, range(3))
    tracker.acked(TP, 1)
    tracker.acked(TP, 2)
    tracker.requeued(TP, 0)
    assert tracker.commit_points() == {}


def test_forget_drops_partitions():
    tracker = OffsetTracker()
    delivered(tracker, range(3), TP)
    delivered(tracker, range(3), TP1)
    tracker.acked(TP, 0)
    tracker.acked(TP1, 0)
    tracker.requeued(TP, 1)
    tracker.forget([TP, ("other", 3)])
    assert tracker.commit_points() == {TP1: 1}
    assert tracker.outstanding() == 3
    # Acks and requeues of a forgotten partition are ignored.
    tracker.acked(TP, 0)
    assert not tracker.requeued(TP, 1)
    assert TP not in tracker.commit_points()


def test_gaps_in_offsets_compacted_log():
    tracker = OffsetTracker()
    delivered(tracker, [3, 7, 9])
    tracker.acked(TP, 7)
    assert tracker.commit_points() == {}
    tracker.acked(TP, 3)
    assert tracker.commit_points() == {TP: 8}
    tracker.acked(TP, 9)
    points = tracker.commit_points()
    assert points == {TP: 10}
    tracker.committed(points)
    assert tracker.outstanding() == 0


def test_gaps_with_requeue():
    tracker = OffsetTracker()
    delivered(tracker, [3, 7, 9, 12])
    tracker.acked(TP, 3)
    tracker.requeued(TP, 9)
    tracker.acked(TP, 7)
    tracker.acked(TP, 12)
    assert tracker.commit_points() == {TP: 8}
    tracker.committed({TP: 8})
    assert tracker.outstanding() == 2
    tracker.acked(TP, 9)
    assert tracker.commit_points() == {TP: 13}


def test_many_threads_acking():
    tracker = OffsetTracker()
    partitions = [("t", p) for p in range(4)]
    per_partition = 2000
    for tp in partitions:
        delivered(tracker, range(per_partition), tp)
    work = [(tp, offset) for tp in partitions
            for offset in range(per_partition)]
    random.Random(7).shuffle(work)
    chunks = [work[i::16] for i in range(16)]
    start = threading.Barrier(len(chunks) + 1)
    seen_points = []

    def acker(chunk):
        start.wait()
        for tp, offset in chunk:
            tracker.acked(tp, offset)

    def committer():
        start.wait()
        for _ in range(200):
            points = tracker.commit_points()
            seen_points.append(points)
            tracker.committed(points)

    threads = [threading.Thread(target=acker, args=(c,)) for c in chunks]
    threads.append(threading.Thread(target=committer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    final = tracker.commit_points()
    tracker.committed(final)
    assert tracker.outstanding() == 0
    # Every partition's commit point reached the end, and never moved back.
    last = {}
    for points in seen_points + [final]:
        for tp, point in points.items():
            assert point > last.get(tp, -1)
            last[tp] = point
    assert last == {tp: per_partition for tp in partitions}
