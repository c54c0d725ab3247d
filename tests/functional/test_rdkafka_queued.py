"""delivery=buffered on the rdkafka backend, on Apache Kafka: librdkafka's
queue is the buffer; what it fails to deliver is retried as
buffered_retry allows, then spooled; what it still holds at close is
spooled."""

import time
import uuid

import oslo_messaging
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from oslo_config import cfg

from notifbus import spool as spool_files
from notifbus.backends.rdkafka.queued import QueuedSender
from notifbus.oslo_driver import counters, driver_of

pytest.importorskip("confluent_kafka")


def transport_for(broker, spool_dir, **query):
    query = dict({"delivery": "buffered", "spool_dir": spool_dir,
                  "broker_quirks": "none", "retry_backoff_ms": 10,
                  "retry_backoff_max_ms": 50}, **query)
    conf = cfg.ConfigOpts()
    conf([])
    return oslo_messaging.get_notification_transport(
        conf, url=broker.url("rdkafka", **query))


def send(transport, topic, count, retry=None):
    for seq in range(count):
        transport._send_notification(
            oslo_messaging.Target(topic=f"{topic}.info"),
            {}, {"publisher_id": "q", "event_type": "e", "payload": seq,
                 "priority": "INFO"}, version=2.0, retry=retry)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def spooled(spool_dir):
    return [record for path in spool_dir.iterdir()
            for record in spool_files.read(str(path))]


def test_notifications_go_through_librdkafkas_queue(apache_kafka, tmp_path):
    topic = f"queued-{uuid.uuid4().hex[:8]}"
    transport = transport_for(apache_kafka, tmp_path)
    try:
        assert isinstance(driver_of(transport).sender, QueuedSender)
        send(transport, topic, 50)
        assert wait_for(lambda: counters(transport)["acked"] == 50)
        backend = driver_of(transport).backend
        ends = backend.end_offsets(f"{topic}.info", 10.0)
        assert sum(ends.values()) == 50
    finally:
        transport.cleanup()
    assert counters(transport)["failed"] == 0
    assert spooled(tmp_path) == []


@pytest.fixture
def small_topic(apache_kafka):
    """A topic whose broker refuses records over 100 bytes (a permanent
    error, reported by librdkafka's delivery report)."""
    topic = f"queued-small-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": apache_kafka.bootstrap_servers})
    [future] = admin.create_topics([NewTopic(
        f"{topic}.info", 1, 1, config={"max.message.bytes": "100"})]).values()
    future.result(30)
    return topic


def test_failed_deliveries_are_spooled(apache_kafka, small_topic, tmp_path):
    transport = transport_for(apache_kafka, tmp_path, buffered_retry=-1)
    try:
        started = time.monotonic()
        send(transport, small_topic, 3)
        assert time.monotonic() - started < 2.0  # no wait for the broker
        assert wait_for(lambda: counters(transport)["spooled"] == 3)
        totals = counters(transport)
        assert (totals["failed"], totals["acked"]) == (3, 0)
    finally:
        transport.cleanup()
    assert sorted(record.topic for record in spooled(tmp_path)) == \
        [f"{small_topic}.info"] * 3


def test_what_librdkafka_holds_at_close_is_spooled(apache_kafka, tmp_path):
    topic = f"queued-close-{uuid.uuid4().hex[:8]}"
    # librdkafka holds the records for a minute before it sends them
    transport = transport_for(apache_kafka, tmp_path, close_timeout_ms=300,
                              producer_linger_ms=60000)
    send(transport, topic, 4)
    assert driver_of(transport).sender.buffered == 4
    started = time.monotonic()
    transport.cleanup()
    assert time.monotonic() - started < 5.0
    assert len(spooled(tmp_path)) == 4
    assert counters(transport)["spooled"] == 4
