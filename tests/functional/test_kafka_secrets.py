"""Passwords from the transport URL or the options never reach an error
message or a log record, whoever writes it (notifbus, oslo.messaging or
kafka-python, at DEBUG level)."""

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.embedded import free_port
from notifbus.oslo_driver import ListenerStartError
from tests import logcapture, tlscerts
from tests.functional.tlsproxy import TlsBroker, stunnel_binary

PASSWORD = "Wr0ng-pa55w0rd"
KEY_PASSWORD = "k3y-pa55w0rd"
FAIL_FAST = ("bootstrap_timeout_ms=500&send_timeout_ms=1000"
             "&request_timeout_ms=1000&retry_backoff_ms=50")


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _send(url, retry):
    transport = oslo_messaging.get_notification_transport(_conf(), url=url)
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(
                oslo_messaging.Target(topic="secret.info"), {},
                {"publisher_id": "secrets", "event_type": "secret.test",
                 "payload": 1, "priority": "INFO"},
                version=2.0, retry=retry)
    finally:
        transport.cleanup()
    return info.value


def _assert_hidden(error, logs, *secrets):
    assert logs.records, "no log record was captured"
    texts = [str(error), repr(error), logs.text()]
    cause = error.__cause__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__
    for secret in secrets:
        for text in texts:
            assert secret not in text


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_wrong_url_password_to_unreachable_broker_stays_hidden(mechanism):
    url = (f"notifbus+kafka://svc:{PASSWORD}@127.0.0.1:{free_port()}/"
           f"?security_protocol=SASL_PLAINTEXT&sasl_mechanism={mechanism}"
           f"&{FAIL_FAST}")
    with logcapture.capture() as logs:
        error = _send(url, retry=1)  # a retry logs a warning
    assert "127.0.0.1" in str(error)
    assert "retrying" in logs.text()
    _assert_hidden(error, logs, PASSWORD)


def test_wrong_option_password_to_unreachable_broker_stays_hidden():
    url = (f"notifbus+kafka://127.0.0.1:{free_port()}/"
           f"?security_protocol=SASL_PLAINTEXT&sasl_username=svc"
           f"&sasl_password={PASSWORD}&{FAIL_FAST}")
    with logcapture.capture() as logs:
        error = _send(url, retry=0)
    _assert_hidden(error, logs, PASSWORD)


def test_listener_start_error_hides_the_password():
    url = (f"notifbus+kafka://svc:{PASSWORD}@127.0.0.1:{free_port()}/"
           f"?security_protocol=SASL_PLAINTEXT&{FAIL_FAST}")
    with logcapture.capture() as logs:
        transport = oslo_messaging.get_notification_transport(_conf(),
                                                              url=url)
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic="secret")], [],
            executor="threading")
        try:
            with pytest.raises(ListenerStartError) as info:
                server.start()
        finally:
            transport.cleanup()
    _assert_hidden(info.value, logs, PASSWORD)


@pytest.mark.skipif(stunnel_binary() is None,
                    reason="stunnel is not installed (Debian package "
                           "stunnel4)")
def test_passwords_sent_over_tls_stay_hidden(tmp_path):
    """The SASL exchange really happens here (over TLS, with a client
    certificate whose key is encrypted); the broker refuses it."""
    ca = tlscerts.make_ca(tmp_path)
    server = tlscerts.issue(ca, tmp_path, "server", ["127.0.0.1"])
    client_cert, client_key = tlscerts.issue(
        ca, tmp_path, "client", ["client.test"], key_password=KEY_PASSWORD)
    with TlsBroker(tmp_path, *server) as broker:
        url = broker.url(security_protocol="SASL_SSL",
                         sasl_mechanism="SCRAM-SHA-256", ssl_cafile=ca.path,
                         ssl_certfile=client_cert, ssl_keyfile=client_key,
                         ssl_password=KEY_PASSWORD)
        url = url.replace("://", f"://svc:{PASSWORD}@") + f"&{FAIL_FAST}"
        with logcapture.capture() as logs:
            error = _send(url, retry=0)
    assert "SASL" in logs.text() or "Sasl" in logs.text()
    _assert_hidden(error, logs, PASSWORD, KEY_PASSWORD)
