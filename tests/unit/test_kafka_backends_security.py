"""SASL and TLS settings of both Kafka backends, ``kafka`` (kafka-python)
and ``rdkafka`` (librdkafka): what the client is given, what is refused
before anything connects, and that secrets stay hidden.

Both read the same security options (``kafka_common``); each test is
parametrized over the two backends, and a :class:`Flavour` maps the one
meaning to the names and values of each client's configuration. Tests of
one client's own behaviour stay with that backend, with the reason.
"""

import dataclasses
import logging

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import errors, settings
from notifbus.backends.kafka.backend import KafkaBackend
from notifbus.backends.rdkafka.backend import RdkafkaBackend
from tests import logcapture


@dataclasses.dataclass(frozen=True)
class Flavour:
    """One Kafka backend and the keys and values of its client config."""

    name: str
    backend: type
    #: the client's key for: protocol, mechanism, username, password,
    #: cafile, certfile, keyfile, key password, host name check
    keys: dict
    #: ``security_protocol`` as the client spells it
    protocol: object
    #: ``ssl_check_hostname`` true and false as the client spells them
    check_hostname: tuple
    #: the bootstrap servers of hosts h1:9093 and h2 (default port)
    bootstrap: object
    #: whether an unset client certificate is a key set to None (kafka-python
    #: takes every key) or no key at all (librdkafka refuses None)
    unset_is_none: bool

    def __str__(self):
        return self.name

    def key(self, name):
        return self.keys[name]

    def sasl_keys(self):
        return {self.keys[k] for k in ("mechanism", "username", "password")}

    def ssl_keys(self):
        return {self.keys[k] for k in ("cafile", "certfile", "keyfile",
                                       "keypass", "check_hostname")}

    def url(self, rest):
        return f"notifbus+{self.name}://{rest}"

    def config_of(self, options, username=None, password=None):
        backend = self.backend([("h1", 9093), ("h2", None)], options,
                               username, password)
        return backend.client_config()

    def refusal(self, options, username=None, password=None):
        with pytest.raises(errors.ConfigError) as info:
            self.backend([("h1", 9093)], options, username, password)
        return str(info.value)

    def assert_unset(self, config, name):
        key = self.keys[name]
        if self.unset_is_none:
            assert config[key] is None
        else:
            assert key not in config


KAFKA = Flavour(
    "kafka", KafkaBackend,
    keys={"protocol": "security_protocol", "mechanism": "sasl_mechanism",
          "username": "sasl_plain_username",
          "password": "sasl_plain_password", "cafile": "ssl_cafile",
          "certfile": "ssl_certfile", "keyfile": "ssl_keyfile",
          "keypass": "ssl_password", "check_hostname": "ssl_check_hostname"},
    protocol=str, check_hostname=(True, False),
    bootstrap=["h1:9093", "h2:9092"], unset_is_none=True)

RDKAFKA = Flavour(
    "rdkafka", RdkafkaBackend,
    keys={"protocol": "security.protocol", "mechanism": "sasl.mechanism",
          "username": "sasl.username", "password": "sasl.password",
          "cafile": "ssl.ca.location",
          "certfile": "ssl.certificate.location",
          "keyfile": "ssl.key.location", "keypass": "ssl.key.password",
          "check_hostname": "ssl.endpoint.identification.algorithm"},
    protocol=str.lower, check_hostname=("https", "none"),
    bootstrap="h1:9093,h2:9092", unset_is_none=False)


@pytest.fixture(params=[KAFKA, RDKAFKA], ids=str)
def flavour(request):
    return request.param


def backend_from(url):
    """The backend the oslo driver builds for transport URL ``url``."""
    conf = cfg.ConfigOpts()
    conf([])
    return settings.open_backend(conf, url)[0]


MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


# -- what the client is given -------------------------------------------------

@pytest.mark.parametrize("protocol", [None, "PLAINTEXT"],
                         ids=["default", "PLAINTEXT"])
def test_plaintext_has_no_security_settings(flavour, protocol):
    options = {"security_protocol": protocol} if protocol else {}
    config = flavour.config_of(options)
    assert config[flavour.key("protocol")] == flavour.protocol("PLAINTEXT")
    assert config["bootstrap_servers" if flavour is KAFKA
                  else "bootstrap.servers"] == flavour.bootstrap
    assert config["client_id" if flavour is KAFKA
                  else "client.id"] == "notifbus"
    assert not (flavour.sasl_keys() | flavour.ssl_keys()) & set(config)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_plaintext_config(flavour, mechanism):
    config = flavour.config_of({"security_protocol": "SASL_PLAINTEXT",
                                "sasl_mechanism": mechanism,
                                "sasl_username": "svc",
                                "sasl_password": "pw"})
    assert config[flavour.key("protocol")] == flavour.protocol(
        "SASL_PLAINTEXT")
    assert config[flavour.key("mechanism")] == mechanism
    assert config[flavour.key("username")] == "svc"
    assert config[flavour.key("password")] == "pw"
    assert not flavour.ssl_keys() & set(config)


