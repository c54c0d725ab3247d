"""The backend contract itself, as tests.

:class:`BackendContract` checks what the bus asks of a
:class:`~notifbus.backends.base.Backend` and its
:class:`~notifbus.backends.base.Consumer` directly, below oslo.messaging:
per-record produce results (one record of a batch refused, the others
stored), a member that joins its group through ``poll`` and says so with
``assigned``, with what it polled meanwhile delivered once and in order,
``seek``, ``wakeup`` of a blocked poll, and commits made from ``on_revoke``
before a rebalance gives partitions away.
:class:`~notifbus.testing.conformance.TransportConformance` includes it, so
every backend that runs the kit runs these too.

What a backend does not support it declares in its class's ``unsupported``
attribute, named as in :data:`FEATURES`; the tests that need it are
skipped, saying so.
"""

import functools
import threading
import time
import uuid

import pytest

from notifbus.bus import Subscription, poll_until_assigned
from notifbus.record import Record
from notifbus.testing.faults import FaultyBackend

#: Parts of the backend contract that a backend may declare it lacks, in
#: its class's ``unsupported`` attribute (``unsupported =
#: frozenset({"replay", "seek"})``), with what they are.
FEATURES = {
    "replay": "Backend.end_offsets, offsets_for_time and read: reading a "
              "topic again outside any group (notifbus replay)",
    "seek": "Consumer.seek: moving a member's position in a partition",
    "rebalance": "partitions shared out among a group's members and moved "
                 "by rebalances that call on_revoke first (NATS and NSQ "
                 "members read every partition)",
}


def requires(*features):
    """Mark a conformance test as needing ``features`` (names from
    :data:`FEATURES`): it is skipped on a backend that declares one of them
    unsupported."""
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; known: "
                         f"{sorted(FEATURES)}")

    def mark(test):
        @functools.wraps(test)
        def run(self, *args, **kwargs):
            lacking = sorted(set(features) & self.unsupported())
            if lacking:
                name = self.transport_url().split(":", 1)[0].split("+")[-1]
                pytest.skip(f"the {name} backend declares {lacking} "
                            f"unsupported (its Backend.unsupported)")
            return test(self, *args, **kwargs)

        run.notifbus_requires = frozenset(features)
        return run

    return mark


def declared_unsupported(backend):
    """The features ``backend`` (an instance or a class) declares it does
    not support: its ``unsupported`` attribute, checked against
    :data:`FEATURES`.

    :raises ValueError: it names a feature the kit does not know.
    """
    declared = frozenset(getattr(backend, "unsupported", ()) or ())
    unknown = declared - set(FEATURES)
    if unknown:
        raise ValueError(
            f"{type(backend).__name__}.unsupported names {sorted(unknown)}, "
            f"which are not features of the contract; use names of "
            f"notifbus.testing.contract.FEATURES: {sorted(FEATURES)}")
    return declared


