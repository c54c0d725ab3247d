"""Ceilometer's own notification agent (``make ceilometer``) on notifbus.

Issue 16's input 1 on Apache Kafka and on NATS JetStream: one
``volume.create.end`` whose ``size`` is ``"ten"``, which ceilometer's event
converter cannot convert (``ack_on_event_error = false``: REQUEUE), then
nine good notifications. The agent writes 9 events and 21 samples, each
once, and the bad notification goes to the dead-letter topic after its
redeliveries. A short backoff keeps the test quick; the default one is
measured in ``doc/source/ceilometer.rst``.
"""

import uuid

import pytest

from notifbus import codec
from tests.functional import ceilometer_agent
from tests.functional.conftest import FAST_GROUP

#: 3 redeliveries after 0.2, 0.4 and 0.8 s
REQUEUE = {"requeue_backoff_ms": 200, "max_redeliveries": 3}


@pytest.fixture(params=["apache-kafka", "nats", "nats-batches"])
def transport_url(request):
    """The URL of each case; ``nats-batches`` runs the agent with
    ``batch_size = 10``."""
    ceilometer_agent.require()
    group = {"consumer_group": f"ceilometer-{uuid.uuid4().hex[:6]}"}
    if request.param.startswith("nats"):
        from tests.functional import natsserver

        server = request.getfixturevalue("nats_server")
        prefix = natsserver.unique_prefix("nbceilo")
        yield natsserver.url(prefix, server.address, **group, **REQUEUE)
        natsserver.delete_streams(prefix, server.address)
    else:
        broker = request.getfixturevalue("apache_kafka")
        yield broker.url("kafka", **FAST_GROUP, **group, **REQUEUE)


def test_agent_writes_each_good_notification_once_and_dead_letters_the_bad(
        request, transport_url):
    batches = request.node.callspec.params["transport_url"].endswith(
        "batches")
    # in batches, oslo requeues the whole first batch: the good ones come
    # back each in a batch of its own, and only the bad one fails again
    result = ceilometer_agent.run(
        transport_url, timeout=60.0, settle=1.0, all_definitions=False,
        batch_size=10 if batches else 1, batch_timeout=1 if batches else None)
    log = "".join(result["log"])
    assert result["running"], log
    assert result["dead_letters"], f"nothing dead-lettered\n{log}"

    events = result["events"]
    assert len(events) == 9, log
    assert sorted(e["event_type"] for e in events) == sorted(
        ["compute.instance.create.end", "image.upload",
         "volume.create.end"] * 3)
    samples = result["samples"]
    assert len(samples) == result["expected_samples"] == 21, log
    assert len({(s["name"], s["resource_id"]) for s in samples}) == 21
    assert "vol-bad" not in {s["resource_id"] for s in samples}

    [dead] = result["dead_letters"]
    headers = dict(dead.headers)
    assert headers["notifbus-attempts"] == b"4"
    assert headers["notifbus-pool"].startswith(b"ceilometer-")
    assert headers["notifbus-error"] == b"the endpoint returned REQUEUE"
    _, message = codec.decode(dead.value)
    assert message["event_type"] == "volume.create.end"
    assert message["payload"]["size"] == "ten"

    # a WARNING at each requeue, an ERROR at the dead letter; each
    # redelivery waits twice as long as the one before
    log_times = result["requeue_log"]
    if batches:  # the nine good ones, requeued with the bad one once
        log_times = log_times[9:]
    assert [level for _, level, _ in log_times] == [
        "WARNING"] * 3 + ["ERROR"], log
    at = [t for t, _, _ in log_times]
    gaps = [b - a for a, b in zip(at, at[1:])]
    assert gaps[0] >= 0.19 and gaps[1] >= 0.39 and gaps[2] >= 0.79, gaps
