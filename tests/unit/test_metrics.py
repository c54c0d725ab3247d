"""Metric names, labels and values after sends, failures and deliveries on
the memory backend, their Prometheus exposition and their oslo.metrics
messages."""

import json
import socket
import urllib.request
import uuid

import oslo_messaging
import prometheus_client
import pytest
from oslo_context import context as oslo_context
from oslo_metrics import message_router

from notifbus import metrics
from notifbus.backends.memory import backend as memory
from notifbus.bus import Subscription
from notifbus.metrics import oslo, oslo_collector, prometheus
from notifbus.record import Record
from tests.unit.test_oslo_driver import (
    Collector,
    make_conf,
    notifier,
    start_listener,
    transport_for,
    wait_for,
)

#: name, stack and fast_executor_shutdown: tests/unit/conftest.py
pytestmark = pytest.mark.usefixtures("fast_executor_shutdown")


@pytest.fixture(autouse=True)
def _exporting(monkeypatch):
    """As once an exporter is configured: histograms observed."""
    monkeypatch.setattr(metrics, "ENABLED", True)


@pytest.fixture
def topic():
    """A topic of this test only: metrics are the process' own."""
    return f"metrics-{uuid.uuid4().hex[:12]}"


def values(metric_name):
    """``{label values: value}`` of one metric, now."""
    [family] = [f for f in metrics.collect()
                if f.metric.name == metric_name]
    return family.samples


def test_metric_table_names_types_and_labels():
    table = {m.name: (m.kind, m.labels) for m in metrics.METRICS}
    publisher = ("backend", "topic")
    listener = ("backend", "topic", "pool")
    assert table == {
        "notifbus_sent": ("counter", publisher),
        "notifbus_acked": ("counter", publisher),
        "notifbus_failed": ("counter", publisher),
        "notifbus_retried": ("counter", publisher),
        "notifbus_spooled": ("counter", publisher),
        "notifbus_delivered": ("counter", listener),
        "notifbus_committed": ("counter", listener),
        "notifbus_invalid": ("counter", listener),
        "notifbus_dead_lettered": ("counter", listener),
        "notifbus_redelivered": ("counter", listener),
        "notifbus_send_seconds": ("histogram", publisher),
        "notifbus_batch_records": ("histogram", publisher),
        "notifbus_consumer_lag": ("gauge", listener),
    }


def test_sends_and_deliveries_counted_per_topic_and_pool(stack, name, topic):
    TOPIC = f"{topic}.info"  # noqa: N806
    transport = transport_for(stack, name)
    collector = Collector(expected=3)
    start_listener(stack, transport, [collector], topic=topic,
                   pool="audit")
    ctxt = oslo_context.RequestContext()
    for n in range(3):
        notifier(transport, topic).info(ctxt, "e.t", {"n": n})
    assert collector.done.wait(2)
    assert wait_for(lambda: values("notifbus_committed").get(
        ("memory", TOPIC, "audit"), 0) >= 1)
    assert values("notifbus_sent")[("memory", TOPIC)] == 3
    assert values("notifbus_acked")[("memory", TOPIC)] == 3
    assert values("notifbus_failed")[("memory", TOPIC)] == 0
    assert values("notifbus_delivered")[("memory", TOPIC, "audit")] == 3
    latency = values("notifbus_send_seconds")[("memory", TOPIC)]
    assert latency.count == 3 and 0 < latency.sum < 3
    batches = values("notifbus_batch_records")[("memory", TOPIC)]
    assert batches.sum == 3 and batches.cumulative()[-1] == (
        float("inf"), batches.count)
    assert wait_for(lambda: values("notifbus_consumer_lag").get(
        ("memory", TOPIC, "audit")) == 0)


class _Source:
    """A minimal metrics source: what the oslo driver offers."""

    backend_name = "memory"

    def __init__(self, subscription):
        self.counters = subscription.counters
        self._subscription = subscription

    def subscriptions(self):
        return [self._subscription]


def test_lag_counts_what_the_listener_has_not_read(stack, name, topic):
    backend = memory.MemoryBackend([(name, None)], {"num_partitions": 1})
    backend.produce([Record(topic=topic, value=b"v")] * 5, [0] * 5, 1.0)
    subscription = Subscription(backend, [topic], "slow")
    stack(lambda: subscription.close(1.0))
    source = _Source(subscription)
    metrics.track(source)
    stack(lambda: metrics.untrack(source))
    assert subscription.wait_assigned(2)
    assert len(subscription.fetch(1.0, 2)) == 2
    assert values("notifbus_consumer_lag")[("memory", topic, "slow")] == 3
    assert values("notifbus_delivered")[("memory", topic, "slow")] == 2
    assert len(subscription.fetch(1.0, 10)) == 3
    assert values("notifbus_consumer_lag")[("memory", topic, "slow")] == 0


