"""The Kafka backend over TLS, for real: stunnel in front of Tansu.

Each broker is a plain Tansu broker behind a ``stunnel`` TLS listener that
it advertises (see :mod:`tests.functional.tlsproxy`); the certificates are
made by the test: a CA, a server certificate for 127.0.0.1 and localhost,
one for another name, and a second CA that signed none of them.
"""

import threading
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.oslo_driver import ListenerStartError
from tests.functional.conftest import FAST_GROUP
from tests.functional.tlsproxy import (
    FAIL_FAST,
    QUICK_S,
    TlsBroker,
    needs_stunnel,
)

pytestmark = needs_stunnel


@pytest.fixture(scope="module")
def misnamed_broker(certs):
    """A broker whose certificate (from the right CA) names another host."""
    with TlsBroker(certs["dir"], *certs["misnamed"]) as broker:
        yield broker


class Recorder:
    def __init__(self):
        self.payloads = []
        self.arrived = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.payloads.append(payload)
        self.arrived.set()


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _message(payload):
    return {"publisher_id": "tls", "event_type": "tls.test",
            "payload": payload, "priority": "INFO"}


def _round_trip(url):
    """Notifier -> broker -> listener through the oslo transport at
    ``url``; returns what the listener received."""
    topic = f"tls{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(_conf(), url=url)
    recorder = Recorder()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [recorder],
        executor="threading", pool="tls")
    try:
        server.start()
        notifier = oslo_messaging.Notifier(transport, publisher_id="tls",
                                           driver="messaging",
                                           topics=[topic])
        payload = {"over": "tls", "id": uuid.uuid4().hex}
        notifier.info({}, "tls.test", payload)
        assert recorder.arrived.wait(30), "nothing arrived over TLS"
        return recorder.payloads
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def _send_fails(url):
    """One send with retry=0 through the transport at ``url``, which must
    fail quickly; returns the error text."""
    transport = oslo_messaging.get_notification_transport(_conf(), url=url)
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(
                oslo_messaging.Target(topic="tls.info"), {}, _message(1),
                version=2.0, retry=0)
    finally:
        transport.cleanup()
    assert time.monotonic() - started < QUICK_S
    return str(info.value)


def test_notifier_to_listener_over_tls(tls_broker, certs):
    url = tls_broker.url(security_protocol="SSL", ssl_cafile=certs["ca"],
                         **FAST_GROUP)
    payloads = _round_trip(url)
    assert len(payloads) == 1 and payloads[0]["over"] == "tls"


def test_certificate_from_another_ca_is_refused(tls_broker, certs):
    text = _send_fails(tls_broker.url(security_protocol="SSL",
                                      ssl_cafile=certs["other_ca"],
                                      **FAIL_FAST))
    assert "certificate verify failed" in text
    assert "unable to get local issuer certificate" in text
    assert "ssl_cafile" in text
    assert f"127.0.0.1:{tls_broker.port}" in text


def test_wrong_ca_is_not_retried(tls_broker, certs):
    """retry=None would retry a broker that is down forever; a certificate
    that no retry can cure fails at once."""
    transport = oslo_messaging.get_notification_transport(
        _conf(), url=tls_broker.url(security_protocol="SSL",
                                    ssl_cafile=certs["other_ca"],
                                    **FAIL_FAST))
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(
                oslo_messaging.Target(topic="tls.info"), {}, _message(1),
                version=2.0, retry=None)
    finally:
        transport.cleanup()
    assert time.monotonic() - started < QUICK_S
    assert "certificate verify failed" in str(info.value)


def test_listener_with_wrong_ca_fails_to_start_clearly(tls_broker, certs):
    transport = oslo_messaging.get_notification_transport(
        _conf(), url=tls_broker.url(security_protocol="SSL",
                                    ssl_cafile=certs["other_ca"],
                                    **FAIL_FAST))
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="tlsnowhere")], [Recorder()],
        executor="threading")
    started = time.monotonic()
    try:
        with pytest.raises(ListenerStartError) as info:
            server.start()
    finally:
        transport.cleanup()
    assert time.monotonic() - started < QUICK_S
    assert "certificate verify failed" in str(info.value)


def test_certificate_for_another_name_is_refused(misnamed_broker, certs):
    text = _send_fails(misnamed_broker.url(security_protocol="SSL",
                                           ssl_cafile=certs["ca"],
                                           **FAIL_FAST))
    assert "certificate verify failed" in text
    assert "IP address mismatch" in text
    assert "not issued for 127.0.0.1" in text
    assert "ssl_check_hostname=false" in text


def test_certificate_for_another_name_is_accepted_without_name_check(
        misnamed_broker, certs):
    url = misnamed_broker.url(security_protocol="SSL",
                              ssl_cafile=certs["ca"],
                              ssl_check_hostname="false", **FAST_GROUP)
    assert len(_round_trip(url)) == 1


def test_no_name_check_still_verifies_the_chain(misnamed_broker, certs):
    text = _send_fails(misnamed_broker.url(security_protocol="SSL",
                                           ssl_cafile=certs["other_ca"],
                                           ssl_check_hostname="false",
                                           **FAIL_FAST))
    assert "certificate verify failed" in text


def test_plaintext_client_on_the_tls_port_fails_clearly(tls_broker):
    text = _send_fails(tls_broker.url(**FAIL_FAST))
    assert f"127.0.0.1:{tls_broker.port} is a TLS listener" in text
    assert "security_protocol is PLAINTEXT" in text
    assert "set security_protocol to SSL" in text


def test_tls_client_on_a_plain_port_fails_clearly(tls_broker, certs):
    """kafka-python alone would wait for the broker's TLS answer forever."""
    url = (f"notifbus+kafka://127.0.0.1:{tls_broker.plain_port}/"
           f"?security_protocol=SSL&ssl_cafile={certs['ca']}"
           f"&bootstrap_timeout_ms=1000&send_timeout_ms=2000")
    text = _send_fails(url)
    assert "did not complete a TLS handshake" in text
    assert "is it a TLS listener?" in text
