"""Tests of the oslo.messaging driver, through oslo's public API, over the
in-memory backend."""

import logging
import threading
import time

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_messaging import conffixture
from oslo_messaging._drivers import impl_kafka

from notifbus import codec, errors, opts, oslo_driver
from notifbus.backends.memory import backend as memory
from notifbus.record import Record

WAIT = 2.0


#: name, stack and fast_executor_shutdown: tests/unit/conftest.py
pytestmark = pytest.mark.usefixtures("fast_executor_shutdown")


def make_conf(**overrides):
    """Fresh configuration; ``overrides`` of ``[notifbus]`` options."""
    conf = cfg.ConfigOpts()
    conf([])
    opts.register_opts(conf)
    settings = dict(poll_timeout_ms=20, assign_timeout_ms=1000,
                    num_partitions=1, close_timeout_ms=500)
    settings.update(overrides)
    for key, value in settings.items():
        conf.set_override(key, value, group=opts.GROUP)
    return conf


def transport_for(stack, name, query="", conf=None, vhost=""):
    conf = conf if conf is not None else make_conf()
    url = f"notifbus+memory://{name}/{vhost}" + (f"?{query}" if query
                                                  else "")
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    stack(transport.cleanup)
    return transport


def start_listener(stack, transport, endpoints, topic="notif", pool=None,
                   batch=None, allow_requeue=False, exchange=None):
    target = oslo_messaging.Target(topic=topic, exchange=exchange)
    if batch is None:
        server = oslo_messaging.get_notification_listener(
            transport, [target], endpoints, executor="threading",
            pool=pool, allow_requeue=allow_requeue)
    else:
        size, timeout = batch
        server = oslo_messaging.get_batch_notification_listener(
            transport, [target], endpoints, executor="threading",
            pool=pool, batch_size=size, batch_timeout=timeout)
    server.start()

    def stop():
        server.stop()
        server.wait()

    stack(stop)
    return server


def notifier(transport, topic="notif", publisher_id="compute.host1"):
    return oslo_messaging.Notifier(transport, publisher_id=publisher_id,
                                   driver="messagingv2", topics=[topic],
                                   retry=0)


class Collector:
    """Notification endpoint that records every info notification."""

    def __init__(self, expected=1, results=()):
        self.expected = expected
        self.seen = []
        self.done = threading.Event()
        self._results = list(results)
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.seen.append((ctxt, publisher_id, event_type, payload,
                              metadata))
            if len(self.seen) >= self.expected:
                self.done.set()
            if self._results:
                return self._results.pop(0)
        return None

    @property
    def payloads(self):
        with self._lock:
            return [seen[3] for seen in self.seen]


