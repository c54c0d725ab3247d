"""The rdkafka backend's buffered sender over a stand-in for librdkafka:
failed deliveries are produced again as buffered_retry allows, then
spooled."""

import time

import pytest

from notifbus import errors, spool
from notifbus.bus import Publisher
from notifbus.policy import partitioning
from notifbus.policy.batching import BatchPolicy
from notifbus.record import Record

queued = pytest.importorskip("notifbus.backends.rdkafka.queued")


class Events:
    def flush(self):
        pass


class Failure:
    """A KafkaError as the delivery report gives it."""

    def fatal(self):
        return False


class Message:
    """A message as librdkafka's delivery report gives it."""

    def __init__(self, topic, value, key, headers, timestamp):
        self._fields = (topic, value, key, headers, timestamp)

    def topic(self):
        return self._fields[0]

    def value(self):
        return self._fields[1]

    def key(self):
        return self._fields[2]

    def headers(self):
        return self._fields[3]

    def timestamp(self):
        return (1, self._fields[4]) if self._fields[4] else (0, 0)


class Producer:
    """librdkafka's producer with ``delivery.report.only.error``: each
    produce is reported failed (to the produce's own ``on_delivery``, else
    to the producer's), or acknowledged without a report once
    ``acknowledge`` is set. The broker answers at once, or, while
    ``answering`` is unset, only when :meth:`answer` is called: until
    then the records are in flight, with no report to serve."""

    def __init__(self, on_failure):
        self.on_failure = on_failure
        self.produced = []
        self.in_flight = []
        self.reports = []
        self.acknowledge = False
        self.answering = True
        self.timeouts = []  # of every poll

    def __len__(self):
        return len(self.in_flight) + len(self.reports)

    def produce(self, topic, value, key, partition, headers, timestamp,
                on_delivery=None):
        self.produced.append(value)
        self.in_flight.append((on_delivery or self.on_failure,
                               Message(topic, value, key, headers,
                                       timestamp)))
        if self.answering:
            self.answer()

    def answer(self):
        """The broker answers every record in flight."""
        self.reports.extend(self.in_flight)
        self.in_flight.clear()

    def poll(self, timeout):
        self.timeouts.append(timeout)
        reports, self.reports = self.reports, []
        for report, message in reports:
            if not self.acknowledge:
                report(Failure(), message)
        if not reports:
            time.sleep(min(timeout, 0.01))

    def purge(self):
        pass

    def flush(self, timeout):
        return len(self)


class Backend:
    def __init__(self):
        self._producer = None
        self.events = Events()

    def buffered_producer(self, on_failure):
        assert self._producer is None, "one producer per sender"
        self._producer = Producer(on_failure)
        return self._producer

    def delivery_error(self, record, err):
        return errors.DeliveryError("NOT_ENOUGH_REPLICAS")

    def ensure_topic(self, topic, partitions, timeout):
        return 1


def make_sender(backend, tmp_path, retry):
    publisher = Publisher(backend, BatchPolicy(), partitioning.from_name(
        "round_robin"), send_timeout_s=1.0, num_partitions=1,
        max_message_bytes=1000)
    return queued.QueuedSender(
        backend, publisher, max_buffer_records=10, max_buffer_bytes=1000,
        max_batch_records=10, spool=spool.Spool(str(tmp_path)), retry=retry,
        backoff_ms=1, backoff_max_ms=1)


def stop_report_thread(sender):
    """End the sender's report thread: nothing serves the queue but the
    sends themselves and what the test calls."""
    sender._closing = True
    sender._thread.join(1.0)
    sender._closing = False


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_retried_as_buffered_retry_allows_then_spooled(tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=2)
    sender.send(Record("t", b"a", key=b"k", headers=[("h", b"v")]))
    assert wait_for(lambda: sender.counters.spooled == 1)
    assert backend._producer.produced == [b"a"] * 3  # 2 retries
    assert (sender.counters.retried, sender.counters.failed) == (2, 1)
    sender.close(1.0)
    # the spooled record is the one sent, rebuilt from the failure report
    [spooled] = [r for p in tmp_path.iterdir() for r in spool.read(str(p))]
    assert (spooled.topic, spooled.value, spooled.key,
            list(spooled.headers)) == ("t", b"a", b"k", [("h", b"v")])


