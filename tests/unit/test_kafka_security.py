"""SASL and TLS settings of the Kafka backend: what kafka-python is given,
what is refused before anything connects, and that secrets stay hidden."""

import logging

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import errors, settings
from notifbus.backends.kafka.backend import KafkaBackend
from tests import logcapture

SASL_KEYS = {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"}
SSL_KEYS = {"ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password",
            "ssl_check_hostname"}


def backend_from(url):
    """The Kafka backend the oslo driver builds for transport URL ``url``."""
    conf = cfg.ConfigOpts()
    conf([])
    return settings.open_backend(conf, url)[0]


def config_of(options, username=None, password=None):
    options = dict({"security_protocol": "PLAINTEXT"}, **options)
    backend = KafkaBackend([("h1", 9093)], options, username, password)
    return backend.client_config()


def refusal(options, username=None, password=None):
    with pytest.raises(errors.ConfigError) as info:
        KafkaBackend([("h1", 9093)], options, username, password)
    return str(info.value)


# -- what kafka-python is given -----------------------------------------------

def test_plaintext_has_no_security_settings():
    config = config_of({})
    assert config["security_protocol"] == "PLAINTEXT"
    assert not (SASL_KEYS | SSL_KEYS) & set(config)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256",
                                       "SCRAM-SHA-512"])
def test_sasl_plaintext_config(mechanism):
    config = config_of({"security_protocol": "SASL_PLAINTEXT",
                        "sasl_mechanism": mechanism,
                        "sasl_username": "svc", "sasl_password": "pw"})
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert config["sasl_mechanism"] == mechanism
    assert config["sasl_plain_username"] == "svc"
    assert config["sasl_plain_password"] == "pw"
    assert not SSL_KEYS & set(config)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256",
                                       "SCRAM-SHA-512"])
def test_sasl_ssl_config(certs, mechanism):
    config = config_of({"security_protocol": "SASL_SSL",
                        "sasl_mechanism": mechanism,
                        "ssl_cafile": certs["ca"],
                        "ssl_check_hostname": False},
                       username="svc", password="pw")
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == mechanism
    assert (config["sasl_plain_username"],
            config["sasl_plain_password"]) == ("svc", "pw")
    assert config["ssl_cafile"] == certs["ca"]
    assert config["ssl_check_hostname"] is False
    assert config["ssl_certfile"] is None and config["ssl_keyfile"] is None


def test_sasl_mechanism_defaults_to_plain():
    config = config_of({"security_protocol": "SASL_PLAINTEXT"},
                       username="svc", password="pw")
    assert config["sasl_mechanism"] == "PLAIN"


def test_ssl_config_with_client_certificate(certs):
    config = config_of({"security_protocol": "SSL",
                        "ssl_cafile": certs["ca"],
                        "ssl_certfile": certs["locked_cert"],
                        "ssl_keyfile": certs["locked_key"],
                        "ssl_password": "k3y-pw"})
    assert {k: config[k] for k in SSL_KEYS} == {
        "ssl_cafile": certs["ca"], "ssl_certfile": certs["locked_cert"],
        "ssl_keyfile": certs["locked_key"], "ssl_password": "k3y-pw",
        "ssl_check_hostname": True}
    assert not SASL_KEYS & set(config)


def test_ssl_checks_host_names_by_default(certs):
    backend = backend_from("notifbus+kafka://h1:9093/?security_protocol=SSL"
                           f"&ssl_cafile={certs['ca']}")
    assert backend.client_config()["ssl_check_hostname"] is True


def test_url_credentials_win_over_options():
    backend = backend_from(
        "notifbus+kafka://url-user:url-pw@h1:9093/"
        "?security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-512"
        "&sasl_username=opt-user&sasl_password=opt-pw")
    config = backend.client_config()
    assert config["sasl_plain_username"] == "url-user"
    assert config["sasl_plain_password"] == "url-pw"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"