def wait_for(condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_notifier_to_listener(stack, name):
    transport = transport_for(stack, name)
    collector = Collector()
    start_listener(stack, transport, [collector])
    ctxt = oslo_context.RequestContext(user_id="alice",
                                       request_id="req-1")
    notifier(transport).info(ctxt, "compute.instance.create.end",
                             {"id": 42})
    assert collector.done.wait(WAIT)
    [(ctxt, publisher_id, event_type, payload, metadata)] = collector.seen
    assert ctxt["user"] == "alice"
    assert ctxt["request_id"] == "req-1"
    assert publisher_id == "compute.host1"
    assert event_type == "compute.instance.create.end"
    assert payload == {"id": 42}
    assert set(metadata) >= {"message_id", "timestamp"}
    driver = transport._driver
    assert wait_for(lambda: driver.counters.committed >= 1)
    assert memory.cluster(name).committed("notifbus") == {
        ("notif.info", 0): 1}


def test_records_are_oslo_bytes_keyed_by_publisher(stack, name):
    transport = transport_for(stack, name)
    notifier(transport).info(oslo_context.RequestContext(user_id="u"),
                             "e.t", {"n": 1})
    [record] = memory.cluster(name).records("notif.info")
    assert record.key == b"compute.host1"
    ctxt, message = impl_kafka.unpack_message(record.value)
    assert ctxt["user"] == "u"
    assert (message["event_type"], message["payload"]) == ("e.t", {"n": 1})
    assert record.value == codec.encode_compact(ctxt, message, 2.0)


def test_many_notifications_in_order(stack, name):
    transport = transport_for(stack, name)
    collector = Collector(expected=30)
    start_listener(stack, transport, [collector])
    sender = notifier(transport)
    for seq in range(30):
        sender.info({}, "e", {"seq": seq})
    assert collector.done.wait(WAIT)
    assert [p["seq"] for p in collector.payloads] == list(range(30))


class BatchCollector:
    def __init__(self, expected):
        self.expected = expected
        self.batches = []
        self.done = threading.Event()

    def info(self, messages):
        self.batches.append([m["payload"]["seq"] for m in messages])
        if sum(len(b) for b in self.batches) >= self.expected:
            self.done.set()


def test_batch_listener(stack, name):
    transport = transport_for(stack, name)
    sender = notifier(transport)
    for seq in range(7):
        sender.info({}, "e", {"seq": seq})
    collector = BatchCollector(expected=7)
    start_listener(stack, transport, [collector], batch=(3, 0.2))
    assert collector.done.wait(WAIT)
    assert collector.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_two_pools_each_get_everything(stack, name):
    transport = transport_for(stack, name)
    first, second = Collector(expected=10), Collector(expected=10)
    start_listener(stack, transport, [first], pool="pool-a")
    start_listener(stack, transport, [second], pool="pool-b")
    sender = notifier(transport)
    for seq in range(10):
        sender.info({}, "e", {"seq": seq})
    assert first.done.wait(WAIT)
    assert second.done.wait(WAIT)
    assert sorted(p["seq"] for p in first.payloads) == list(range(10))
    assert sorted(p["seq"] for p in second.payloads) == list(range(10))
    cluster = memory.cluster(name)
    assert wait_for(lambda: cluster.committed("pool-a") == {
        ("notif.info", 0): 10})
    assert wait_for(lambda: cluster.committed("pool-b") == {
        ("notif.info", 0): 10})


def test_one_pool_splits_without_overlap(stack, name):
    transport = transport_for(stack, name, conf=make_conf(num_partitions=2))
    first, second = Collector(), Collector()
    start_listener(stack, transport, [first], pool="shared")
    start_listener(stack, transport, [second], pool="shared")
    sender = notifier(transport)
    for seq in range(20):
        sender.info({}, "e", {"seq": seq})
    assert wait_for(
        lambda: len(first.payloads) + len(second.payloads) >= 20)
    time.sleep(0.05)  # anything extra would show up now
    one = [p["seq"] for p in first.payloads]
    two = [p["seq"] for p in second.payloads]
    assert sorted(one + two) == list(range(20))
    assert one and two  # round robin: both partitions carry notifications


def test_rpc_is_not_supported(name):
    conf = make_conf()
    conffixture.ConfFixture(conf)  # registers the RPC client's options
    transport = oslo_messaging.get_rpc_transport(
        conf, url=f"notifbus+memory://{name}/")
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic="compute"))
        for attempt in (lambda: client.cast({}, "reboot"),
                        lambda: client.call({}, "reboot")):
            with pytest.raises(NotImplementedError) as info:
                attempt()
            message = str(info.value)
            assert "notifbus" in message
            assert "notifications" in message
    finally:
        transport.cleanup()


def test_rpc_server_is_not_supported(name):
    conf = make_conf()
    transport = oslo_messaging.get_rpc_transport(
        conf, url=f"notifbus+memory://{name}/")
    try:
        server = oslo_messaging.get_rpc_server(
            transport, oslo_messaging.Target(topic="compute", server="s1"),
            [object()], executor="threading")
        with pytest.raises(NotImplementedError, match="notifications"):
            server.start()
    finally:
        transport.cleanup()


@pytest.mark.parametrize("vhost", ["", "vh1"])
def test_topic_named_as_oslo_kafka_driver(stack, name, vhost):
    transport = transport_for(stack, name, vhost=vhost)
    oslo_messaging.Notifier(transport, publisher_id="p", driver="messaging",
                            topics=["notifications"]).error({}, "e", {})
    expected = impl_kafka.target_to_topic(
        oslo_messaging.Target(topic="notifications"), "error",
        vhost or None)
    assert expected == "notifications.error" + (f".{vhost}" if vhost
                                                else "")
    cluster = memory.cluster(name)
    assert len(cluster.records(expected)) == 1
    assert transport._driver.topic_for(
        oslo_messaging.Target(topic="notifications"), "error") == expected


