"""Options of the rdkafka backend: what librdkafka is given, what is
refused before anything connects, and that secrets stay hidden."""

import confluent_kafka
import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import errors, opts, settings
from notifbus.backends.rdkafka.backend import MANAGED, RdkafkaBackend

SASL_KEYS = {"sasl.mechanism", "sasl.username", "sasl.password"}
SSL_KEYS = {"ssl.ca.location", "ssl.certificate.location",
            "ssl.key.location", "ssl.key.password",
            "ssl.endpoint.identification.algorithm"}


def backend_from(url):
    """The backend the oslo driver builds for transport URL ``url``."""
    conf = cfg.ConfigOpts()
    conf([])
    return settings.open_backend(conf, url)[0]


def config_of(options, username=None, password=None):
    backend = RdkafkaBackend([("h1", 9093), ("h2", None)], options,
                             username, password)
    return backend.client_config()


def refusal(options, username=None, password=None):
    with pytest.raises(errors.ConfigError) as info:
        RdkafkaBackend([("h1", 9093)], options, username, password)
    return str(info.value)


# -- the backend is registered and its options exist ------------------------

def test_registered_with_its_options():
    groups = dict(opts.list_opts())
    names = {opt.dest for opt in groups["notifbus_rdkafka"]}
    assert {"acks", "compression_type", "producer_linger_ms",
            "session_timeout_ms", "auto_offset_reset", "security_protocol",
            "extra_config"} <= names


def test_no_option_shadows_a_common_one():
    # a URL parameter names the backend's option first: a clash would
    # hide the [notifbus] option of the same name
    common = {opt.dest for opt in opts.notifbus_opts}
    assert not common & {opt.dest for opt in RdkafkaBackend.list_opts()}


def test_url_overrides_options():
    backend = backend_from("notifbus+rdkafka://h1:9092,h2/?acks=1"
                           "&session_timeout_ms=1000&linger_ms=5")
    assert backend.bootstrap_servers == "h1:9092,h2:9092"
    assert backend.opt["acks"] == "1"
    assert backend.opt["session_timeout_ms"] == 1000


def test_unknown_url_option_is_refused():
    with pytest.raises(errors.ConfigError) as info:
        backend_from("notifbus+rdkafka://h1/?no_such_option=1")
    assert "no_such_option" in str(info.value)


def test_bad_choice_in_url_is_refused():
    with pytest.raises(errors.ConfigError) as info:
        backend_from("notifbus+rdkafka://h1/?acks=0")
    assert "acks" in str(info.value)


# -- what librdkafka is given -----------------------------------------------

def test_plaintext_defaults():
    config = config_of({})
    assert config["bootstrap.servers"] == "h1:9093,h2:9092"
    assert config["security.protocol"] == "plaintext"
    assert config["client.id"] == "notifbus"
    assert not (SASL_KEYS | SSL_KEYS) & set(config)


def test_producer_and_consumer_settings():
    backend = RdkafkaBackend([("h1", None)], {
        "acks": "1", "compression_type": "zstd", "producer_linger_ms": 2.5,
        "session_timeout_ms": 1000, "heartbeat_interval_ms": 100,
        "auto_offset_reset": "latest"})
    producer = backend.producer_config()
    assert producer["acks"] == 1
    assert producer["compression.type"] == "zstd"
    assert producer["linger.ms"] == 2.5
    assert producer["enable.idempotence"] is False
    consumer = backend.consumer_config("pool")
    assert consumer["group.id"] == "pool"
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["auto.offset.reset"] == "latest"
    assert (consumer["session.timeout.ms"],
            consumer["heartbeat.interval.ms"]) == (1000, 100)


def test_consumer_defaults_to_earliest():
    consumer = RdkafkaBackend([("h1", None)], {}).consumer_config("g")
    assert consumer["auto.offset.reset"] == "earliest"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256",
                                       "SCRAM-SHA-512"])
def test_sasl_plaintext_config(mechanism):
    config = config_of({"security_protocol": "SASL_PLAINTEXT",
                        "sasl_mechanism": mechanism,
                        "sasl_username": "svc", "sasl_password": "pw"})
    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.mechanism"] == mechanism
    assert (config["sasl.username"], config["sasl.password"]) == ("svc",
                                                                  "pw")
    assert not SSL_KEYS & set(config)


def test_sasl_ssl_config(certs):
    config = config_of({"security_protocol": "SASL_SSL",
                        "ssl_cafile": certs["ca"],
                        "ssl_check_hostname": False},
                       username="svc", password="pw")
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "PLAIN"
    assert config["ssl.ca.location"] == certs["ca"]
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert "ssl.certificate.location" not in config


def test_ssl_config_with_client_certificate(certs):
    config = config_of({"security_protocol": "SSL",
                        "ssl_cafile": certs["ca"],
                        "ssl_certfile": certs["locked_cert"],
                        "ssl_keyfile": certs["locked_key"],
                        "ssl_password": "k3y-pw"})
    assert {k: config[k] for k in SSL_KEYS} == {
        "ssl.ca.location": certs["ca"],
        "ssl.certificate.location": certs["locked_cert"],
        "ssl.key.location": certs["locked_key"],
        "ssl.key.password": "k3y-pw",
        "ssl.endpoint.identification.algorithm": "https"}
    assert not SASL_KEYS & set(config)


