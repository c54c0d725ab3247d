"""A notifbus listener pool is a Kafka consumer group like any other.

On Apache Kafka the kafka backend's listeners assign partitions with
Kafka's standard assignors (round robin, range), so a pool can have members
of other Kafka clients: here a notifbus listener and a plain kafka-python
consumer (default assignors: range, round robin) split a topic's
partitions, and every notification is read once.
"""

import json
import time
import uuid

import kafka
import oslo_messaging
from oslo_config import cfg

from tests.functional.faults import Endpoint


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def test_a_pool_shared_with_a_plain_kafka_consumer(apache_kafka):
    pool = f"shared-{uuid.uuid4().hex[:8]}"
    topic = f"shared{uuid.uuid4().hex[:8]}"
    url = apache_kafka.url(num_partitions=2)
    transport = oslo_messaging.get_notification_transport(_conf(), url=url)
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool=pool)
    server.start()
    other = kafka.KafkaConsumer(
        f"{topic}.info", bootstrap_servers=apache_kafka.bootstrap_servers,
        group_id=pool, enable_auto_commit=True, auto_offset_reset="earliest")
    try:
        deadline = time.monotonic() + 30
        while len(other.assignment()) != 1 and time.monotonic() < deadline:
            other.poll(timeout_ms=200)
        assert len(other.assignment()) == 1, other.assignment()
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="shared", driver="messagingv2",
            topics=[topic], retry=0)
        for seq in range(40):
            notifier.info({}, "shared.test", seq)
        theirs = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in other.poll(timeout_ms=200).values():
                theirs += [json.loads(json.loads(r.value)["oslo.message"])[
                    "payload"] for r in records]
            if len(theirs) + endpoint.seen.qsize() >= 40:
                break
        ours = []
        while not endpoint.seen.empty():
            ours.append(endpoint.seen.get())
    finally:
        other.close()
        server.stop()
        server.wait()
        transport.cleanup()
    assert ours and theirs, (ours, theirs)
    assert sorted(ours + theirs) == list(range(40))
