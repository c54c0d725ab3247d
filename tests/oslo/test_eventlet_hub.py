"""The driver under eventlet: green senders and listeners, hub never blocked.

A ticker greenthread wakes every 10 ms while a listener joins its group,
green senders publish and the listener consumes; if any call blocked the
hub (a real socket wait, a wait inside librdkafka or on nats-py's loop
thread, a real lock), the ticker would stall for as long. On every
backend: ``kafka`` and ``rdkafka`` on Apache Kafka with the default
settings and on Tansu, ``nats`` on nats-server (the NSQ plugin's check is
in test_oslo_notify_nsq.py). Then a send to a server that is gone, and the
close after it, on each backend whose client waits outside the hub
(librdkafka in C, nats-py on its loop thread). What is particular to one
backend is in test_eventlet_hub_<backend>.py.
"""

import time
import uuid

import oslo_messaging
import pytest
from eventlet import patcher
from oslo_config import cfg

from notifbus import settings
from notifbus.embedded import EmbeddedBroker
from notifbus.record import Record
from notifbus.testing.kafka import KafkaCluster
from tests.functional import natsserver
from tests.oslo.hub import MAX_STALL_S, Ticker, green_round_trip


def test_process_is_patched():
    assert patcher.is_monkey_patched("thread")
    assert patcher.is_monkey_patched("socket")


def test_green_send_and_listen_do_not_block_the_hub(backend_url):
    backend, url = backend_url
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    # a topic and pool per backend: Tansu keeps a group's assignment
    # protocol, and refuses librdkafka's members in a group kafka-python's
    # used (tests/functional/conftest.py, tansu_rdkafka)
    seen, worst = green_round_trip(transport, topic=f"green-{backend}")
    assert sorted(seen) == list(range(200))
    assert worst < MAX_STALL_S, f"the hub stalled for {worst:.3f} s"


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _kafka_gone(server):
    return server.url("rdkafka", bootstrap_timeout_ms=1000)


def _nats_gone(server):
    return natsserver.url("gone", server.address, connect_timeout_s=1)


#: backend on a server of its own, which the test stops: (server class,
#: its URL, how it stops, partitions of the topic, time limit in seconds
#: of the send once it is gone: NATS's send waits out its time limit, so a
#: short one keeps the test short)
GONE = {
    "rdkafka-apache-kafka": (KafkaCluster, _kafka_gone,
                             lambda server: server.stop(kill=True), 1, 3),
    "rdkafka-tansu": (EmbeddedBroker, _kafka_gone,
                      lambda server: server.stop(kill=True), 1, 3),
    "nats": (natsserver.NatsServer, _nats_gone,
             lambda server: server.stop(), 2, 1),
}


@pytest.mark.parametrize("case", sorted(GONE))
def test_send_to_a_stopped_server_and_close_do_not_block_the_hub(case):
    """Waiting for a server that is gone (a failing send, then a close)
    leaves the hub running, and the close ends in time."""
    if case.startswith("rdkafka"):
        pytest.importorskip("confluent_kafka")
    kind, url_of, stop, partitions, send_timeout = GONE[case]
    server = kind().start()
    backend, _ = settings.open_backend(_conf(), url_of(server))
    topic = f"gone{uuid.uuid4().hex[:8]}"
    ticker = Ticker()
    try:
        assert backend.ensure_topic(topic, partitions, 10) == partitions
        assert backend.produce([Record(topic=topic, value=b"1")], [0],
                               5) == [None]
        stop(server)
        started = time.monotonic()
        results = backend.produce([Record(topic=topic, value=b"2")], [0],
                                  send_timeout)
        failed_in = time.monotonic() - started
        started = time.monotonic()
        backend.close(2.0)
        closed_in = time.monotonic() - started
    finally:
        ticker.stop()
        server.stop()
    assert results[0] is not None and results[0].retriable
    assert failed_in < 4
    assert closed_in < 4
    if case == "nats":
        # nats-py's loop thread ends with the close
        assert not backend._loop._thread.is_alive()
    assert ticker.worst < MAX_STALL_S, \
        f"the hub stalled for {ticker.worst:.3f} s"