def test_failures_and_retries_counted(faults, stack, name, topic):
    TOPIC = f"{topic}.info"  # noqa: N806
    transport = transport_for(stack, name, query="retry_backoff_ms=0")
    faults.fail_next(2)
    notifier_ = oslo_messaging.Notifier(transport, publisher_id="p",
                                        driver="messagingv2",
                                        topics=[topic], retry=1)
    notifier_.info(oslo_context.RequestContext(), "e.t", {})  # 2 failures
    assert values("notifbus_failed")[("memory", TOPIC)] == 1
    assert values("notifbus_retried")[("memory", TOPIC)] == 1
    assert values("notifbus_sent")[("memory", TOPIC)] == 1
    assert values("notifbus_acked")[("memory", TOPIC)] == 0
    assert values("notifbus_send_seconds")[("memory", TOPIC)].count == 0


def test_invalid_records_counted_per_pool(stack, name, topic):
    TOPIC = f"{topic}.info"  # noqa: N806
    transport = transport_for(stack, name)
    start_listener(stack, transport, [Collector()], topic=topic,
                   pool="p1")
    transport._driver.backend.produce(
        [Record(topic=TOPIC, value=b"not json")], [0], 1.0)
    assert wait_for(lambda: values("notifbus_dead_lettered").get(
        ("memory", TOPIC, "p1")) == 1)
    assert values("notifbus_invalid")[("memory", TOPIC, "p1")] == 1
    # the dead letter itself was sent by the publisher, to its own topic
    assert values("notifbus_acked")[("memory", f"{topic}.info.dead")] == 1


def test_histograms_wait_for_an_exporter(stack, name, topic, monkeypatch):
    TOPIC = f"{topic}.info"  # noqa: N806
    monkeypatch.setattr(metrics, "ENABLED", False)
    notifier(transport_for(stack, name), topic).info(
        oslo_context.RequestContext(), "e.t", {})
    assert values("notifbus_acked")[("memory", TOPIC)] == 1
    assert values("notifbus_send_seconds")[("memory", TOPIC)].count == 0
    assert values("notifbus_batch_records")[("memory", TOPIC)].count == 0
    prometheus.register(prometheus_client.CollectorRegistry())
    assert metrics.ENABLED


def test_transports_with_the_same_labels_add_up(stack, name, topic):
    TOPIC = f"{topic}.info"  # noqa: N806
    for _ in range(2):
        notifier(transport_for(stack, name), topic).info(
            oslo_context.RequestContext(), "e.t", {})
    assert values("notifbus_sent")[("memory", TOPIC)] == 2


def test_cleaned_up_transport_not_collected(stack, name, topic):
    TOPIC = f"{topic}.info"  # noqa: N806
    transport = transport_for(stack, name)
    notifier(transport, topic).info(oslo_context.RequestContext(), "e.t", {})
    transport.cleanup()
    assert ("memory", TOPIC) not in values("notifbus_sent")


def test_prometheus_exposition_has_the_documented_names(stack, name,
                                                      topic):
    transport = transport_for(stack, name)
    collector = Collector()
    start_listener(stack, transport, [collector], topic=topic,
                   pool="audit")
    notifier(transport, topic).info(oslo_context.RequestContext(), "e.t", {})
    assert collector.done.wait(2)
    registry = prometheus_client.CollectorRegistry()
    prometheus.register(registry)
    assert prometheus.register(registry) is prometheus.register(registry)
    text = prometheus_client.generate_latest(registry).decode()
    labels = f'backend="memory",topic="{topic}.info"'
    assert f"notifbus_sent_total{{{labels}}} 1.0" in text
    assert f"notifbus_acked_total{{{labels}}} 1.0" in text
    assert ('notifbus_delivered_total{backend="memory",pool="audit",'
            f'topic="{topic}.info"}} 1.0') in text
    assert ('notifbus_send_seconds_bucket{backend="memory",le="+Inf",'
            f'topic="{topic}.info"}} 1.0') in text
    assert f"notifbus_send_seconds_count{{{labels}}} 1.0" in text
    assert ('notifbus_batch_records_bucket{backend="memory",le="1.0",'
            f'topic="{topic}.info"}} 1.0') in text
    assert "# TYPE notifbus_consumer_lag gauge" in text
    for metric in metrics.METRICS:
        exposed = metric.name + ("_total" if metric.kind == "counter"
                                 else "")
        assert f"# TYPE {exposed} {metric.kind}" in text


