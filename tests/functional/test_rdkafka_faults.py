"""The rdkafka backend when things go wrong: clear errors, nothing hangs."""

import time
import uuid

import oslo_messaging
import pytest

from notifbus import errors, settings
from notifbus.embedded import free_port
from notifbus.record import Record
from tests import logcapture
from tests.functional import security
from tests.functional.conftest import FAST_GROUP
from tests.functional.faults import (
    Endpoint,
    conf,
    message,
    send_through_a_restart,
    target,
)
from tests.functional.test_rdkafka_conformance import rdkafka_url

FAIL_FAST = "bootstrap_timeout_ms=1000&send_timeout_ms=2000"


def unreachable(query=FAIL_FAST, credentials=""):
    return (f"notifbus+rdkafka://{credentials}127.0.0.1:{free_port()}/"
            f"?{query}")


def test_send_to_unreachable_broker_fails_clearly_and_in_time():
    url = unreachable()
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(target("nowhere"), {}, message(1),
                                         version=2.0, retry=0)
    finally:
        transport.cleanup()
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert "no Kafka broker answered at 127.0.0.1:" in text
    assert "within 1000 ms" in text
    assert "check the transport URL" in text


def test_retries_against_unreachable_broker_are_counted():
    """retry=2 makes three attempts of about bootstrap_timeout_ms each."""
    transport = oslo_messaging.get_notification_transport(
        conf(), url=unreachable("bootstrap_timeout_ms=500&"
                                "send_timeout_ms=5000&retry_backoff_ms=10"))
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure):
            transport._send_notification(target("nowhere"), {}, message(1),
                                         version=2.0, retry=2)
    finally:
        counters = transport._driver.counters.as_dict()
        transport.cleanup()
    took = time.monotonic() - started
    assert counters["retried"] == 2
    assert 1.4 < took < 6


def test_listener_on_unreachable_broker_fails_clearly():
    """With listener_start_timeout_ms=0; by default the listener waits
    (tests/functional/test_listener_waits.py)."""
    text = str(security.listener_fails(
        unreachable(FAIL_FAST + "&listener_start_timeout_ms=0"), within=10))
    assert "could not subscribe" in text and "127.0.0.1" in text
    assert "no Kafka broker answered" in text


def test_password_never_appears_in_errors_or_logs():
    url = unreachable(FAIL_FAST + "&security_protocol=SASL_PLAINTEXT",
                      credentials="user:s3cret-pw@")
    with logcapture.capture() as logs:
        transport = oslo_messaging.get_notification_transport(conf(),
                                                              url=url)
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(target("secret"), {}, message(1),
                                         version=2.0, retry=0)
        transport.cleanup()
    assert "s3cret-pw" not in str(info.value)
    assert logs.records, "nothing was captured"
    assert any("librdkafka" in r.getMessage() for r in logs.records)
    assert "s3cret-pw" not in logs.text()


def test_oversized_notification_names_the_limit(kafka_broker):
    transport = oslo_messaging.get_notification_transport(
        conf(), url=rdkafka_url(kafka_broker, max_message_bytes=1000))
    big = dict(message(1), payload="x" * 2000)
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(target("big"), {}, big,
                                         version=2.0, retry=None)
    finally:
        transport.cleanup()
    assert "max_message_bytes" in str(info.value)
    assert "1000" in str(info.value)


def test_record_over_the_client_limit_fails_alone(kafka_broker):
    """A record librdkafka refuses as too large comes back as
    RecordTooLarge, returned not raised; its neighbours are stored."""
    backend, _ = settings.open_backend(
        conf(), rdkafka_url(kafka_broker, message_max_bytes=20000))
    topic = f"large{uuid.uuid4().hex[:8]}"
    try:
        assert backend.ensure_topic(topic, 1, 10) == 1
        records = [Record(topic=topic, value=b"small"),
                   Record(topic=topic, value=b"x" * 30000),
                   Record(topic=topic, value=b"small too")]
        started = time.monotonic()
        results = backend.produce(records, [0, 0, 0], 10)
        assert time.monotonic() - started < 5
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], errors.RecordTooLarge)
        assert not results[1].retriable
        assert "message_max_bytes=20000" in str(results[1])
        stored = backend.read(topic, 0, 0, 10, 5)
        assert [r.value for r in stored] == [b"small", b"small too"]
    finally:
        backend.close(2)


def test_cleanup_is_bounded_when_the_broker_is_gone(restartable_broker):
    broker = restartable_broker
    topic = f"gone{uuid.uuid4().hex[:8]}"
    try:
        transport = oslo_messaging.get_notification_transport(
            conf(), url=rdkafka_url(broker, close_timeout_ms=2000,
                                    **FAST_GROUP))
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
            executor="threading", pool="gone")
        server.start()
        transport._send_notification(target(topic), {}, message(1),
                                     version=2.0, retry=0)
    finally:
        broker.kill()
    started = time.monotonic()
    server.stop()
    server.wait()
    transport.cleanup()
    assert time.monotonic() - started < 15


def test_send_while_broker_down_raises_then_recovers_with_retry(
        restartable_broker):
    send_through_a_restart(restartable_broker, rdkafka_url(
        restartable_broker, send_timeout_ms=1000, retry_backoff_ms=100,
        retry_backoff_max_ms=200, bootstrap_timeout_ms=1000))
