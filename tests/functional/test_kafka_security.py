"""Security on Apache Kafka, for real, on both Kafka backends.

One Apache Kafka node (KRaft) for the module, with its own TLS listener
(``SSL``) and a ``SASL_SSL`` listener where user ``alice`` logs in with
PLAIN or SCRAM-SHA-512; its certificate, from the test CA, is valid for
127.0.0.1 alone. No stunnel: where :mod:`test_tls_kafka_backends` puts
stunnel in front of Tansu (whose own TLS
listener does not work and which checks no SASL login), this is the
broker's TLS and SASL.

What must hold, on ``notifbus+kafka://`` and ``notifbus+rdkafka://``:

- the right credentials and CA give a round trip through oslo.messaging
  (Notifier -> notification listener): SASL_SSL with SCRAM-SHA-512 and
  with PLAIN, the credentials in the URL or in ``[notifbus_<backend>]``
  options, and SSL alone;
- a wrong password, an unknown user, a mechanism the broker does not
  enable, another CA, a certificate not issued for the name connected to
  (``localhost``), and a plaintext client on the TLS port fail a send
  (MessageDeliveryFailure) and a listener start (ListenerStartError)
  within :data:`~tests.functional.security.QUICK_S` seconds, with the
  default timeouts (but for the kafka backend's plaintext client, which
  learns only after ``bootstrap_timeout_ms``), naming the cause and what
  to do; none is retried;
- no password shows in an error or a log record, at DEBUG level for every
  logger, kafka-python's and librdkafka's (``debug=all``) included.
"""

import pytest

from notifbus.testing.kafka import KafkaCluster
from tests import logcapture
from tests.functional.security import (
    assert_hidden,
    conf,
    listener_fails,
    round_trip,
    send_fails,
)

USER = "alice"
PASSWORD = "alice-S3cret-pw"
WRONG_PASSWORD = "Wr0ng-pa55w0rd"
BACKENDS = ("kafka", "rdkafka")


@pytest.fixture(scope="module", params=["apache-kafka"])
def secure_kafka(request, certs):
    """An Apache Kafka node with SSL and SASL_SSL listeners, whose
    certificate is valid for 127.0.0.1 alone."""
    with KafkaCluster(tls=certs["ip_only"],
                      users={USER: PASSWORD}) as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _url(backend, servers, userinfo="", **query):
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return f"notifbus+{backend}://{userinfo}{servers}/?{params}"


def _sasl_url(backend, cluster, certs, mechanism, user=USER,
              password=PASSWORD, **query):
    return _url(backend, cluster.sasl_ssl_servers, f"{user}:{password}@",
                security_protocol="SASL_SSL", sasl_mechanism=mechanism,
                ssl_cafile=certs["ca"], **query)


# -- what works ---------------------------------------------------------------

@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_round_trip_with_sasl_credentials_in_the_url(secure_kafka, certs,
                                                     backend, mechanism):
    url = _sasl_url(backend, secure_kafka, certs, mechanism)
    assert round_trip(url, {"login": mechanism}) == {"login": mechanism}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_round_trip_with_sasl_credentials_in_the_options(
        secure_kafka, certs, backend, mechanism, tmp_path):
    config_file = tmp_path / "notifbus.conf"
    config_file.write_text(
        f"[notifbus_{backend}]\n"
        f"security_protocol = SASL_SSL\n"
        f"sasl_mechanism = {mechanism}\n"
        f"sasl_username = {USER}\n"
        f"sasl_password = {PASSWORD}\n"
        f"ssl_cafile = {certs['ca']}\n")
    url = f"notifbus+{backend}://{secure_kafka.sasl_ssl_servers}/"
    assert round_trip(url, {"options": mechanism},
                      conf(config_file)) == {"options": mechanism}


def test_round_trip_over_tls(secure_kafka, certs, backend):
    url = _url(backend, secure_kafka.ssl_servers, security_protocol="SSL",
               ssl_cafile=certs["ca"])
    assert round_trip(url, {"over": "tls"}) == {"over": "tls"}


# -- what fails, and how -----------------------------------------------------

def _wrong_password(backend, cluster, certs):
    return _sasl_url(backend, cluster, certs, "SCRAM-SHA-512",
                     password=WRONG_PASSWORD)


def _wrong_plain_password(backend, cluster, certs):
    return _sasl_url(backend, cluster, certs, "PLAIN",
                     password=WRONG_PASSWORD)


def _unknown_user(backend, cluster, certs):
    return _sasl_url(backend, cluster, certs, "SCRAM-SHA-512",
                     user="mallory")


def _mechanism_not_enabled(backend, cluster, certs):
    return _sasl_url(backend, cluster, certs, "SCRAM-SHA-256")


def _other_ca(backend, cluster, certs):
    return _url(backend, cluster.ssl_servers, security_protocol="SSL",
                ssl_cafile=certs["other_ca"])


def _name_mismatch(backend, cluster, certs):
    servers = cluster.ssl_servers.replace("127.0.0.1", "localhost")
    return _url(backend, servers, security_protocol="SSL",
                ssl_cafile=certs["ca"])