def test_prometheus_port_serves_metrics(stack, name, topic):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = make_conf(prometheus_port=port, prometheus_host="127.0.0.1")
    transport = transport_for(stack, name, conf=conf)
    notifier(transport, topic).info(oslo_context.RequestContext(), "e.t", {})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=5) as answer:
        text = answer.read().decode()
    assert f'notifbus_acked_total{{backend="memory",topic="{topic}.info"}}' \
        in text


def test_oslo_metrics_messages_carry_changes_only():
    sent = metrics.Metric("notifbus_sent", "counter", ("backend", "topic"),
                          "", "", "sent")
    lag = metrics.Metric("notifbus_consumer_lag", "gauge",
                         ("backend", "topic", "pool"), "", "", None)
    histogram = metrics.Histogram((1.0, 2.0))
    latency = metrics.Metric("notifbus_send_seconds", "histogram",
                             ("backend", "topic"), "seconds", "", "x")

    def snapshot(count, records, seen):
        before = histogram.copy()
        for value in seen:
            before.observe(value)
        return [metrics.Family(sent, {("kafka", "t"): count}),
                metrics.Family(lag, {("kafka", "t", "p"): records}),
                metrics.Family(latency, {("kafka", "t"): before})]

    first = snapshot(3, 7, [0.5])
    found = oslo.messages(None, first, "nova-compute")
    assert found[0] == {
        "module": "notifbus", "name": "notifbus_sent",
        "action": {"action": "inc", "value": 3},
        "labels": {"backend": "kafka", "topic": "t",
                   "process": "nova-compute"}}
    assert found[1]["action"] == {"action": "observe", "value": 7}
    assert found[2]["action"] == {"action": "observe", "value": {
        "buckets": [1, 0, 0], "sum": 0.5}}
    assert oslo.messages(first, first, "x") == []
    assert [m["action"] for m in oslo.messages(
        first, snapshot(5, 7, [0.5, 3.0]), "x")] == [
        {"action": "inc", "value": 2},
        {"action": "observe", "value": {"buckets": [0, 0, 1], "sum": 3.0}}]


def test_oslo_metrics_push_to_collector_with_notifbus_definitions(
        stack, name, topic, tmp_path, monkeypatch):
    """What the pusher sends, through oslo.metrics' own router with
    notifbus's definitions, comes out of the collector's Prometheus
    registry."""
    path = str(tmp_path / "metrics.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    stack(server.close)
    transport = transport_for(stack, name)
    notifier(transport, topic).info(oslo_context.RequestContext(), "e.t", {})
    pusher = oslo.Pusher(path, "svc", interval_s=3600)
    stack(pusher.stop)
    pusher.push()
    definitions = oslo_collector.Definitions()
    monkeypatch.setattr(oslo_collector._Router, "definitions", definitions)
    router = oslo_collector._Router()
    server.settimeout(0.2)
    while True:
        try:
            raw = server.recv(65536)
        except socket.timeout:
            break
        assert json.loads(raw)["module"] == "notifbus"
        router.process(raw)
    registry = prometheus_client.CollectorRegistry()
    registry.register(definitions)
    text = prometheus_client.generate_latest(registry).decode()
    labels = f'backend="memory",process="svc",topic="{topic}.info"'
    assert f"notifbus_acked_total{{{labels}}} 1.0" in text
    assert f"notifbus_send_seconds_count{{{labels}}} 1.0" in text
    assert isinstance(router, message_router.MessageRouter)


def test_oslo_metrics_collector_down_logged_once(stack, name, topic,
                                                 tmp_path, caplog):
    notifier(transport_for(stack, name), topic).info(
        oslo_context.RequestContext(), "e.t", {})
    pusher = oslo.Pusher(str(tmp_path / "absent.sock"), "svc", 3600)
    stack(pusher.stop)
    for _ in range(3):
        pusher.push()
    warnings = [r for r in caplog.records
                if "cannot send metrics to oslo.metrics" in r.getMessage()]
    assert len(warnings) == 1
