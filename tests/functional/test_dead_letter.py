"""Records that are not notifications: logged, counted, dead-lettered."""

import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import oslo_driver
from notifbus.backends.memory import backend as memory
from notifbus.record import Record


class Endpoint:
    def __init__(self):
        self.payloads = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.payloads.append(payload)


@pytest.fixture
def cluster_name():
    name = f"dead-{uuid.uuid4().hex[:8]}"
    yield name
    memory.reset(name)


def _listen_and_send(url, before, after, raw):
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="t")], [endpoint],
        executor="threading")
    server.start()
    notifier = oslo_messaging.Notifier(transport, "p", driver="messaging",
                                       topics=["t"])
    for seq in before:
        notifier.info({}, "e", seq)
    raw()
    for seq in after:
        notifier.info({}, "e", seq)
    deadline = time.monotonic() + 5
    expected = len(before) + len(after)
    while len(endpoint.payloads) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    server.stop()
    server.wait()
    counters = oslo_driver.counters(transport)
    transport.cleanup()
    return endpoint, counters


def test_oversized_record_is_dead_lettered_as_a_marker(cluster_name):
    cluster = memory.cluster(cluster_name)
    url = f"notifbus+memory://{cluster_name}/?max_message_bytes=400"

    def raw():
        cluster.produce([Record(topic="t.info", value=b"{" + b" " * 1000
                                + b"}")], [1], 2, 1 << 20)

    endpoint, counters = _listen_and_send(url, [1, 2], [3], raw)
    assert sorted(endpoint.payloads) == [1, 2, 3]
    dead = cluster.records("t.info.dead")
    assert len(dead) == 1 and dead[0].value == b""
    headers = dict(dead[0].headers)
    assert b"max_message_bytes" in headers["notifbus-error"]
    assert headers["notifbus-origin"] == b"t.info partition 1 offset 1"
    assert counters["invalid"] == 1 and counters["dead_lettered"] == 1


def test_dead_lettering_can_be_turned_off(cluster_name):
    cluster = memory.cluster(cluster_name)
    url = f"notifbus+memory://{cluster_name}/?dead_letter=false"

    def raw():
        cluster.produce([Record(topic="t.info", value=b"garbage")], [0], 2,
                        1 << 20)

    endpoint, counters = _listen_and_send(url, [1], [2], raw)
    assert sorted(endpoint.payloads) == [1, 2]
    assert cluster.partitions("t.info.dead") == 0
    assert counters["invalid"] == 1 and counters["dead_lettered"] == 0


def test_counters_refuse_other_transports():
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(
        conf, url="fake://")
    with pytest.raises(TypeError, match="notifbus"):
        oslo_driver.counters(transport)


def test_counters_are_logged_at_debug_once_an_interval(cluster_name,
                                                        caplog):
    import logging

    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(
        conf, url=f"notifbus+memory://{cluster_name}/"
                  f"?stats_log_interval_s=0.05")
    notifier = oslo_messaging.Notifier(transport, "p", driver="messaging",
                                       topics=["t"])
    with caplog.at_level(logging.DEBUG, logger="notifbus.bus"):
        notifier.info({}, "e", 1)
        time.sleep(0.06)
        notifier.info({}, "e", 2)
        notifier.info({}, "e", 3)
    logged = [r for r in caplog.records if "notifbus counters" in
              r.getMessage()]
    assert len(logged) == 1
    assert "'sent': 2" in logged[0].getMessage()
    transport.cleanup()


def test_each_pool_names_itself_in_its_dead_letter(cluster_name):
    """One record that is not a notification, read by three pools: three
    dead letters, each naming the pool that wrote it."""
    cluster = memory.cluster(cluster_name)
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(
        conf, url=f"notifbus+memory://{cluster_name}/")
    servers = [oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="t")], [Endpoint()],
        executor="threading", pool=pool) for pool in ("a", "b", "c")]
    for server in servers:
        server.start()
    cluster.produce([Record(topic="t.info", value=b"garbage")], [0], 2,
                    1 << 20)
    deadline = time.monotonic() + 5
    while (len(cluster.records("t.info.dead")) < 3
           and time.monotonic() < deadline):
        time.sleep(0.02)
    for server in servers:
        server.stop()
        server.wait()
    transport.cleanup()
    dead = cluster.records("t.info.dead")
    pools = sorted(dict(r.headers)["notifbus-pool"] for r in dead)
    assert pools == [b"a", b"b", b"c"]
    assert all(dict(r.headers)["notifbus-origin"] ==
               b"t.info partition 0 offset 0" for r in dead)