@pytest.mark.parametrize("mechanism", [None] + MECHANISMS,
                         ids=["default"] + MECHANISMS)
def test_sasl_ssl_config(flavour, certs, mechanism):
    options = {"security_protocol": "SASL_SSL", "ssl_cafile": certs["ca"],
               "ssl_check_hostname": False}
    if mechanism:
        options["sasl_mechanism"] = mechanism
    config = flavour.config_of(options, username="svc", password="pw")
    assert config[flavour.key("protocol")] == flavour.protocol("SASL_SSL")
    assert config[flavour.key("mechanism")] == (mechanism or "PLAIN")
    assert (config[flavour.key("username")],
            config[flavour.key("password")]) == ("svc", "pw")
    assert config[flavour.key("cafile")] == certs["ca"]
    assert config[flavour.key("check_hostname")] == \
        flavour.check_hostname[1]
    flavour.assert_unset(config, "certfile")
    flavour.assert_unset(config, "keyfile")


def test_sasl_mechanism_defaults_to_plain(flavour):
    config = flavour.config_of({"security_protocol": "SASL_PLAINTEXT"},
                               username="svc", password="pw")
    assert config[flavour.key("mechanism")] == "PLAIN"


def test_ssl_config_with_client_certificate(flavour, certs):
    config = flavour.config_of({"security_protocol": "SSL",
                                "ssl_cafile": certs["ca"],
                                "ssl_certfile": certs["locked_cert"],
                                "ssl_keyfile": certs["locked_key"],
                                "ssl_password": "k3y-pw"})
    assert {k: config[k] for k in flavour.ssl_keys()} == {
        flavour.key("cafile"): certs["ca"],
        flavour.key("certfile"): certs["locked_cert"],
        flavour.key("keyfile"): certs["locked_key"],
        flavour.key("keypass"): "k3y-pw",
        flavour.key("check_hostname"): flavour.check_hostname[0]}
    assert not flavour.sasl_keys() & set(config)


def test_ssl_checks_host_names_by_default(flavour, certs):
    backend = backend_from(flavour.url(
        f"h1:9093/?security_protocol=SSL&ssl_cafile={certs['ca']}"))
    assert backend.client_config()[flavour.key("check_hostname")] == \
        flavour.check_hostname[0]


def test_url_credentials_win_over_options(flavour):
    backend = backend_from(flavour.url(
        "url-user:url-pw@h1:9093/"
        "?security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-512"
        "&sasl_username=opt-user&sasl_password=opt-pw"))
    config = backend.client_config()
    assert config[flavour.key("username")] == "url-user"
    assert config[flavour.key("password")] == "url-pw"
    assert config[flavour.key("mechanism")] == "SCRAM-SHA-512"


def test_options_give_credentials_the_url_lacks(flavour):
    backend = backend_from(flavour.url(
        "h1:9093/?security_protocol=SASL_PLAINTEXT"
        "&sasl_username=opt-user&sasl_password=opt-pw"))
    config = backend.client_config()
    assert (config[flavour.key("username")],
            config[flavour.key("password")]) == ("opt-user", "opt-pw")


def test_url_credentials_without_sasl_are_not_sent(flavour):
    # oslo URLs often carry user:pass@ by habit; PLAINTEXT ignores them
    backend = backend_from(flavour.url("u:p@h1:9093/"))
    assert not flavour.sasl_keys() & set(backend.client_config())


# -- refused before connecting ------------------------------------------------

@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("credentials", [
    {}, {"sasl_username": "svc"}, {"sasl_password": "pw"}],
    ids=["none", "username-only", "password-only"])
def test_sasl_without_credentials_is_refused(flavour, protocol, credentials):
    message = flavour.refusal(dict({"security_protocol": protocol},
                                   **credentials))
    assert f"security_protocol {protocol} needs a user name and a password" \
        in message
    assert "user:pass@host" in message


def test_sasl_without_credentials_is_refused_at_transport_creation(flavour):
    conf = cfg.ConfigOpts()
    conf([])
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf, url=flavour.url("127.0.0.1:1/?security_protocol=SASL_SSL"))
    assert "needs a user name and a password" in str(info.value)


@pytest.mark.parametrize("protocol", [None, "PLAINTEXT", "SSL"],
                         ids=["default", "PLAINTEXT", "SSL"])
@pytest.mark.parametrize("option, value", [
    ("sasl_mechanism", "SCRAM-SHA-256"), ("sasl_username", "svc"),
    ("sasl_password", "s3cret-pw")])