def test_a_retry_that_is_acknowledged_is_not_spooled(tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=-1)
    sender.send(Record("t", b"a"))
    assert wait_for(lambda: sender.counters.retried >= 1)
    backend._producer.acknowledge = True
    assert wait_for(lambda: sender.counters.acked == 1)
    assert len(backend._producer.produced) >= 2
    sender.close(1.0)
    assert (sender.counters.failed, sender.counters.spooled) == (0, 0)


def test_a_closed_sender_refuses_sends(tmp_path):
    sender = make_sender(Backend(), tmp_path, retry=0)
    sender.close(1.0)
    with pytest.raises(errors.DeliveryError, match="closed"):
        sender.send(Record("t", b"a"))


def test_a_full_queue_fails_with_retry_0(tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=-1)
    producer = sender.producer()
    producer.acknowledge = True
    producer.answering = False  # the records stay in flight
    for seq in range(10):  # max_buffer_records
        sender.send(Record("t", b"%d" % seq))
    with pytest.raises(errors.DeliveryError, match="max_buffer_records 10"):
        sender.send(Record("t", b"x"), retry=0)
    assert sender.counters.failed == 1
    producer.answer()
    sender.close(1.0)
    assert sender.counters.acked == 10


def test_acknowledgements_are_counted_per_topic_from_what_is_held(
        tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=-1)
    producer = sender.producer()
    producer.acknowledge = True
    producer.answering = False  # the records stay in flight
    stop_report_thread(sender)
    for topic in ("a", "a", "a", "b"):
        sender.send(Record(topic, b"x"))
    sender._count_acked()
    assert sender.counters.acked == 0  # all four held by librdkafka
    producer.answer()
    sender._count_acked()
    assert sender.counters.acked == 0  # the reports are not served yet
    sender._step(0)  # serves the queue: nothing failed
    assert {topic: sender.counters.tally(topic).acked
            for topic in "ab"} == {"a": 3, "b": 1}
    sender.close(1.0)
    assert sender.counters.acked == 4


def test_a_send_serves_the_reports_ready_on_its_own_thread(tmp_path):
    # confluent-kafka takes the GIL for every report, failed or not: the
    # senders serve them, not a thread contending with them for the GIL
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=-1)
    stop_report_thread(sender)
    producer = sender.producer()
    producer.answering = False
    sender.send(Record("t", b"a"))
    assert (len(producer), len(sender._failures)) == (1, 0)  # in flight
    producer.answer()
    sender.send(Record("t", b"b"))  # serves a's failure; b is in flight
    assert len(producer) == 1
    assert [record.value for record, _, _ in sender._failures] == [b"a"]
    assert sender._failed["t"] == 1
    sender.close(1.0)


def test_the_report_thread_serves_what_comes_while_nothing_is_sent(
        tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=0)
    producer = sender.producer()
    producer.answering = False
    sender.send(Record("t", b"a"))
    producer.answer()  # a's failure comes after its send returned
    assert wait_for(lambda: sender.counters.spooled == 1)
    # without waiting in poll: a report would take the GIL from a sender
    assert set(producer.timeouts) == {0}
    sender.close(1.0)


def test_a_full_queue_of_answered_records_makes_room_at_once(tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=0)
    stop_report_thread(sender)
    producer = sender.producer()
    producer.acknowledge = True
    producer.answering = False
    for seq in range(10):  # max_buffer_records
        sender.send(Record("t", b"%d" % seq))
    producer.answer()  # acknowledged, the reports not served yet
    sender.send(Record("t", b"x"), retry=0)  # serves them: room
    assert producer.produced[-1] == b"x"
    assert sender.counters.failed == 0
    producer.answer()
    sender.close(1.0)
    assert sender.counters.acked == 11


def test_a_send_queued_stays_sent_when_serving_the_reports_fails(
        tmp_path):
    # a producer closed by a reset on another thread: poll raises, but
    # the record was queued, and is neither failed nor produced again
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=-1)
    stop_report_thread(sender)
    producer = sender.producer()

    def closed(timeout):
        raise RuntimeError("Producer has been closed")

    producer.poll = closed
    sender.send(Record("t", b"a"))
    assert producer.produced == [b"a"]
    assert not sender._failures
    assert sender._attempts["t"] == 1
