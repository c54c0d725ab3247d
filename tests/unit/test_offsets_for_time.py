"""``first_at_or_after``: the offset a broker found by time, checked
against the record there
(``BrokerQuirks.offsets_for_time_unmatched_at_zero``)."""

from notifbus.backends.kafka_common import quirks as kafka_quirks
from notifbus.backends.kafka_common.quirks import first_at_or_after
from notifbus.record import Received


class Log:
    """A backend's ``read`` over one partition's timestamps."""

    def __init__(self, stamps):
        self.stamps = stamps
        self.reads = []

    def read(self, topic, partition, offset, max_records, timeout):
        self.reads.append(offset)
        return [Received(topic=topic, partition=partition, offset=o,
                         value=b"", timestamp_ms=self.stamps[o])
                for o in range(offset, min(offset + max_records,
                                           len(self.stamps)))]


def test_an_answer_older_than_the_time_is_the_end():
    """What Tansu 0.6 answers for a partition whose records are all older
    than the time asked: offset 0."""
    log = Log([100, 200, 300])
    assert first_at_or_after(log, "t", 0, 0, 3, 250, 1.0) == 3


def test_an_answer_at_or_after_the_time_is_kept():
    log = Log([100, 200, 300])
    assert first_at_or_after(log, "t", 0, 2, 3, 250, 1.0) == 2
    assert first_at_or_after(log, "t", 0, 0, 3, 100, 1.0) == 0


def test_the_end_is_not_read():
    log = Log([100])
    assert first_at_or_after(log, "t", 0, 1, 1, 50, 1.0) == 1
    assert log.reads == []


def test_an_unreadable_answer_is_kept():
    class Silent(Log):
        def read(self, *args):
            return []

    assert first_at_or_after(Silent([]), "t", 0, 0, 5, 50, 1.0) == 0


def test_only_tansu_needs_it():
    assert kafka_quirks.TANSU.offsets_for_time_unmatched_at_zero
    assert not kafka_quirks.APACHE_KAFKA.offsets_for_time_unmatched_at_zero
