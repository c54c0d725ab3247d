"""Metrics and health of a notifier and a listener through oslo.messaging
on Apache Kafka (kafka and rdkafka backends) and NATS: the counters, the
send latency and batch histograms, the consumer lag that goes to 0, and a
health report that tells an unreachable broker from a working one."""

import socket
import time
import uuid

import oslo_messaging
import prometheus_client
import pytest

from notifbus import health, metrics
from notifbus.metrics import prometheus
from tests.functional import natsserver
from tests.functional.conftest import FAST_GROUP
from tests.functional.faults import Endpoint, conf

COUNT = 20


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def values(metric_name):
    [family] = [f for f in metrics.collect()
                if f.metric.name == metric_name]
    return family.samples


def transport_url(request, backend):
    if backend == "nats":
        prefix = natsserver.unique_prefix("metrics")
        address = request.getfixturevalue("nats_server").address
        request.addfinalizer(
            lambda: natsserver.delete_streams(prefix, address))
        return natsserver.url(prefix, address)
    return request.getfixturevalue("apache_kafka").url(backend, **FAST_GROUP)


@pytest.mark.parametrize("backend", ["kafka", "rdkafka", "nats"])
def test_counters_histograms_and_lag_through_oslo(request, backend,
                                                  monkeypatch):
    monkeypatch.setattr(metrics, "ENABLED", True)  # as with an exporter
    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    pool = f"metrics-{backend}"
    transport = oslo_messaging.get_notification_transport(
        conf(), url=transport_url(request, backend))
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool=pool)
    server.start()
    try:
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="metrics.test", driver="messagingv2",
            topics=[topic], retry=3)
        for n in range(COUNT):
            notifier.info({}, "metrics.test", {"n": n})
        seen = sorted(endpoint.seen.get(timeout=20)["n"]
                      for _ in range(COUNT))
        assert seen == list(range(COUNT))
        pub = (backend, f"{topic}.info")
        sub = pub + (pool,)
        assert wait_for(lambda: values("notifbus_consumer_lag").get(sub)
                        == 0 and values("notifbus_committed").get(sub, 0))
        assert values("notifbus_sent")[pub] == COUNT
        assert values("notifbus_acked")[pub] == COUNT
        assert values("notifbus_failed")[pub] == 0
        assert values("notifbus_delivered")[sub] == COUNT
        assert values("notifbus_invalid")[sub] == 0
        latency = values("notifbus_send_seconds")[pub]
        assert latency.count == COUNT and latency.sum > 0
        assert values("notifbus_batch_records")[pub].sum == COUNT
        registry = prometheus_client.CollectorRegistry()
        prometheus.register(registry)
        text = prometheus_client.generate_latest(registry).decode()
        assert (f'notifbus_consumer_lag{{backend="{backend}",pool="{pool}",'
                f'topic="{topic}.info"}} 0.0') in text
        report = health.check(transport)
        assert report.healthy, report.describe()
        assert report.publisher.connected is True
        [listener] = report.listeners
        assert listener.connected is True and listener.pool == pool
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_health_of_an_unreachable_broker():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = oslo_messaging.get_notification_transport(
        conf(), url=f"notifbus+kafka://127.0.0.1:{port}/"
                    "?send_timeout_ms=1000&bootstrap_timeout_ms=500")
    try:
        assert health.check(transport).healthy  # nothing known yet
        oslo_messaging.Notifier(
            transport, publisher_id="metrics.test", driver="messagingv2",
            topics=["metrics-unreachable"], retry=0).info(
                {}, "metrics.test", {})
        report = health.check(transport)
        assert not report.healthy
        assert report.publisher.connected is False
        assert report.publisher.last_error
        assert report.describe().startswith("kafka publisher: not connected")
    finally:
        transport.cleanup()
