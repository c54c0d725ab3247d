"""Passwords from the transport URL or the options never reach an error
message or a log record, whoever writes it (notifbus, oslo.messaging or
kafka-python, at DEBUG level).

Tansu checks no SASL login: logins that Apache Kafka accepts and refuses,
with PLAIN and SCRAM-SHA-512, on both Kafka backends, are in
:mod:`tests.functional.test_kafka_security`.
"""

import pytest

from notifbus.embedded import free_port
from tests import logcapture, tlscerts
from tests.functional.security import (
    assert_hidden,
    listener_fails,
    send_fails,
)
from tests.functional.tlsproxy import TlsBroker, stunnel_binary

PASSWORD = "Wr0ng-pa55w0rd"
KEY_PASSWORD = "k3y-pa55w0rd"
FAIL_FAST = ("bootstrap_timeout_ms=500&send_timeout_ms=1000"
             "&request_timeout_ms=1000&retry_backoff_ms=50")


def _send(url, retry):
    return send_fails(url, retry=retry, within=None)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_wrong_url_password_to_unreachable_broker_stays_hidden(mechanism):
    url = (f"notifbus+kafka://svc:{PASSWORD}@127.0.0.1:{free_port()}/"
           f"?security_protocol=SASL_PLAINTEXT&sasl_mechanism={mechanism}"
           f"&{FAIL_FAST}")
    with logcapture.capture() as logs:
        error = _send(url, retry=1)  # a retry logs a warning
    assert "127.0.0.1" in str(error)
    assert "retrying" in logs.text()
    assert_hidden(error, logs, PASSWORD)


def test_wrong_option_password_to_unreachable_broker_stays_hidden():
    url = (f"notifbus+kafka://127.0.0.1:{free_port()}/"
           f"?security_protocol=SASL_PLAINTEXT&sasl_username=svc"
           f"&sasl_password={PASSWORD}&{FAIL_FAST}")
    with logcapture.capture() as logs:
        error = _send(url, retry=0)
    assert_hidden(error, logs, PASSWORD)


def test_listener_start_error_hides_the_password():
    url = (f"notifbus+kafka://svc:{PASSWORD}@127.0.0.1:{free_port()}/"
           f"?security_protocol=SASL_PLAINTEXT&{FAIL_FAST}"
           f"&listener_start_timeout_ms=0")
    with logcapture.capture() as logs:
        error = listener_fails(url, within=None)
    assert_hidden(error, logs, PASSWORD)


@pytest.mark.skipif(stunnel_binary() is None,
                    reason="stunnel is not installed (Debian package "
                           "stunnel4)")
def test_passwords_sent_over_tls_stay_hidden(tmp_path):
    """The SASL handshake really happens here (over TLS, with a client
    certificate whose key is encrypted); Tansu refuses every mechanism.
    Logins that the broker checks: test_kafka_security."""
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
    assert "does not accept SASL mechanism SCRAM-SHA-256" in str(error)
    assert_hidden(error, logs, PASSWORD, KEY_PASSWORD)
