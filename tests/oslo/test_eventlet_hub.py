"""The driver under eventlet: green senders and listeners, hub never blocked.

A ticker greenthread wakes every 10 ms while a listener joins its group,
green senders publish and the listener consumes; if any call blocked the
hub (a real socket wait, a wait inside librdkafka or on nats-py's loop
thread, a real lock), the ticker would stall for as long. On every
backend: ``kafka`` and ``rdkafka`` on Apache Kafka with the default
settings and on Tansu, ``nats`` on nats-server (the NSQ plugin's check is
in test_oslo_notify_nsq.py). What is particular to one backend is in
test_eventlet_hub_<backend>.py.
"""

import oslo_messaging
from eventlet import patcher
from oslo_config import cfg

from tests.oslo.hub import MAX_STALL_S, green_round_trip


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
