"""NATS with TLS and authentication, for real: each test module starts
private nats-servers on free loopback ports, configured by files it writes,
with certificates from a CA it makes.

What must hold: the right CA (and credentials) work end to end through
oslo.messaging; a wrong CA, a plain client of a TLS server, a TLS client of
a plain server, a wrong password and a wrong token are refused at once
with an error that names the server and the cause and never shows the
secret. Sends fail with MessageDeliveryFailure (called as oslo's Notifier
calls the transport, since the Notifier logs and drops errors); listeners
fail to start with ListenerStartError.
"""

import datetime
import ipaddress
import logging
import os
import queue
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.oslo_driver import ListenerStartError
from tests.functional import natsserver

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

PASSWORD = "s3cret-Pa55"
TOKEN = "t0ken-f0r-nats"
FAST_FAIL_S = 10


# -- certificates -----------------------------------------------------------

def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory, name, data):
    path = os.path.join(directory, name)
    with open(path, "wb") as out:
        out.write(data)
    return path


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject, key, issuer, issuer_key, *, ca=False, usage=None,
                 hosts=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]),
                                        critical=False)
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit()
             else x509.DNSName(h) for h in hosts]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _make_ca(directory, name):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, key, name, key, ca=True)
    path = _write(directory, f"{name}.pem",
                  cert.public_bytes(serialization.Encoding.PEM))
    return key, path