def test_vhost_on_both_sides(stack, name):
    transport = transport_for(stack, name, vhost="tenant1")
    collector = Collector()
    start_listener(stack, transport, [collector])
    notifier(transport).info({}, "e", {"seq": 1})
    assert collector.done.wait(WAIT)
    assert len(memory.cluster(name).records("notif.info.tenant1")) == 1
    assert memory.cluster(name).records("notif.info") == []


def test_exchange_in_topic(stack, name):
    conf = make_conf()
    conffixture.ConfFixture(conf)  # registers control_exchange
    conf.set_override("control_exchange", "nova")
    transport = transport_for(stack, name, query="exchange_in_topic=true",
                              conf=conf)
    collector = Collector()
    start_listener(stack, transport, [collector])
    notifier(transport).info({}, "e", {"seq": 1})
    assert collector.done.wait(WAIT)
    cluster = memory.cluster(name)
    assert len(cluster.records("nova.notif.info")) == 1
    assert cluster.partitions("notif.info") == 0
    driver = transport._driver
    assert driver.topic_for(oslo_messaging.Target(
        topic="notif", exchange="glance"), "warn") == "glance.notif.warn"


def test_exchange_not_in_topic_by_default(stack, name):
    transport = transport_for(stack, name)
    assert transport._driver.topic_for(oslo_messaging.Target(
        topic="notif", exchange="glance"), "warn") == "notif.warn"


@pytest.mark.parametrize("topic", ["bad topic", "caf\u00e9", "a/b",
                                   "x" * 250])
def test_invalid_topic_name(stack, name, topic):
    transport = transport_for(stack, name)
    with pytest.raises(errors.ConfigError) as info:
        transport._send_notification(
            oslo_messaging.Target(topic=topic), {}, {"payload": {}},
            version=2.0, retry=0)
    assert "not a valid topic name" in str(info.value)
    assert memory.cluster(name).partitions(topic) == 0


def test_invalid_topic_name_for_listener(stack, name):
    transport = transport_for(stack, name)
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="no spaces")], [Collector()],
        executor="threading")
    with pytest.raises(errors.ConfigError, match="'no spaces.info'"):
        server.start()


def test_max_message_bytes_from_the_url_is_the_memory_backend_limit(
        stack, name):
    # the [notifbus] option reaches the backend, which applies the given
    # value rather than a default of its own
    transport = transport_for(stack, name, query="max_message_bytes=3000000")
    payload = "x" * 2 * 1024 * 1024
    transport._send_notification(
        oslo_messaging.Target(topic="notif.info"), {},
        {"publisher_id": "p", "payload": payload}, version=2.0, retry=0)
    [stored] = memory.cluster(name).records("notif.info")
    assert len(stored.value) > 2 * 1024 * 1024


def test_a_notifier_sends_2_mb_with_max_message_bytes_from_the_url(
        stack, name):
    # through oslo's Notifier, which logs a failed send and returns: the
    # record must be stored, not refused at the memory backend's former
    # own limit of 1 MiB
    transport = transport_for(stack, name, query="max_message_bytes=3000000")
    notifier(transport).info({}, "big.event", {"data": "x" * 2000000})
    [stored] = memory.cluster(name).records("notif.info")
    assert len(stored.value) > 2000000


def test_cluster_down_retry_zero_fails_fast(faults, stack, name):
    transport = transport_for(stack, name)
    faults.set_down(True)
    started = time.monotonic()
    with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
        transport._send_notification(
            oslo_messaging.Target(topic="notif.info"), {},
            {"publisher_id": "p", "payload": {}}, version=2.0, retry=0)
    assert time.monotonic() - started < 1.0
    message = str(info.value)
    assert "notifbus+memory" in message
    assert "'notif.info'" in message
    assert "down" in message
    assert isinstance(info.value.__cause__, errors.DeliveryError)
    assert transport._driver.counters.failed == 1


def test_too_large_is_a_delivery_failure(stack, name):
    transport = transport_for(stack, name, query="max_message_bytes=200")
    with pytest.raises(oslo_messaging.MessageDeliveryFailure,
                       match="max_message_bytes"):
        transport._send_notification(
            oslo_messaging.Target(topic="notif.info"), {},
            {"payload": "x" * 300}, version=2.0, retry=None)
    assert memory.cluster(name).records("notif.info") == []


