"""Where a Kafka-protocol broker departs from Apache Kafka: one named seam.

Both Kafka backends (``kafka``, ``rdkafka``) read the ``broker_quirks``
option of their group and ask the :class:`BrokerQuirks` it names whether to
work around a broker's departure from Apache Kafka. With ``none``, the
default, Apache Kafka (and brokers that behave as it does) run none of
them. ``tansu`` is set by the embedded broker's URLs
(:meth:`notifbus.embedded.EmbeddedBroker.url`), for Tansu 0.6, the broker
of ``notifbus demo``.

Each quirk names the broker and version it is for and the test that
proves it (the same test passes on Apache Kafka without the workaround).
"""

import dataclasses

from oslo_config import cfg


@dataclasses.dataclass(frozen=True)
class BrokerQuirks:
    """What a broker needs worked around; every field is ``False`` for
    Apache Kafka."""

    #: name as given in ``broker_quirks``
    name: str
    #: Tansu 0.6 answers a lone JoinGroup of the group leader without
    #: rebalancing the other members, and kafka-python's leader rejoins
    #: once after a first assignment when members subscribe to different
    #: topics: two members then read the same partitions. The kafka backend
    #: makes the leader watch only its own topics and assigns with
    #: :class:`~notifbus.backends.kafka.assignor.PartitionCountAssignor`
    #: (partition counts announced by the members), instead of the
    #: standard round robin and range assignors.
    #: Test: tests/functional/test_kafka_conformance.py (pools over several
    #: topics).
    leader_watches_own_topics: bool = False
    #: Tansu 0.6 keeps a member whose LeaveGroup arrived while its
    #: JoinGroup was pending, and stalls the group's next rebalances for
    #: 30 s and more: the kafka backend's consumer finishes a rebalance in
    #: flight before it leaves.
    #: Test: the conformance kit's pool join/leave test.
    finish_rebalance_before_leave: bool = False
    #: every Tansu 0.6 broker advertises node id 111, so a client keeps the
    #: address of a dead broker for a node that lives elsewhere: the kafka
    #: backend rebuilds a producer that found no broker and a consumer that
    #: lost its group coordinator for long, bootstrapping again from every
    #: host of the URL.
    #: Test: tests/functional/test_kafka_restart.py (two brokers sharing a
    #: log, one killed).
    rebuild_clients_when_unreachable: bool = False
    #: Tansu 0.6 answers ListOffsets with the base offset of a partition's
    #: last record batch plus one, not the offset after its last record:
    #: both backends read that batch to end a replay after it
    #: (:func:`end_after_last_batch`).
    #: Test: tests/functional/test_kafka_batches.py (replay reads every
    #: record of the last batch).
    end_offsets_per_batch: bool = False
    #: Tansu 0.6 answers a ListOffsets by time that matches no record of a
    #: partition (all its records are older) with offset 0, where Apache
    #: Kafka answers none: a replay from a time then read such partitions
    #: from their start. Both backends take the end offset for an answer
    #: whose record is older than the time asked
    #: (:func:`first_at_or_after`).
    #: Test: the conformance kit's replay from a time
    #: (tests/functional/test_kafka_conformance.py and
    #: test_rdkafka_conformance.py, topics of 8 partitions).
    offsets_for_time_unmatched_at_zero: bool = False
    #: Tansu 0.6, restarted after a crash, acknowledged a batch sent again
    #: with the same producer id and sequence as a duplicate of one it had
    #: not stored (2 runs of 6 lost an acknowledged notification; none
    #: without idempotence): both backends send without a producer id
    #: whatever ``enable_idempotence`` says, and log it once
    #: (:func:`idempotence`).
    #: Test: tests/functional/test_kafka_restart.py (a broker killed and
    #: started again on its log).
    idempotent_producer_loses_records: bool = False

    def idempotence(self, wanted, log):
        """Whether a producer may be idempotent, given ``wanted`` (the
        ``enable_idempotence`` option); says once on ``log`` when these
        quirks turn it off."""
        if not (wanted and self.idempotent_producer_loses_records):
            return wanted
        if self.name not in _TOLD_IDEMPOTENCE_OFF:
            _TOLD_IDEMPOTENCE_OFF.add(self.name)
            log.info("notifbus: enable_idempotence is ignored with "
                        "broker_quirks=%s: that broker may acknowledge a "
                        "resent batch it did not store; a resent batch "
                        "may be stored twice instead", self.name)
        return False


#: names of the quirks whose idempotence warning was logged
_TOLD_IDEMPOTENCE_OFF = set()

#: brokers that behave as Apache Kafka
APACHE_KAFKA = BrokerQuirks("none")
#: Tansu 0.6, the embedded broker
TANSU = BrokerQuirks(
    "tansu", leader_watches_own_topics=True,
    finish_rebalance_before_leave=True,
    rebuild_clients_when_unreachable=True, end_offsets_per_batch=True,
    offsets_for_time_unmatched_at_zero=True,
    idempotent_producer_loses_records=True)

_BY_NAME = {q.name: q for q in (APACHE_KAFKA, TANSU)}


def quirks_opts():
    """The ``broker_quirks`` option of a Kafka backend's group."""
    return [cfg.StrOpt(
        "broker_quirks", default=APACHE_KAFKA.name, choices=sorted(_BY_NAME),
        help="Workarounds for a Kafka-protocol broker that departs from "
             "Apache Kafka: 'none' for Apache Kafka and brokers that "
             "behave as it does; 'tansu' for Tansu 0.6, the embedded "
             "broker of 'notifbus demo', whose URLs set it. See "
             "notifbus.backends.kafka_common.quirks for each workaround.")]


def for_options(opts):
    """The :class:`BrokerQuirks` named by the ``broker_quirks`` option of
    ``opts`` (a Kafka backend's option values)."""
    return _BY_NAME[opts.broker_quirks]


# -- the workarounds that read records back, shared by both backends ------

def end_after_last_batch(backend, topic, partition, end, timeout,
                         max_records=500):
    """``end``, the end offset a broker reported for a partition, or the
    offset past the records that follow it in the same record batch.

    It is for brokers that answer ListOffsets with the base offset of the
    partition's last batch, plus one: ten records sent in one batch end at
    1 (:attr:`BrokerQuirks.end_offsets_per_batch`; see
    ``doc/source/brokers.rst``).
    The records from ``end - 1`` on are read with ``backend.read`` (a
    fetch returns whole batches) and the end put after the last of them;
    with a broker that reports the true end, that is ``end`` (or later,
    for records written meanwhile).
    """
    if end <= 0:
        return end
    found = backend.read(topic, partition, end - 1, max_records, timeout)
    return max([end] + [received.offset + 1 for received in found])


def first_at_or_after(backend, topic, partition, offset, end, timestamp_ms,
                      timeout):
    """``offset``, the offset a broker found by time in a partition, or
    ``end`` (the partition's end offset) when the record at ``offset`` is
    older than ``timestamp_ms`` (milliseconds since the epoch).

    It is for brokers that answer a ListOffsets by time that matches no
    record with an offset of the partition instead of none
    (:attr:`BrokerQuirks.offsets_for_time_unmatched_at_zero`). The record
    at ``offset`` is read with ``backend.read``; an offset past the records
    is ``end``, and one whose record could not be read within ``timeout``
    seconds is kept (a replay then reads too much rather than too little).
    """
    if offset >= end:
        return end
    found = backend.read(topic, partition, offset, 1, timeout)
    if not found:
        return offset
    stamp = found[0].timestamp_ms
    return end if stamp is not None and stamp < timestamp_ms else offset