class BackendContract:
    """Mixin of backend-level tests; needs the hooks of
    :class:`~notifbus.testing.conformance.TransportConformance`
    (``backend()``, ``unsupported()``, ``wait_s``, ``topic``)."""

    def _topic(self, backend, partitions):
        """A new topic of this test with ``partitions`` partitions; its
        actual count."""
        topic = f"{self.topic}.c{uuid.uuid4().hex[:6]}"
        return topic, backend.ensure_topic(topic, partitions, self.wait_s)

    def _member(self, backend, topic, group=None, on_revoke=None):
        """A consumer of ``topic`` in ``group`` (a new one when ``None``),
        closed after the test."""
        consumer = backend.subscribe([topic], group or
                                     f"g{uuid.uuid4().hex[:8]}",
                                     on_revoke=on_revoke)
        self._cleanups.append(lambda: consumer.close(5.0))
        return consumer

    def _poll_until(self, consumer, done, found=None):
        """Poll ``consumer`` into ``found`` until ``done(found)``."""
        found = [] if found is None else found
        deadline = time.monotonic() + self.wait_s
        while not done(found) and time.monotonic() < deadline:
            found += consumer.poll(0.2, 100)
        return found

    def test_produce_reports_each_record(self):
        """One record of a batch refused, the others stored, in order:
        ``produce`` returns one result per record, and what it refused is
        not stored."""
        backend = self.backend()
        topic, _ = self._topic(backend, 1)
        faulty = FaultyBackend(backend)
        faulty.faults.refuse(lambda record: record.value == b"bad")
        values = [b"0", b"bad", b"2"]
        results = faulty.produce([Record(topic=topic, value=value)
                                  for value in values], [0, 0, 0],
                                 self.wait_s)
        assert [result is None for result in results] == [True, False, True]
        assert not results[1].retriable
        # a marker after the batch: once it is read, so is the batch
        assert backend.produce([Record(topic=topic, value=b"end")], [0],
                               self.wait_s) == [None]
        member = self._member(backend, topic)
        found = []
        assert poll_until_assigned(member, self.wait_s, found.extend)
        found = self._poll_until(
            member, lambda got: b"end" in [r.value for r in got], found)
        assert [r.value for r in found] == [b"0", b"2", b"end"]

    def test_records_polled_while_joining_are_delivered_once(self):
        """``Subscription.wait_assigned`` polls until ``assigned`` says
        the group placed the member: what it polled meanwhile is handed
        out by the fetches, in order, once, and committed only once
        acknowledged (a member of the same group reads it all again)."""
        backend = self.backend()
        topic, _ = self._topic(backend, 1)
        sent = [str(i).encode() for i in range(5)]
        assert backend.produce([Record(topic=topic, value=value)
                                for value in sent], [0] * len(sent),
                               self.wait_s) == [None] * len(sent)
        group = f"g{uuid.uuid4().hex[:8]}"
        for attempt in range(2):
            member = Subscription(backend, [topic], group, read_ahead=100)
            try:
                assert member.wait_assigned(self.wait_s)
                found = []
                deadline = time.monotonic() + self.wait_s
                while len(found) < len(sent) and \
                        time.monotonic() < deadline:
                    found += member.fetch(0.2, 100)
                found += member.fetch(0.2, 100)  # nothing more may come
            finally:
                member.close(5.0)  # nothing acknowledged: nothing committed
            values = [r.value for r in found]
            # a redelivery keeps no order on every broker (NATS, NSQ)
            assert (values if attempt == 0 else sorted(values)) == sent

    @requires("seek")
    def test_seek_reads_again(self):
        backend = self.backend()
        topic, _ = self._topic(backend, 1)
        assert backend.produce([Record(topic=topic, value=str(i).encode())
                                for i in range(4)], [0] * 4,
                               self.wait_s) == [None] * 4
        member = self._member(backend, topic)
        first = []
        assert poll_until_assigned(member, self.wait_s, first.extend)
        first = self._poll_until(member, lambda got: len(got) >= 4, first)
        assert [r.value for r in first] == [b"0", b"1", b"2", b"3"]
        member.seek(topic, 0, first[1].offset)
        again = self._poll_until(member, lambda got: len(got) >= 3)
        assert [(r.offset, r.value) for r in again] == [
            (r.offset, r.value) for r in first[1:]]

    def test_wakeup_ends_a_blocked_poll(self):
        backend = self.backend()
        topic, _ = self._topic(backend, 1)
        member = self._member(backend, topic)
        assert poll_until_assigned(member, self.wait_s, [].extend)
        timer = threading.Timer(0.2, member.wakeup)
        started = time.monotonic()
        timer.start()
        try:
            assert member.poll(30.0, 10) == []
            took = time.monotonic() - started
        finally:
            timer.join()
        assert took < 3.0, f"poll returned {took:.1f} s after its start"

    @requires("rebalance")
    def test_revoke_commits_before_the_partitions_go(self):
        """A member commits from ``on_revoke`` when a second one joins:
        the partitions it gives up are read by their new owner from that
        commit on."""
        backend = self.backend()
        topic, count = self._topic(backend, 2)
        records = [Record(topic=topic, value=f"{p}-{i}".encode())
                   for i in range(3) for p in range(count)]
        assert backend.produce(records, [i % count for i in range(
            len(records))], self.wait_s) == [None] * len(records)
        revoked = []
        first = None

        def on_revoke(partitions):
            revoked.append(set(partitions))
            # the first record of each partition given up is done
            first.commit({tp: offsets[tp] + 1 for tp in partitions
                          if tp in offsets})

        group = f"g{uuid.uuid4().hex[:8]}"
        first = self._member(backend, topic, group, on_revoke)
        read = []
        assert poll_until_assigned(first, self.wait_s, read.extend)
        read = self._poll_until(first, lambda got: len(got) >= len(records),
                                read)
        assert len(read) == len(records)
        offsets = {}  # (topic, partition) -> offset of its first record
        for received in read:
            tp = (received.topic, received.partition)
            offsets[tp] = min(offsets.get(tp, received.offset),
                              received.offset)
        second = self._member(backend, topic, group)
        taken = []
        deadline = time.monotonic() + self.wait_s * 2
        while not (revoked and taken) and time.monotonic() < deadline:
            first.poll(0.1, 100)
            taken += second.poll(0.1, 100)
        assert revoked, "the first member gave nothing up"
        assert taken, "the second member read nothing"
        # the new owner starts each partition it took after the commit
        # made from on_revoke
        starts = {}
        for received in taken:
            tp = (received.topic, received.partition)
            starts[tp] = min(starts.get(tp, received.offset),
                             received.offset)
        assert set(starts) <= revoked[0]
        assert starts == {tp: offsets[tp] + 1 for tp in starts}
