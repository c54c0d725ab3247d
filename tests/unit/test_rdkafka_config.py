"""Options of the rdkafka backend: what librdkafka is given, what is
refused before anything connects; ``extra_config`` and its secrets.

The security settings both Kafka backends share (SASL, TLS, what is
refused, secrets) are tested on both in
:mod:`tests.unit.test_kafka_backends_security`."""

import confluent_kafka
import pytest
from oslo_config import cfg

from notifbus import errors, opts, settings
from notifbus.backends.rdkafka.backend import MANAGED, RdkafkaBackend


def backend_from(url):
    """The backend the oslo driver builds for transport URL ``url``."""
    conf = cfg.ConfigOpts()
    conf([])
    return settings.open_backend(conf, url)[0]


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
    assert backend.opts["acks"] == "1"
    assert backend.opts["session_timeout_ms"] == 1000


def test_unknown_url_option_is_refused():
    with pytest.raises(errors.ConfigError) as info:
        backend_from("notifbus+rdkafka://h1/?no_such_option=1")
    assert "no_such_option" in str(info.value)


def test_bad_choice_in_url_is_refused():
    with pytest.raises(errors.ConfigError) as info:
        backend_from("notifbus+rdkafka://h1/?acks=0")
    assert "acks" in str(info.value)


# -- what librdkafka is given -----------------------------------------------

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


# -- secrets stay hidden ----------------------------------------------------

@pytest.mark.parametrize("extra", [
    {"no.such.property": "hunter2-value"},
    {"socket.keepalive.enable": "hunter2-value"}])
def test_extra_config_librdkafka_refuses_is_refused_naming_no_value(extra):
    message = refusal({"extra_config": extra})
    assert "librdkafka refused the configuration" in message
    assert next(iter(extra)) in message
    assert "hunter2-value" not in message