def test_sasl_option_without_sasl_protocol_is_refused(flavour, certs,
                                                      protocol, option,
                                                      value):
    options = {option: value}
    if protocol:
        options["security_protocol"] = protocol
    if protocol == "SSL":
        options["ssl_cafile"] = certs["ca"]
    message = flavour.refusal(options)
    protocol = protocol or "PLAINTEXT"
    assert f"{option} set while security_protocol is {protocol}" in message
    assert "which has no SASL" in message
    assert "SASL_PLAINTEXT or SASL_SSL" in message
    if option == "sasl_password":
        assert value not in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_ssl_option_without_ssl_protocol_is_refused(flavour, certs,
                                                    protocol):
    message = flavour.refusal({"security_protocol": protocol,
                               "ssl_cafile": certs["ca"]}, "svc", "pw")
    assert f"ssl_cafile set while security_protocol is {protocol}" in message
    assert "which has no TLS" in message and "SSL or SASL_SSL" in message


@pytest.mark.parametrize("option", ["ssl_cafile", "ssl_certfile",
                                    "ssl_keyfile"])
@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_missing_ssl_file_is_refused(flavour, certs, option, protocol):
    missing = str(certs["dir"] / f"no-such-{option}.pem")
    options = {"security_protocol": protocol, "ssl_certfile": certs["cert"],
               "ssl_keyfile": certs["key"], option: missing}
    message = flavour.refusal(options, "svc", "pw")
    assert f"{option} {missing!r} does not exist" in message


def test_missing_cafile_in_url_is_refused_at_transport_creation(flavour,
                                                                certs):
    conf = cfg.ConfigOpts()
    conf([])
    missing = certs["dir"] / "absent-ca.pem"
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf, url=flavour.url("127.0.0.1:1/?security_protocol=SSL"
                                  f"&ssl_cafile={missing}"))
    assert "ssl_cafile" in str(info.value)
    assert "does not exist" in str(info.value)


def test_cafile_without_certificates_is_refused(flavour, certs):
    message = flavour.refusal({"security_protocol": "SSL",
                               "ssl_cafile": certs["junk"]})
    assert f"ssl_cafile {certs['junk']!r} holds no usable CA certificate" \
        in message


def test_key_without_certificate_is_refused(flavour, certs):
    message = flavour.refusal({"security_protocol": "SSL",
                               "ssl_keyfile": certs["key"]})
    assert "ssl_keyfile is set without ssl_certfile" in message


def test_key_not_matching_certificate_is_refused(flavour, certs):
    message = flavour.refusal({"security_protocol": "SSL",
                               "ssl_certfile": certs["cert"],
                               "ssl_keyfile": certs["locked_key"],
                               "ssl_password": "k3y-pw"})
    assert "do not load" in message
    assert "k3y-pw" not in message


@pytest.mark.parametrize("password", [None, "wrong-pw"])
def test_encrypted_key_needs_its_password(flavour, certs, password):
    # without a password OpenSSL would prompt on the terminal: refused
    options = {"security_protocol": "SSL",
               "ssl_certfile": certs["locked_cert"],
               "ssl_keyfile": certs["locked_key"]}
    if password:
        options["ssl_password"] = password
    message = flavour.refusal(options)
    assert "ssl_password missing or wrong" in message
    assert "wrong-pw" not in message


# -- secrets stay hidden ------------------------------------------------------

def test_settings_repr_masks_the_password(flavour):
    conf = cfg.ConfigOpts()
    resolved = settings.resolve(conf, oslo_messaging.TransportURL.parse(
        conf, flavour.url("svc:hunter2-pw@h1:9093/"
                          "?security_protocol=SASL_PLAINTEXT")))
    assert resolved.password == "hunter2-pw"
    text = repr(resolved)
    assert "hunter2-pw" not in text
    assert "password='***'" in text and "username='svc'" in text


@pytest.mark.parametrize("flavour, secret", [
    (KAFKA, {"sasl_password", "ssl_password"}),
    # librdkafka settings given through extra_config may hold secrets
    (RDKAFKA, {"sasl_password", "ssl_password", "extra_config"}),
], ids=str)
def test_secret_options_are_marked_secret(flavour, secret):
    assert {opt.dest for opt in flavour.backend.list_opts()
            if opt.secret} == secret


def test_driver_never_logs_the_transport_url(flavour):
    conf = cfg.ConfigOpts()
    conf([])
    with logcapture.capture() as logs:
        transport = oslo_messaging.get_notification_transport(
            conf, url=flavour.url("svc:hunter2-pw@127.0.0.1:1/"
                                  "?security_protocol=SASL_PLAINTEXT"))
        assert "hunter2-pw" not in repr(transport._driver.settings)
        logging.getLogger("notifbus").debug("transport made")
        transport.cleanup()
    assert logs.records, "nothing was captured"
    assert "hunter2-pw" not in logs.text()


# -- kafka-python alone -------------------------------------------------------
# librdkafka takes a plain dict of strings and never logs it; kafka-python
# logs its configuration and each request at DEBUG level, so the kafka
# backend hands it secrets that print masked.

def test_kafka_client_config_shows_no_password_when_printed(certs):
    # kafka-python's admin client logs its configuration at DEBUG level
    config = KAFKA.config_of({"security_protocol": "SASL_SSL",
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
