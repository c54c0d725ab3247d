"""The rdkafka backend through broker faults, with a log that survives
restarts: the scenarios of ``test_kafka_restart.py`` over
``notifbus+rdkafka://``. Every notification whose send returned must be
delivered at least once; a send that could not be made must raise. Two
Tansu brokers sharing a log both advertise node id 111; librdkafka still
goes on through the survivor."""

import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from tests.functional.test_kafka_restart import (
    FAULT_OPTIONS,
    Recorder,
    Stream,
    _listen,
    _report,
    _wait_delivered,
)


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _rdkafka(url):
    return url.replace("notifbus+kafka://", "notifbus+rdkafka://", 1)


@pytest.mark.parametrize("retry", [None, 0], ids=["retry-forever",
                                                  "no-retry"])
def test_broker_killed_and_restarted_loses_nothing(s3_server, conf, retry):
    bucket = s3_server.new_bucket()
    broker = s3_server.broker(bucket).start()
    restarted = s3_server.broker(bucket, port=broker.port)
    topic = f"rdrestart{uuid.uuid4().hex[:8]}"
    url = _rdkafka(broker.url(**FAULT_OPTIONS))
    recorder = Recorder()
    stop_listener = _listen(conf, url, topic, recorder)
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    stream = Stream(transport, topic, retry).start()
    try:
        time.sleep(1.5)
        broker.stop(kill=True)
        time.sleep(3.0)  # longer than one send attempt
        restarted.start()
        time.sleep(2.0)
        stream.stop()
        _wait_delivered(stream, recorder)
    finally:
        stream.stop()
        stop_listener()
        transport.cleanup()
        broker.stop()
        restarted.stop()
    lost = _report(f"rdkafka restart, retry={retry}", stream, recorder)
    assert stream.acked, "nothing was acknowledged"
    assert not lost, f"acknowledged but never delivered: {lost[:20]}"
    if retry is None:
        assert not stream.failed, "retry forever must not fail"
    else:
        assert stream.failed, "sends while the broker was down must fail"


def test_two_brokers_sharing_a_log_survive_one_dying(s3_server, conf):
    bucket = s3_server.new_bucket()
    first = s3_server.broker(bucket).start()
    second = s3_server.broker(bucket).start()
    topic = f"rdpair{uuid.uuid4().hex[:8]}"
    query = "&".join(f"{k}={v}" for k, v in FAULT_OPTIONS.items())
    url = (f"notifbus+rdkafka://{first.address},{second.address}/?{query}")
    recorder = Recorder()
    stop_listener = _listen(conf, url, topic, recorder)
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    stream = Stream(transport, topic, retry=None).start()
    try:
        time.sleep(1.5)
        first.stop(kill=True)
        acked_before_kill = len(stream.acked)
        deadline = time.monotonic() + 30
        while (len(stream.acked) < acked_before_kill + 50
               and time.monotonic() < deadline):
            time.sleep(0.2)
        stream.stop()
        _wait_delivered(stream, recorder)
    finally:
        stream.stop()
        stop_listener()
        transport.cleanup()
        first.stop()
        second.stop()
    lost = _report("rdkafka, two brokers, one killed", stream, recorder)
    assert len(stream.acked) >= acked_before_kill + 50, (
        "publishing did not go on through the surviving broker")
    assert not stream.failed, stream.errors[:3]
    assert not lost, f"acknowledged but never delivered: {lost[:20]}"
