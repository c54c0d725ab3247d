"""Several nsqd hosts in one URL: each is a partition. The bus's
partitioner picks the nsqd of each notification (``key_hash`` keeps one
publisher on one nsqd), and a listener reads its pool's channel on every
nsqd."""

import json
import uuid

import oslo_messaging
import pytest
from notifbus_nsq import testing
from oslo_config import cfg

from notifbus.testing.conformance import Recorder


@pytest.fixture(scope="module")
def second_nsqd(nsqd_binary):
    with testing.nsqd(binary=nsqd_binary) as server:
        yield server


def _depth(server, topic):
    """Messages ``topic`` received on ``server`` (0 when it has none)."""
    stats = json.loads(server.http(f"/stats?format=json&topic={topic}",
                                   method="GET"))
    return sum(t["message_count"] for t in stats.get("topics", [])
               if t["topic_name"] == topic)


@pytest.mark.parametrize("partitioner", ["key_hash", "round_robin"])
def test_the_partitioner_picks_the_nsqd(nsqd, second_nsqd, partitioner):
    servers = (nsqd, second_nsqd)
    topic = f"hosts{uuid.uuid4().hex[:8]}"
    url = (f"notifbus+nsq://{nsqd.address},{second_nsqd.address}/"
           f"?partitioner={partitioner}")
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    try:
        recorder = Recorder()
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [recorder],
            executor="threading", pool="both")
        server.start()
        notifier = oslo_messaging.Notifier(
            transport, "compute.host-1", driver="messaging", topics=[topic])
        for seq in range(20):
            notifier.info({}, "spread", seq)
        got = recorder.get(20, 10.0) + recorder.drain(0.3)
        server.stop()
        server.wait()
    finally:
        transport.cleanup()
    assert sorted(p for _, _, p in got) == list(range(20))
    depths = sorted(_depth(s, f"{topic}.info") for s in servers)
    if partitioner == "key_hash":
        assert depths == [0, 20]  # one publisher, one nsqd: in order
    else:
        assert depths == [10, 10]
