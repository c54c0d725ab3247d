"""The bus's retries on the rdkafka backend while librdkafka holds the
records of a failed attempt: Apache Kafka paused (SIGSTOP) with a produce
request in flight, attempts time out, the bus retries them; each retry
waits for the records librdkafka holds instead of producing them again,
so once the broker goes on every notification is stored once.

NOT_ENOUGH_REPLICAS needs a cluster: Apache Kafka 4.4 takes a partition's
``min.insync.replicas`` as at most its replica count, so one node never
refuses a record for it. The cause that the backend names is tested on a
scripted producer (``tests/unit/test_rdkafka_held.py``) and on three
nodes (``make cluster-faults``, ``tests/cluster``).
"""

import contextlib
import os
import signal
import threading
import time
import uuid

import oslo_messaging
import pytest
from confluent_kafka import Consumer, TopicPartition

from notifbus import codec
from tests.functional.faults import conf, message, target
from tests.functional.test_rdkafka_conformance import rdkafka_url

QUERY = {"num_partitions": "1", "send_timeout_ms": "1000",
         "retry_backoff_ms": "50", "retry_backoff_max_ms": "100"}


@contextlib.contextmanager
def paused(broker):
    """The broker's JVM stopped (SIGSTOP): connections stay open, nothing
    is answered; continued (SIGCONT) on the way out."""
    process = getattr(broker.nodes[0], "process", None)
    if process is None:
        pytest.skip("needs a Kafka node started by the tests")
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def stored(address, topic):
    """The payloads stored in partition 0 of ``topic``, in order."""
    consumer = Consumer({"bootstrap.servers": address,
                         "group.id": "notifbus-test-reader",
                         "enable.auto.commit": False})
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0),
                                                timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        found = []
        deadline = time.monotonic() + 10
        while len(found) < end and time.monotonic() < deadline:
            for record in consumer.consume(end - len(found), 0.5):
                if record.error() is None:
                    found.append(codec.decode(record.value())[1]["payload"])
        return found
    finally:
        consumer.close()


def test_retries_wait_for_what_librdkafka_holds(apache_kafka):
    topic = f"held{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(
        conf(), url=rdkafka_url(apache_kafka, **QUERY))
    outcomes = {}

    def send(n):
        try:
            transport._send_notification(target(topic), {}, message(n),
                                         version=2.0, retry=None)
            outcomes[n] = None
        except Exception as exc:  # noqa: BLE001 - reported below
            outcomes[n] = exc

    try:
        send(0)  # the topic and the producer id exist
        counters = transport._driver.counters
        senders = [threading.Thread(target=send, args=(n,)) for n in (1, 2)]
        with paused(apache_kafka):
            for sender in senders:
                sender.start()
            deadline = time.monotonic() + 15
            while (counters.as_dict()["retried"] < 2
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            retried = counters.as_dict()["retried"]
        for sender in senders:
            sender.join(30)
    finally:
        transport.cleanup()
    assert retried >= 2
    assert outcomes == {0: None, 1: None, 2: None}
    assert sorted(stored(apache_kafka.address, f"{topic}.info")) == [0, 1, 2]