def test_garbage_record_skipped(stack, name):
    transport = transport_for(stack, name)
    sender = notifier(transport)
    sender.info({}, "e", {"seq": 1})
    backend = memory.MemoryBackend([(name, None)], {})
    assert backend.produce([Record(topic="notif.info", value=b"\xffjunk")],
                           [0], 1.0) == [None]
    sender.info({}, "e", {"seq": 2})
    collector = Collector(expected=2)
    start_listener(stack, transport, [collector])
    assert collector.done.wait(WAIT)
    assert collector.payloads == [{"seq": 1}, {"seq": 2}]
    driver = transport._driver
    assert driver.counters.invalid == 1
    # The garbage is committed past too, not read again by the group.
    assert wait_for(lambda: memory.cluster(name).committed("notifbus") == {
        ("notif.info", 0): 3})


def test_requeue_redelivers_only_the_requeued_notification(stack, name):
    transport = transport_for(stack, name,
                              conf=make_conf(requeue_backoff_ms=10))
    collector = Collector(
        expected=3, results=[oslo_messaging.NotificationResult.REQUEUE])
    start_listener(stack, transport, [collector], allow_requeue=True)
    sender = notifier(transport)
    sender.info({}, "e", {"seq": 1})
    sender.info({}, "e", {"seq": 2})
    assert collector.done.wait(WAIT)
    # Both are committed only once seq 1 was handled the second time.
    assert wait_for(lambda: memory.cluster(name).committed("notifbus") == {
        ("notif.info", 0): 2})
    # seq 1 was requeued: it alone comes again, after seq 2.
    assert [p["seq"] for p in collector.payloads] == [1, 2, 1]
    assert transport._driver.counters.redelivered == 1


class Converter:
    """Like ceilometer's converter: raises on a size that is not a
    number, which oslo's dispatcher turns into REQUEUE."""

    def __init__(self):
        self.sizes = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.sizes.append(int(payload["size"]))


def test_requeued_too_often_is_dead_lettered_with_its_story(stack, name,
                                                            caplog):
    transport = transport_for(stack, name, conf=make_conf(
        requeue_backoff_ms=10, max_redeliveries=2))
    converter = Converter()
    start_listener(stack, transport, [converter], pool="agent",
                   allow_requeue=True)
    sender = notifier(transport)
    with caplog.at_level(logging.WARNING, logger="notifbus"):
        sender.info({}, "volume.create.end", {"size": "ten"})
        for size in range(1, 10):
            sender.info({}, "volume.create.end", {"size": size})
        cluster = memory.cluster(name)
        assert wait_for(lambda: cluster.partitions("notif.info.dead") and
                        cluster.records("notif.info.dead"))
    assert sorted(converter.sizes) == list(range(1, 10))
    [dead] = cluster.records("notif.info.dead")
    headers = dict(dead.headers)
    assert headers["notifbus-origin"] == b"notif.info partition 0 offset 0"
    assert headers["notifbus-pool"] == b"agent"
    assert headers["notifbus-attempts"] == b"3"
    assert headers["notifbus-error"] == (
        b"the endpoint raised ValueError: invalid literal for int() with "
        b"base 10: 'ten'")
    assert b'\\"ten\\"' in dead.value  # the notification itself
    assert wait_for(lambda: cluster.committed("agent") == {
        ("notif.info", 0): 10})
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "requeued" in
                r.getMessage()]
    errors_ = [r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR and "notifbus" in r.name]
    assert len(warnings) == 2
    for message in warnings + errors_:
        assert "notif.info partition 0 offset 0" in message
        assert "'agent'" in message
    assert len(errors_) == 1 and "notif.info.dead" in errors_[0]
    counts = transport._driver.counters
    assert counts.redelivered == 2 and counts.dead_lettered == 1


def test_batch_without_timeout_waits_for_batch_size(stack, name):
    transport = transport_for(stack, name)
    batches = []

    class Batches:
        def info(self, messages):
            batches.append([m["payload"]["seq"] for m in messages])

    start_listener(stack, transport, [Batches()], batch=(5, None))
    sender = notifier(transport)
    for seq in range(3):
        sender.info({}, "e", {"seq": seq})
    time.sleep(0.5)
    assert batches == []  # oslo's contract: wait for batch_size
    for seq in range(3, 5):
        sender.info({}, "e", {"seq": seq})
    assert wait_for(lambda: batches == [[0, 1, 2, 3, 4]])