def _issue(directory, name, ca_name, ca_key, usage, hosts=()):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, key, ca_name, ca_key, usage=usage, hosts=hosts)
    return (_write(directory, f"{name}.pem",
                   cert.public_bytes(serialization.Encoding.PEM)),
            _write(directory, f"{name}-key.pem", _pem_key(key)))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA with a server and a client certificate, and an unrelated CA."""
    directory = str(tmp_path_factory.mktemp("pki"))
    ca_key, ca = _make_ca(directory, "notifbus-test-ca")
    _, wrong_ca = _make_ca(directory, "some-other-ca")
    server = _issue(directory, "server", "notifbus-test-ca", ca_key,
                    ExtendedKeyUsageOID.SERVER_AUTH,
                    hosts=("127.0.0.1", "localhost"))
    client = _issue(directory, "client", "notifbus-test-ca", ca_key,
                    ExtendedKeyUsageOID.CLIENT_AUTH)
    return {"ca": ca, "wrong_ca": wrong_ca, "server": server,
            "client": client}


def _tls_block(pki, verify_clients=False):
    cert, key = pki["server"]
    extra = (f'  ca_file: "{pki["ca"]}"\n  verify: true\n'
             if verify_clients else "")
    return (f'tls {{\n  cert_file: "{cert}"\n  key_file: "{key}"\n'
            f"  timeout: 2\n{extra}}}")


@pytest.fixture(scope="module")
def tls_server(pki):
    with natsserver.NatsServer(_tls_block(pki)) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(pki):
    with natsserver.NatsServer(_tls_block(pki, verify_clients=True)) as srv:
        yield srv


@pytest.fixture(scope="module")
def password_server():
    config = f'authorization {{ user: alice, password: "{PASSWORD}" }}'
    with natsserver.NatsServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def token_server():
    with natsserver.NatsServer(f'authorization {{ token: "{TOKEN}" }}') \
            as server:
        yield server


@pytest.fixture(scope="module")
def plain_server():
    with natsserver.NatsServer() as server:
        yield server


# -- helpers ------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.events = queue.Queue()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.events.put((event_type, payload))


def _conf(**overrides):
    conf = cfg.ConfigOpts()
    conf([])
    from notifbus import opts

    opts.register_opts(conf)
    for name, value in overrides.items():
        conf.set_override(name, value, group="notifbus_nats")
    return conf


def _url(server, userinfo="", **query):
    query.setdefault("connect_timeout_s", 3)
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return f"notifbus+nats://{userinfo}{server.address}/?{text}"


def _message(payload):
    return {"publisher_id": "security", "event_type": "secure.test",
            "payload": payload, "priority": "INFO"}


def _send(transport, topic, payload):
    transport._send_notification(oslo_messaging.Target(topic=f"{topic}.info"),
                                 {}, _message(payload), version=2.0, retry=3)


def _round_trip(url, conf=None):
    """Notifier -> listener through oslo.messaging over ``url``."""
    conf = conf or _conf()
    topic = f"sec{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    recorder = Recorder()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [recorder],
        executor="threading")
    try:
        server.start()
        notifier = oslo_messaging.Notifier(transport, "security",
                                           driver="messaging",
                                           topics=[topic])
        notifier.info({}, "secure.test", "hello")
        assert recorder.events.get(timeout=10) == ("secure.test", "hello")
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def _refused(url, *expected, conf=None, secret=None):
    """A send and a listener start over ``url`` both fail fast with an
    error naming the server and ``expected`` words, without ``secret``."""
    conf = conf or _conf()
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    try:
        started = time.monotonic()
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as sent:
            _send(transport, "refused", 1)
        assert time.monotonic() - started < FAST_FAIL_S
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic="refused")],
            [Recorder()], executor="threading")
        started = time.monotonic()
        with pytest.raises(ListenerStartError) as listened:
            server.start()
        assert time.monotonic() - started < FAST_FAIL_S
    finally:
        transport.cleanup()
    for error in (sent.value, listened.value):
        text = str(error)
        assert "127.0.0.1:" in text, text
        for word in expected:
            assert word in text.lower(), text
        if secret:
            assert secret not in text
    return str(sent.value)


# -- TLS ----------------------------------------------------------------------

def test_tls_with_the_right_ca_works_end_to_end(tls_server, pki):
    _round_trip(_url(tls_server, tls_cafile=pki["ca"]))


def test_tls_with_a_wrong_ca_is_refused(tls_server, pki):
    _refused(_url(tls_server, tls_cafile=pki["wrong_ca"]), "tls",
             "certificate verify failed")


def test_plain_client_of_a_tls_server_is_refused(tls_server):
    text = _refused(_url(tls_server), "tls", "requires tls")
    assert "tls_cafile" in text


def test_tls_client_of_a_plain_server_is_refused(plain_server, pki):
    _refused(_url(plain_server, tls_cafile=pki["ca"]), "does not offer tls")


def test_mutual_tls_needs_the_client_certificate(mtls_server, pki):
    cert, key = pki["client"]
    _round_trip(_url(mtls_server, tls_cafile=pki["ca"], tls_certfile=cert,
                     tls_keyfile=key))
    conf = _conf()
    transport = oslo_messaging.get_notification_transport(
        conf, url=_url(mtls_server, tls_cafile=pki["ca"]))
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure):
            _send(transport, "nocert", 1)
    finally:
        transport.cleanup()


# -- user and password ------------------------------------------------------

def test_right_password_works(password_server):
    _round_trip(_url(password_server, f"alice:{PASSWORD}@"))


def test_password_from_the_options_works(password_server):
    _round_trip(_url(password_server),
                conf=_conf(user="alice", password=PASSWORD))


def test_wrong_password_is_refused_clearly(password_server, caplog):
    wrong = "not-" + PASSWORD
    with caplog.at_level(logging.DEBUG):
        text = _refused(_url(password_server, f"alice:{wrong}@"),
                        "authorization failed", "alice", secret=wrong)
    assert PASSWORD not in text
    assert wrong not in caplog.text


def test_missing_credentials_are_refused(password_server):
    _refused(_url(password_server), "authorization failed")


# -- token --------------------------------------------------------------------

def test_right_token_works(token_server):
    _round_trip(_url(token_server), conf=_conf(token=TOKEN))


def test_wrong_token_is_refused_clearly(token_server, caplog):
    wrong = "wrong-" + TOKEN
    with caplog.at_level(logging.DEBUG):
        _refused(_url(token_server), "authorization failed", "token",
                 conf=_conf(token=wrong), secret=wrong)
    assert wrong not in caplog.text
