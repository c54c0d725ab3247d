"""Both Kafka backends over TLS, for real: stunnel in front of Tansu.

Each broker is a plain Tansu broker behind a ``stunnel`` TLS listener that
it advertises (see :mod:`tests.functional.tlsproxy`); the certificates are
made by the test: a CA, a server certificate for 127.0.0.1 and localhost,
one for another name, and a second CA that signed none of them.

Apache Kafka's own TLS listener covers the round trip, the other CA, the
name mismatch (connecting by a name the certificate lacks), the plaintext
client on the TLS port and the listener start, on both Kafka backends:
:mod:`tests.functional.test_kafka_security`. What stays here alone: a
certificate for a host name reached by IP address, the name check turned
off, and a TLS client on a plain port.

The round trip and the certificate from another CA run on both backends,
``kafka`` and ``rdkafka``; the rest on ``kafka``, whose client (kafka-python)
notifbus diagnoses itself, where librdkafka reports TLS failures its own
way (the rdkafka cases run on Apache Kafka's TLS listener).
"""

import pytest

from tests.functional.conftest import FAST_GROUP
from tests.functional.security import (
    listener_fails,
    round_trip,
    send_fails,
)
from tests.functional.tlsproxy import (
    FAIL_FAST,
    TlsBroker,
    needs_stunnel,
)

pytestmark = needs_stunnel


@pytest.fixture(params=["kafka", "rdkafka"])
def backend(request):
    """The name of each Kafka backend in turn (its URL scheme)."""
    if request.param == "rdkafka":
        pytest.importorskip("confluent_kafka")
    return request.param


@pytest.fixture(scope="module")
def misnamed_broker(certs):
    """A broker whose certificate (from the right CA) names another host."""
    with TlsBroker(certs["dir"], *certs["misnamed"]) as broker:
        yield broker


def _send_fails(url, retry=0):
    return str(send_fails(url, retry=retry))


def test_notifier_to_listener_over_tls(tls_broker, certs, backend):
    url = tls_broker.url(backend, security_protocol="SSL",
                         ssl_cafile=certs["ca"], **FAST_GROUP)
    assert round_trip(url, {"over": "tls"}) == {"over": "tls"}


@pytest.mark.parametrize("retry", [0, None], ids=["no-retry",
                                                  "retry-forever"])
def test_certificate_from_another_ca_fails_at_once(tls_broker, certs,
                                                   backend, retry):
    """retry=None would retry a broker that is down forever; a certificate
    that no retry can cure fails at once, naming the broker and why."""
    text = _send_fails(tls_broker.url(backend, security_protocol="SSL",
                                      ssl_cafile=certs["other_ca"],
                                      **FAIL_FAST), retry=retry)
    assert "certificate verify failed" in text
    assert "unable to get local issuer certificate" in text
    assert "check that ssl_cafile holds the CA" in text
    assert f"127.0.0.1:{tls_broker.port}" in text


def test_listener_with_wrong_ca_fails_to_start_clearly(tls_broker, certs):
    error = listener_fails(tls_broker.url(security_protocol="SSL",
                                          ssl_cafile=certs["other_ca"],
                                          **FAIL_FAST))
    assert "certificate verify failed" in str(error)


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
    assert round_trip(url, {"name": "unchecked"}) == {"name": "unchecked"}


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