def test_pool_wider_than_partitions_is_logged(stack, name, caplog,
                                              monkeypatch):
    monkeypatch.setattr(oslo_driver.NotificationListener,
                        "share_check_interval_s", 0.05)
    transport = transport_for(stack, name, conf=make_conf(num_partitions=1))

    def idle_warnings():
        return [r.getMessage() for r in caplog.records
                if "reads no partition" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="notifbus"):
        start_listener(stack, transport, [Collector()], pool="workers")
        time.sleep(0.3)
        assert idle_warnings() == []
        # whichever of the two ends idle says so, once
        start_listener(stack, transport, [Collector()], pool="workers")
        assert wait_for(idle_warnings)
        time.sleep(0.3)
    [warning] = idle_warnings()
    assert "'workers'" in warning and "topic notif.info" in warning
    assert "has 1 partitions" in warning and "at least 2" in warning
    assert "num_partitions" in warning


def test_cleanup_returns_promptly(stack, name):
    transport = transport_for(stack, name)
    collector = Collector()
    server = start_listener(stack, transport, [collector])
    notifier(transport).info({}, "e", {"seq": 1})
    assert collector.done.wait(WAIT)
    started = time.monotonic()
    server.stop()
    server.wait()
    transport.cleanup()
    assert time.monotonic() - started < 1.0
    # The publisher is closed: a send fails at once instead of waiting.
    started = time.monotonic()
    with pytest.raises(oslo_messaging.MessageDeliveryFailure,
                       match="closed"):
        transport._send_notification(
            oslo_messaging.Target(topic="notif.info"), {}, {"payload": {}},
            version=2.0, retry=None)
    assert time.monotonic() - started < 1.0


def test_cleanup_with_a_listener_still_running(stack, name):
    transport = transport_for(stack, name)
    start_listener(stack, transport, [Collector()])
    started = time.monotonic()
    transport.cleanup()
    assert time.monotonic() - started < 1.0


def test_listener_resumes_after_restart(stack, name):
    transport = transport_for(stack, name)
    sender = notifier(transport)
    first = Collector(expected=2)
    server = start_listener(stack, transport, [first], pool="p")
    sender.info({}, "e", {"seq": 1})
    sender.info({}, "e", {"seq": 2})
    assert first.done.wait(WAIT)
    server.stop()
    server.wait()
    sender.info({}, "e", {"seq": 3})
    second = Collector()
    start_listener(stack, transport, [second], pool="p")
    assert second.done.wait(WAIT)
    time.sleep(0.05)
    assert second.payloads == [{"seq": 3}]


def test_incoming_ids_are_the_records_places_in_the_log(stack, name):
    transport = transport_for(stack, name)
    sender = notifier(transport)
    sender.info({}, "e", {"seq": 1})
    sender.info({}, "e", {"seq": 2})
    driver = transport._driver
    driver.listen_for_notifications(
        [(oslo_messaging.Target(topic="notif"), "info")], None, 1, None)
    listener = driver._listeners[-1]
    got = listener.poll(timeout=WAIT, batch_size=2)
    assert [m.msg_id for m in got] == ["notif.info:0:0", "notif.info:0:1"]
    assert [m.message["payload"] for m in got] == [{"seq": 1}, {"seq": 2}]


def test_dead_letter_reason_belongs_to_its_own_dispatch(stack, name):
    transport = transport_for(stack, name,
                              conf=make_conf(max_redeliveries=0))

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            if payload == "raise":
                raise ValueError("boom")
            return oslo_messaging.NotificationResult.REQUEUE

    start_listener(stack, transport, [Endpoint()], allow_requeue=True)
    sender = notifier(transport)
    cluster = memory.cluster(name)

    def dead():
        if not cluster.partitions("notif.info.dead"):
            return []
        return [dict(r.headers)["notifbus-error"]
                for r in cluster.records("notif.info.dead")]

    sender.info({}, "e", "raise")
    assert wait_for(lambda: len(dead()) == 1)
    sender.info({}, "e", "requeue")
    assert wait_for(lambda: len(dead()) == 2)
    assert dead() == [b"the endpoint raised ValueError: boom",
                      b"the endpoint returned REQUEUE"]
