"""The Kafka backend when things go wrong: clear errors, nothing hangs."""

import time
import uuid

import oslo_messaging
import pytest

from notifbus import errors
from notifbus.embedded import free_port
from tests.functional import security
from tests.functional.conftest import FAST_GROUP
from tests.functional.faults import (
    Endpoint,
    conf,
    message,
    send_through_a_restart,
    target,
)


def test_listener_on_unreachable_broker_fails_clearly():
    """With listener_start_timeout_ms=0; by default the listener waits
    (tests/functional/test_listener_waits.py)."""
    url = (f"notifbus+kafka://127.0.0.1:{free_port()}/"
           f"?bootstrap_timeout_ms=1000&send_timeout_ms=1500"
           f"&listener_start_timeout_ms=0")
    text = str(security.listener_fails(url, within=15))
    assert "could not subscribe" in text and "127.0.0.1" in text


def test_unknown_url_option_is_refused_before_connecting():
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf(), url="notifbus+kafka://127.0.0.1:1/?no_such_option=1")
    assert "no_such_option" in str(info.value)


def test_unknown_backend_is_named():
    with pytest.raises(errors.BackendNotFound) as info:
        oslo_messaging.get_notification_transport(
            conf(), url="notifbus+nosuchbus://127.0.0.1:1/")
    assert "nosuchbus" in str(info.value)


def test_password_never_appears_in_delivery_errors():
    url = (f"notifbus+kafka://user:s3cret-pw@127.0.0.1:{free_port()}/"
           f"?bootstrap_timeout_ms=500&send_timeout_ms=1000")
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
        transport._send_notification(target("secret"), {}, message(1),
                                     version=2.0, retry=0)
    transport.cleanup()
    assert "s3cret-pw" not in str(info.value)


def test_oversized_notification_names_the_limit(kafka_broker):
    transport = oslo_messaging.get_notification_transport(
        conf(), url=kafka_broker.url(max_message_bytes=1000))
    big = dict(message(1), payload="x" * 2000)
    with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
        transport._send_notification(target("big"), {}, big,
                                     version=2.0, retry=None)
    transport.cleanup()
    assert "max_message_bytes" in str(info.value)
    assert "1000" in str(info.value)


def test_cleanup_is_bounded_when_the_broker_is_gone(restartable_broker):
    broker = restartable_broker
    topic = f"gone{uuid.uuid4().hex[:8]}"
    try:
        transport = oslo_messaging.get_notification_transport(
            conf(), url=broker.url(close_timeout_ms=2000, **FAST_GROUP))
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
    send_through_a_restart(restartable_broker, restartable_broker.url(
        send_timeout_ms=1000, retry_backoff_ms=100, retry_backoff_max_ms=200,
        request_timeout_ms=1000, bootstrap_timeout_ms=1000))
