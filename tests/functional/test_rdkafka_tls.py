"""The rdkafka backend over TLS, for real: stunnel in front of Tansu (see
:mod:`tests.functional.tlsproxy`), with certificates made by the test.

Both tests also run on Apache Kafka's own TLS listener, with the other
failures of a TLS or SASL session:
:mod:`tests.functional.test_kafka_security`.
"""

from tests.functional.conftest import FAST_GROUP
from tests.functional.security import round_trip, send_fails
from tests.functional.tlsproxy import FAIL_FAST, needs_stunnel

pytestmark = needs_stunnel


def rdkafka_url(broker, **query):
    return broker.url(**query).replace("notifbus+kafka://",
                                       "notifbus+rdkafka://", 1)


def test_notifier_to_listener_over_tls(tls_broker, certs):
    url = rdkafka_url(tls_broker, security_protocol="SSL",
                      ssl_cafile=certs["ca"], **FAST_GROUP)
    assert round_trip(url, {"over": "tls"}) == {"over": "tls"}


def test_certificate_from_another_ca_fails_at_once(tls_broker, certs):
    """retry=None would retry a broker that is down forever; a certificate
    that no retry can cure fails at once, naming the broker and why."""
    text = str(send_fails(rdkafka_url(tls_broker, security_protocol="SSL",
                                      ssl_cafile=certs["other_ca"],
                                      **FAIL_FAST), retry=None))
    assert "certificate verify failed" in text
    assert f"127.0.0.1:{tls_broker.port}" in text
    assert "check that ssl_cafile holds the CA" in text
