"""The driver under eventlet: green senders and listeners, hub never blocked.

A ticker greenthread wakes every 10 ms while a listener joins its group,
green senders publish and the listener consumes; if any call blocked the
hub (a real socket wait, a real lock), the ticker would stall for as long.
On Apache Kafka with the default settings, and on Tansu.
"""

import oslo_messaging
from eventlet import patcher
from oslo_config import cfg

from tests.oslo.hub import MAX_STALL_S, green_round_trip


def test_process_is_patched():
    assert patcher.is_monkey_patched("thread")
    assert patcher.is_monkey_patched("socket")


def test_green_send_and_listen_do_not_block_the_hub(kafka_url):
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf,
                                                           url=kafka_url)
    seen, worst = green_round_trip(transport)
    assert sorted(seen) == list(range(200))
    assert worst < MAX_STALL_S, f"the hub stalled for {worst:.3f} s"
