"""No loss through broker faults, with a log that survives restarts.

One Apache Kafka node restarts on its data directory; Tansu keeps its log
in a local S3 server (moto). A steady stream of
notifications is published through the oslo transport while a broker is
killed with SIGKILL and started again (or while one of two brokers sharing
the log dies); a listener consumes throughout. Every notification whose send
returned must be delivered at least once; a send that could not be made
must raise, never return and be lost.

Each scenario runs on both Kafka backends: ``kafka`` (kafka-python and
notifbus's own produce connections) and ``rdkafka`` (librdkafka). Two Tansu
brokers sharing a log both advertise node id 111; both clients still go on
through the survivor.
"""

import collections
import threading
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from tests.functional.conftest import FAST_GROUP

FAULT_OPTIONS = dict(FAST_GROUP, send_timeout_ms=1000, retry_backoff_ms=100,
                     retry_backoff_max_ms=500, request_timeout_ms=1000,
                     bootstrap_timeout_ms=1000)


class Stream:
    """Sends ``seq`` 0, 1, ... until stopped, counting the outcomes."""

    def __init__(self, transport, topic, retry, pause_s=0.005):
        self.transport = transport
        self.target = oslo_messaging.Target(topic=f"{topic}.info")
        self.retry = retry
        self.pause_s = pause_s
        self.acked, self.failed, self.errors = [], [], []
        self.attempted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        seq = 0
        while not self._stop.is_set():
            message = {"publisher_id": "stream", "event_type": "tick",
                       "payload": seq, "priority": "INFO"}
            self.attempted += 1
            try:
                # what oslo's Notifier calls; the Notifier itself would log
                # and drop the failure
                self.transport._send_notification(
                    self.target, {}, message, version=2.0, retry=self.retry)
                self.acked.append(seq)
            except oslo_messaging.MessageDeliveryFailure as exc:
                self.failed.append(seq)
                self.errors.append(str(exc))
            seq += 1
            time.sleep(self.pause_s)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(60)


class Recorder:
    def __init__(self):
        self.seen = collections.Counter()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen[payload] += 1


def _report(name, stream, recorder):
    delivered = set(recorder.seen)
    duplicated = sum(n - 1 for n in recorder.seen.values())
    lost = sorted(set(stream.acked) - delivered)
    print(f"\n{name}: sent {stream.attempted}, acked {len(stream.acked)}, "
          f"failed {len(stream.failed)}, delivered {len(delivered)}, "
          f"duplicated {duplicated}, lost {len(lost)}")
    return lost


def _wait_delivered(stream, recorder, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(stream.acked) <= set(recorder.seen):
            return
        time.sleep(0.2)


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _listen(conf, url, topic, recorder):
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [recorder],
        executor="threading", pool="restart")
    server.start()

    def stop():
        server.stop()
        server.wait()
        transport.cleanup()

    return stop


BACKENDS = ["kafka", "rdkafka"]


def _backend(name):
    """Skip the rdkafka scenarios where confluent-kafka is missing."""
    if name == "rdkafka":
        pytest.importorskip("confluent_kafka")
    return name


# both backends, both retry contracts, both brokers, without running
# every combination: the three-node cluster's fault runs
# (tests/cluster, make cluster-faults) cover broker crashes in depth
@pytest.mark.parametrize("restartable_broker, retry, backend", [
    ("apache-kafka", None, "kafka"),
    ("apache-kafka", 0, "rdkafka"),
    ("tansu", 0, "kafka"),
    ("tansu", None, "rdkafka"),
], ids=["apache-kafka-retry-forever-kafka", "apache-kafka-no-retry-rdkafka",
        "tansu-no-retry-kafka", "tansu-retry-forever-rdkafka"],
    indirect=["restartable_broker"])
def test_broker_killed_and_restarted_loses_nothing(restartable_broker, conf,
                                                   retry, backend):
    broker = restartable_broker
    topic = f"restart{uuid.uuid4().hex[:8]}"
    url = broker.url(_backend(backend), **FAULT_OPTIONS)
    recorder = Recorder()
    stop_listener = _listen(conf, url, topic, recorder)
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    stream = Stream(transport, topic, retry).start()
    try:
        time.sleep(1.5)
        broker.kill()
        time.sleep(3.0)  # longer than one send attempt
        broker.start_again()
        time.sleep(2.0)
        stream.stop()
        _wait_delivered(stream, recorder)
    finally:
        stream.stop()
        stop_listener()
        transport.cleanup()
    lost = _report(f"{backend} on {broker.name} restart, retry={retry}",
                   stream, recorder)
    assert stream.acked, "nothing was acknowledged"
    assert not lost, f"acknowledged but never delivered: {lost[:20]}"
    if retry is None:
        assert not stream.failed, "retry forever must not fail"
    else:
        assert stream.failed, "sends while the broker was down must fail"


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_brokers_sharing_a_log_survive_one_dying(s3_server, conf,
                                                     backend):
    bucket = s3_server.new_bucket()
    first = s3_server.broker(bucket).start()
    second = s3_server.broker(bucket).start()
    topic = f"pair{uuid.uuid4().hex[:8]}"
    query = "&".join(f"{k}={v}" for k, v in FAULT_OPTIONS.items())
    query += f"&broker_quirks={first.broker_quirks}"
    url = (f"notifbus+{_backend(backend)}://{first.address},"
           f"{second.address}/?{query}")
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
    lost = _report(f"{backend}, two brokers, one killed", stream, recorder)
    assert len(stream.acked) >= acked_before_kill + 50, (
        "publishing did not go on through the surviving broker")
    assert not stream.failed, stream.errors[:3]
    assert not lost, f"acknowledged but never delivered: {lost[:20]}"
