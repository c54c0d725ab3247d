"""The Apache Kafka fixture of notifbus.testing: clusters of N nodes, a node
killed and started again, and no node outliving the process that started
it."""

import os
import subprocess
import sys
import time
import uuid

import kafka
import pytest
from kafka.admin import NewTopic

from notifbus import errors
from notifbus.testing.kafka import KafkaCluster, kafka_libs
from tests.processes import gone


def test_a_node_dies_with_the_process_that_started_it(tmp_path):
    script = ("import sys, time\n"
              "from notifbus.testing.kafka import KafkaCluster\n"
              "cluster = KafkaCluster(directory=sys.argv[1]).start()\n"
              "print(cluster.nodes[0].process.pid, flush=True)\n"
              "time.sleep(300)\n")
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                             stdout=subprocess.PIPE,
                             env=dict(os.environ,
                                      NOTIFBUS_KAFKA_LIBS=str(kafka_libs())))
    try:
        pid = int(owner.stdout.readline())
        assert not gone(pid)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(pid), f"Kafka node {pid} outlived the process that " \
                       f"started it"


def test_a_node_that_cannot_start_says_why(tmp_path):
    cluster = KafkaCluster(broker_config={"num.io.threads": "not-a-number"})
    with pytest.raises(errors.NotifbusError, match="num.io.threads"):
        cluster.start(timeout=60)
    assert all(not node.running for node in cluster.nodes)


def test_three_nodes_keep_acknowledging_while_one_is_down():
    topic = f"fixture{uuid.uuid4().hex[:8]}"
    with KafkaCluster(nodes=3) as cluster:
        admin = kafka.KafkaAdminClient(
            bootstrap_servers=cluster.bootstrap_servers)
        admin.create_topics([NewTopic(topic, 1, 3, topic_configs={
            "min.insync.replicas": "2"})])
        admin.close()
        producer = kafka.KafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers, acks="all",
            retries=10, request_timeout_ms=5000)
        try:
            producer.send(topic, b"before").get(30)
            cluster.node(2).kill()
            assert not cluster.node(2).running
            producer.send(topic, b"during").get(30)
            cluster.node(2).start()
            cluster.node(2).wait_ready(90)
            producer.send(topic, b"after").get(30)
        finally:
            producer.close()
        consumer = kafka.KafkaConsumer(
            topic, bootstrap_servers=cluster.bootstrap_servers,
            auto_offset_reset="earliest", consumer_timeout_ms=10000)
        values = [message.value for message in consumer]
        consumer.close()
    assert values == [b"before", b"during", b"after"]
