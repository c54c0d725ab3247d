"""The rdkafka backend over TLS, for real: stunnel in front of Tansu (see
:mod:`tests.functional.tlsproxy`), with certificates made by the test."""

import time
import uuid

import oslo_messaging
import pytest

from tests.functional.conftest import FAST_GROUP
from tests.functional.faults import Endpoint, conf, message, target
from tests.functional.tlsproxy import (
    FAIL_FAST,
    QUICK_S,
    needs_stunnel,
)

pytestmark = needs_stunnel


def rdkafka_url(broker, **query):
    return broker.url(**query).replace("notifbus+kafka://",
                                       "notifbus+rdkafka://", 1)


def test_notifier_to_listener_over_tls(tls_broker, certs):
    url = rdkafka_url(tls_broker, security_protocol="SSL",
                      ssl_cafile=certs["ca"], **FAST_GROUP)
    topic = f"tls{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool="tls")
    try:
        server.start()
        transport._send_notification(target(topic), {}, message("tls"),
                                     version=2.0, retry=0)
        assert endpoint.seen.get(timeout=30) == "tls"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_certificate_from_another_ca_fails_at_once(tls_broker, certs):
    """retry=None would retry a broker that is down forever; a certificate
    that no retry can cure fails at once, naming the broker and why."""
    transport = oslo_messaging.get_notification_transport(
        conf(), url=rdkafka_url(tls_broker, security_protocol="SSL",
                                ssl_cafile=certs["other_ca"], **FAIL_FAST))
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(target("tls"), {}, message(1),
                                         version=2.0, retry=None)
    finally:
        transport.cleanup()
    assert time.monotonic() - started < QUICK_S
    text = str(info.value)
    assert "certificate verify failed" in text
    assert f"127.0.0.1:{tls_broker.port}" in text
    assert "check the security settings" in text