def test_url_credentials_win_over_options():
    backend = backend_from(
        "notifbus+rdkafka://url-user:url-pw@h1:9093/"
        "?security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-512"
        "&sasl_username=opt-user&sasl_password=opt-pw")
    config = backend.client_config()
    assert (config["sasl.username"], config["sasl.password"]) == (
        "url-user", "url-pw")
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"


def test_url_credentials_without_sasl_are_not_sent():
    backend = backend_from("notifbus+rdkafka://u:p@h1:9093/")
    assert not SASL_KEYS & set(backend.client_config())


def test_extra_config_is_passed_on():
    backend = backend_from("notifbus+rdkafka://h1/?extra_config="
                           "socket.keepalive.enable:true,"
                           "reconnect.backoff.max.ms:2000")
    config = backend.client_config()
    assert config["socket.keepalive.enable"] == "true"
    assert config["reconnect.backoff.max.ms"] == "2000"


def test_every_librdkafka_setting_is_known_to_librdkafka(certs):
    """What notifbus hands librdkafka is accepted by it: a client built
    from it (without brokers, so nothing connects) starts."""
    backend = RdkafkaBackend([("127.0.0.1", 1)], {
        "security_protocol": "SASL_SSL", "ssl_cafile": certs["ca"],
        "ssl_certfile": certs["locked_cert"],
        "ssl_keyfile": certs["locked_key"], "ssl_password": "k3y-pw",
        "extra_config": {"socket.keepalive.enable": "true"}},
        "svc", "pw")
    shared = dict(backend.client_config())
    shared.pop("bootstrap.servers")
    confluent_kafka.Consumer(dict(shared,
                                  **backend.consumer_config("g"))).close()
    producer = confluent_kafka.Producer(dict(shared,
                                             **backend.producer_config()))
    assert producer.flush(0) == 0


# -- refused before connecting ----------------------------------------------

@pytest.mark.parametrize("key", ["enable.auto.commit", "bootstrap.servers",
                                 "sasl.password", "acks"])
def test_extra_config_cannot_override_what_notifbus_sets(key):
    assert key in MANAGED
    message = refusal({"extra_config": {key: "x"}})
    assert f"extra_config sets {key}" in message


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("credentials", [
    {}, {"sasl_username": "svc"}, {"sasl_password": "pw"}])
def test_sasl_without_credentials_is_refused(protocol, credentials):
    message = refusal(dict({"security_protocol": protocol}, **credentials))
    assert f"security_protocol {protocol} needs a user name and a password" \
        in message


def test_sasl_without_credentials_is_refused_at_transport_creation():
    conf = cfg.ConfigOpts()
    conf([])
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf, url="notifbus+rdkafka://127.0.0.1:1/"
                      "?security_protocol=SASL_SSL")
    assert "needs a user name and a password" in str(info.value)


@pytest.mark.parametrize("option, value", [
    ("sasl_mechanism", "SCRAM-SHA-256"), ("sasl_username", "svc"),
    ("sasl_password", "s3cret-pw")])
def test_sasl_option_without_sasl_protocol_is_refused(option, value):
    message = refusal({option: value})
    assert f"{option} set while security_protocol is PLAINTEXT" in message
    assert value not in message or option != "sasl_password"


def test_ssl_option_without_ssl_protocol_is_refused(certs):
    message = refusal({"security_protocol": "SASL_PLAINTEXT",
                       "ssl_cafile": certs["ca"]}, "svc", "pw")
    assert "ssl_cafile set while security_protocol is SASL_PLAINTEXT" \
        in message


@pytest.mark.parametrize("option", ["ssl_cafile", "ssl_certfile",
                                    "ssl_keyfile"])
def test_missing_ssl_file_is_refused(certs, option):
    missing = str(certs["dir"] / f"no-such-{option}.pem")
    options = {"security_protocol": "SSL", "ssl_certfile": certs["cert"],
               "ssl_keyfile": certs["key"], option: missing}
    assert f"{option} {missing!r} does not exist" in refusal(options)


def test_cafile_without_certificates_is_refused(certs):
    message = refusal({"security_protocol": "SSL",
                       "ssl_cafile": certs["junk"]})
    assert "holds no usable CA certificate" in message


@pytest.mark.parametrize("password", [None, "wrong-pw"])
def test_encrypted_key_needs_its_password(certs, password):
    options = {"security_protocol": "SSL",
               "ssl_certfile": certs["locked_cert"],
               "ssl_keyfile": certs["locked_key"]}
    if password:
        options["ssl_password"] = password
    message = refusal(options)
    assert "ssl_password missing or wrong" in message
    assert "wrong-pw" not in message


# -- secrets stay hidden ----------------------------------------------------

def test_secret_options_are_marked_secret():
    secret = {opt.dest for opt in RdkafkaBackend.list_opts() if opt.secret}
    assert secret == {"sasl_password", "ssl_password", "extra_config"}


@pytest.mark.parametrize("extra", [
    {"no.such.property": "hunter2-value"},
    {"socket.keepalive.enable": "hunter2-value"}])
def test_extra_config_librdkafka_refuses_is_refused_naming_no_value(extra):
    message = refusal({"extra_config": extra})
    assert "librdkafka refused the configuration" in message
    assert next(iter(extra)) in message
    assert "hunter2-value" not in message