def test_options_give_credentials_the_url_lacks():
    backend = backend_from(
        "notifbus+kafka://h1:9093/?security_protocol=SASL_PLAINTEXT"
        "&sasl_username=opt-user&sasl_password=opt-pw")
    config = backend.client_config()
    assert (config["sasl_plain_username"],
            config["sasl_plain_password"]) == ("opt-user", "opt-pw")


def test_url_credentials_without_sasl_are_not_sent():
    # oslo URLs often carry user:pass@ by habit; PLAINTEXT ignores them
    backend = backend_from("notifbus+kafka://u:p@h1:9093/")
    assert not SASL_KEYS & set(backend.client_config())


# -- refused before connecting ------------------------------------------------

@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("credentials", [
    {}, {"sasl_username": "svc"}, {"sasl_password": "pw"}])
def test_sasl_without_credentials_is_refused(protocol, credentials):
    message = refusal(dict({"security_protocol": protocol}, **credentials))
    assert f"security_protocol {protocol} needs a user name and a password" \
        in message
    assert "user:pass@host" in message


def test_sasl_without_credentials_is_refused_at_transport_creation():
    conf = cfg.ConfigOpts()
    conf([])
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf, url="notifbus+kafka://127.0.0.1:1/"
                      "?security_protocol=SASL_SSL")
    assert "needs a user name and a password" in str(info.value)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
@pytest.mark.parametrize("option, value", [
    ("sasl_mechanism", "SCRAM-SHA-256"), ("sasl_username", "svc"),
    ("sasl_password", "s3cret-pw")])
def test_sasl_option_without_sasl_protocol_is_refused(certs, protocol,
                                                      option, value):
    options = {"security_protocol": protocol, option: value}
    if protocol == "SSL":
        options["ssl_cafile"] = certs["ca"]
    message = refusal(options)
    assert f"{option} set while security_protocol is {protocol}" in message
    assert "which has no SASL" in message
    assert "SASL_PLAINTEXT or SASL_SSL" in message
    if option == "sasl_password":
        assert value not in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_ssl_option_without_ssl_protocol_is_refused(certs, protocol):
    message = refusal({"security_protocol": protocol,
                       "ssl_cafile": certs["ca"]}, "svc", "pw")
    assert f"ssl_cafile set while security_protocol is {protocol}" in message
    assert "which has no TLS" in message and "SSL or SASL_SSL" in message


@pytest.mark.parametrize("option", ["ssl_cafile", "ssl_certfile",
                                    "ssl_keyfile"])
@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_missing_ssl_file_is_refused(certs, option, protocol):
    missing = str(certs["dir"] / f"no-such-{option}.pem")
    options = {"security_protocol": protocol, "ssl_certfile": certs["cert"],
               "ssl_keyfile": certs["key"], option: missing}
    message = refusal(options, "svc", "pw")
    assert f"{option} {missing!r} does not exist" in message


def test_missing_cafile_in_url_is_refused_at_transport_creation(certs):
    conf = cfg.ConfigOpts()
    conf([])
    missing = certs["dir"] / "absent-ca.pem"
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf, url="notifbus+kafka://127.0.0.1:1/?security_protocol=SSL"
                      f"&ssl_cafile={missing}")
    assert "ssl_cafile" in str(info.value)
    assert "does not exist" in str(info.value)


def test_cafile_without_certificates_is_refused(certs):
    message = refusal({"security_protocol": "SSL",
                       "ssl_cafile": certs["junk"]})
    assert f"ssl_cafile {certs['junk']!r} holds no usable CA certificate" \
        in message


def test_key_without_certificate_is_refused(certs):
    message = refusal({"security_protocol": "SSL",
                       "ssl_keyfile": certs["key"]})
    assert "ssl_keyfile is set without ssl_certfile" in message


def test_key_not_matching_certificate_is_refused(certs):
    message = refusal({"security_protocol": "SSL",
                       "ssl_certfile": certs["cert"],
                       "ssl_keyfile": certs["locked_key"],
                       "ssl_password": "k3y-pw"})
    assert "do not load" in message
    assert "k3y-pw" not in message


