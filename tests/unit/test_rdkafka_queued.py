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


class Failure:
    """A KafkaError as the delivery report gives it."""

    def fatal(self):
        return False


class Producer:
    """librdkafka's producer: each produce is reported failed, or
    acknowledged once ``acknowledge`` is set."""

    def __init__(self):
        self.produced = []
        self.reports = []
        self.acknowledge = False

    def __len__(self):
        return len(self.reports)

    def produce(self, topic, value, key, partition, headers, timestamp,
                on_delivery):
        self.produced.append(value)
        self.reports.append(on_delivery)

    def poll(self, timeout):
        reports, self.reports = self.reports, []
        for report in reports:
            report(None if self.acknowledge else Failure(), None)
        if not reports:
            time.sleep(min(timeout, 0.01))

    def purge(self):
        pass


class Backend:
    def __init__(self):
        self._producer = Producer()

    def producer(self):
        return self._producer

    def current_producer(self):
        return self._producer

    def reset_producer(self):
        pass

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


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_retried_as_buffered_retry_allows_then_spooled(tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=2)
    sender.send(Record("t", b"a"))
    assert wait_for(lambda: sender.counters.spooled == 1)
    assert backend._producer.produced == [b"a"] * 3  # 2 retries
    assert (sender.counters.retried, sender.counters.failed) == (2, 1)
    sender.close(1.0)
    assert [r.value for p in tmp_path.iterdir()
            for r in spool.read(str(p))] == [b"a"]


def test_a_retry_that_is_acknowledged_is_not_spooled(tmp_path):
    backend = Backend()
    sender = make_sender(backend, tmp_path, retry=-1)
    sender.send(Record("t", b"a"))
    assert wait_for(lambda: sender.counters.retried >= 1)
    backend._producer.acknowledge = True
    assert wait_for(lambda: sender.counters.acked == 1)
    sender.close(1.0)
    assert (sender.counters.failed, sender.counters.spooled) == (0, 0)


def test_a_closed_sender_refuses_sends(tmp_path):
    sender = make_sender(Backend(), tmp_path, retry=0)
    sender.close(1.0)
    with pytest.raises(errors.DeliveryError, match="closed"):
        sender.send(Record("t", b"a"))


def test_a_full_queue_fails_with_retry_0(tmp_path):
    backend = Backend()
    backend._producer.acknowledge = True
    sender = make_sender(backend, tmp_path, retry=-1)
    sender._closing = True  # no report thread serving the queue
    sender._thread.join(1.0)
    sender._closing = False
    for seq in range(10):  # max_buffer_records
        sender.send(Record("t", b"%d" % seq))
    with pytest.raises(errors.DeliveryError, match="max_buffer_records 10"):
        sender.send(Record("t", b"x"), retry=0)
    assert sender.counters.failed == 1
    sender.close(1.0)
    assert sender.counters.acked == 10