def _plaintext_on_tls_port(backend, cluster, certs):
    # kafka-python retries a plaintext connection that a TLS listener cuts
    # until its bootstrap timeout: the kafka backend names the cause after
    # it, librdkafka's at its first failure
    quick = {"bootstrap_timeout_ms": 2000} if backend == "kafka" else {}
    return _url(backend, cluster.ssl_servers, security_protocol="PLAINTEXT",
                **quick)


def _login_hint(user, mechanism):
    return ["authentication failed",
            f"wrong credentials for user {user!r} with SASL mechanism "
            f"{mechanism}", "sasl_username and sasl_password"]


#: case -> (URL maker, the servers it connects to, what the error says)
FAILURES = {
    "wrong-password": (_wrong_password, "sasl_ssl_servers",
                       _login_hint(USER, "SCRAM-SHA-512")),
    "wrong-plain-password": (_wrong_plain_password, "sasl_ssl_servers",
                             _login_hint(USER, "PLAIN")),
    "unknown-user": (_unknown_user, "sasl_ssl_servers",
                     _login_hint("mallory", "SCRAM-SHA-512")),
    "mechanism-not-enabled": (
        _mechanism_not_enabled, "sasl_ssl_servers",
        ["does not accept SASL mechanism SCRAM-SHA-256",
         "PLAIN", "SCRAM-SHA-512", "set sasl_mechanism"]),
    "other-ca": (_other_ca, "ssl_servers",
                 ["certificate verify failed",
                  "unable to get local issuer certificate",
                  "check that ssl_cafile holds the CA"]),
    "name-mismatch": (_name_mismatch, "ssl_servers",
                      ["certificate verify failed", "Hostname mismatch",
                       "not issued for localhost",
                       "ssl_check_hostname=false"]),
    "plaintext-on-tls-port": (_plaintext_on_tls_port, "ssl_servers",
                              ["is a TLS listener",
                               "security_protocol is PLAINTEXT",
                               "set security_protocol to SSL"]),
}


def _assert_names_the_cause(error, case, cluster):
    _, servers, expected = FAILURES[case]
    text = str(error)
    address = getattr(cluster, servers)
    if case == "name-mismatch":
        address = address.replace("127.0.0.1", "localhost")
    assert address in text
    for part in expected:
        assert part in text
    for secret in (PASSWORD, WRONG_PASSWORD):
        assert secret not in text


@pytest.mark.parametrize("case", list(FAILURES))
def test_send_fails_at_once_naming_the_cause(secure_kafka, certs, backend,
                                            case):
    url = FAILURES[case][0](backend, secure_kafka, certs)
    error = send_fails(url, retry=0)
    _assert_names_the_cause(error, case, secure_kafka)


@pytest.mark.parametrize("case", list(FAILURES))
def test_listener_fails_to_start_naming_the_cause(secure_kafka, certs,
                                                 backend, case):
    url = FAILURES[case][0](backend, secure_kafka, certs)
    error = listener_fails(url)
    _assert_names_the_cause(error, case, secure_kafka)


@pytest.mark.parametrize("case", ["wrong-password", "plaintext-on-tls-port"])
def test_refusal_is_not_retried(secure_kafka, certs, backend, case):
    """What no retry cures fails at the first attempt, even when the
    caller allows retries."""
    url = FAILURES[case][0](backend, secure_kafka, certs)
    with logcapture.capture() as logs:
        send_fails(url, retry=3)
    assert "retrying" not in logs.text()


# -- secrets ------------------------------------------------------------------

def test_passwords_show_in_no_error_and_no_log(secure_kafka, certs,
                                                backend, tmp_path):
    """Logins with PLAIN, whose token holds the password in the clear,
    accepted and refused, with the password in the URL and in the options;
    every logger at DEBUG level, librdkafka's debug output on."""
    debug = {"extra_config": "debug:all"} if backend == "rdkafka" else {}
    config_file = tmp_path / "notifbus.conf"
    config_file.write_text(f"[notifbus_{backend}]\n"
                           f"sasl_username = {USER}\n"
                           f"sasl_password = {WRONG_PASSWORD}\n")
    in_options = _url(backend, secure_kafka.sasl_ssl_servers,
                      security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                      ssl_cafile=certs["ca"], **debug)
    with logcapture.capture() as logs:
        assert round_trip(_sasl_url(backend, secure_kafka, certs, "PLAIN",
                                    **debug), {"n": 1}) == {"n": 1}
        errors = [
            send_fails(_sasl_url(backend, secure_kafka, certs, "PLAIN",
                                 password=WRONG_PASSWORD, **debug)),
            send_fails(in_options, config=conf(config_file)),
            listener_fails(in_options, config=conf(config_file)),
        ]
    # the client libraries did log the logins, and at DEBUG level
    if backend == "kafka":
        assert "SASL authenticate request, hidden" in logs.text()
    else:
        assert any(r.levelname == "DEBUG" and "SASL" in r.getMessage()
                   for r in logs.records if "librdkafka" in r.getMessage())
    for error in errors:
        assert_hidden(error, logs, PASSWORD, WRONG_PASSWORD)