@pytest.mark.parametrize("password", [None, "wrong-pw"])
def test_encrypted_key_needs_its_password(certs, password):
    # without a password OpenSSL would prompt on the terminal: refused
    options = {"security_protocol": "SSL",
               "ssl_certfile": certs["locked_cert"],
               "ssl_keyfile": certs["locked_key"]}
    if password:
        options["ssl_password"] = password
    message = refusal(options)
    assert "ssl_password missing or wrong" in message
    assert "wrong-pw" not in message


# -- secrets stay hidden ------------------------------------------------------

def test_settings_repr_masks_the_password():
    conf = cfg.ConfigOpts()
    resolved = settings.resolve(conf, oslo_messaging.TransportURL.parse(
        conf, "notifbus+kafka://svc:hunter2-pw@h1:9093/"
              "?security_protocol=SASL_PLAINTEXT"))
    assert resolved.password == "hunter2-pw"
    text = repr(resolved)
    assert "hunter2-pw" not in text
    assert "password='***'" in text and "username='svc'" in text


def test_client_config_shows_no_password_when_printed(certs):
    # kafka-python's admin client logs its configuration at DEBUG level
    config = config_of({"security_protocol": "SASL_SSL",
                        "ssl_cafile": certs["ca"],
                        "ssl_certfile": certs["locked_cert"],
                        "ssl_keyfile": certs["locked_key"],
                        "ssl_password": "k3y-pw"},
                       username="svc", password="hunter2-pw")
    assert "hunter2-pw" not in repr(config) and "hunter2-pw" not in str(config)
    assert "k3y-pw" not in repr(config)
    # what the client uses is the password itself
    assert config["sasl_plain_password"] == "hunter2-pw"
    assert config["sasl_plain_password"].encode() == b"hunter2-pw"
    assert "\0".join(["svc", config["sasl_plain_password"]]) == \
        "svc\0hunter2-pw"
    assert config["ssl_password"] == "k3y-pw"


def test_secret_options_are_marked_secret():
    secret = {opt.dest for opt in KafkaBackend.list_opts() if opt.secret}
    assert secret == {"sasl_password", "ssl_password"}


def test_driver_never_logs_the_transport_url():
    conf = cfg.ConfigOpts()
    conf([])
    with logcapture.capture() as logs:
        transport = oslo_messaging.get_notification_transport(
            conf, url="notifbus+kafka://svc:hunter2-pw@127.0.0.1:1/"
                      "?security_protocol=SASL_PLAINTEXT")
        assert "hunter2-pw" not in repr(transport._driver.settings)
        logging.getLogger("notifbus").debug("transport made")
        transport.cleanup()
    assert logs.records, "nothing was captured"
    assert "hunter2-pw" not in logs.text()



def test_kafka_python_debug_lines_hide_the_sasl_token():
    """kafka-python logs each request and its encoded bytes at DEBUG
    level: for PLAIN, the SASL token is the password in the clear."""
    from kafka.protocol.sasl import (
        SaslAuthenticateRequest,
        SaslHandshakeRequest,
    )

    token = SaslAuthenticateRequest(auth_bytes=b"svc\0svc\0hunter2-pw",
                                    version=2)
    token.with_header(correlation_id=3, client_id="notifbus")
    handshake = SaslHandshakeRequest(mechanism="PLAIN", version=1)
    with logcapture.capture() as logs:
        import notifbus.backends.kafka.backend  # noqa: F401 - installs the filter

        parser = logging.getLogger("kafka.protocol.parser")
        parser.debug("%s Sending request %d %s", "node=1", 2, handshake)
        parser.debug("%s Sending request %d %s", "node=1", 3, token)
        parser.debug("%s Send: %r", "node=1",
                     bytearray(token.encode(header=True, framed=True)))
        logging.getLogger("kafka.net.connection").debug(
            "%s Request %d: %s", "<conn>", 3, token)
    assert len(logs.records) == 4
    assert "hunter2-pw" not in logs.text()
    assert logs.text().count("<SASL authenticate request, hidden>") == 3
    assert "SaslHandshakeRequest(version=1, mechanism='PLAIN')" in (
        logs.text())
