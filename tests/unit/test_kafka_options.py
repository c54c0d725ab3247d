"""Options of the Kafka backends that constrain each other: the heartbeat
that follows the session timeout, and the settings refused when the
transport is created, before anything connects."""

import confluent_kafka
import oslo_messaging
import pytest
from kafka.coordinator.heartbeat import Heartbeat
from oslo_config import cfg

from notifbus import errors, opts, settings
from notifbus.backends.kafka.backend import KafkaBackend, KafkaConsumer
from notifbus.backends.kafka_common import options as kafka_options
from notifbus.backends.rdkafka.backend import RdkafkaBackend

BACKENDS = ("kafka", "rdkafka")


def new_conf(**overrides):
    """A configuration with ``overrides`` as ``{group: {option: value}}``."""
    conf = cfg.ConfigOpts()
    conf([])
    opts.register_opts(conf)
    for group, values in overrides.items():
        for name, value in values.items():
            conf.set_override(name, value, group=group)
    return conf


def transport_backend(url, conf=None):
    """The backend of the oslo transport built for ``url``."""
    transport = oslo_messaging.get_notification_transport(
        conf or new_conf(), url=url)
    try:
        return transport._driver.backend
    finally:
        transport.cleanup()


def refusal(url, conf=None):
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(conf or new_conf(),
                                                  url=url)
    return str(info.value)


class _Consumer:
    """What KafkaConsumer needs of kafka-python's consumer here."""

    def subscribe(self, topics, listener=None):
        self.topics = topics


def group_timings(backend):
    """``(session timeout, heartbeat interval)`` that a listener's client
    is given: kafka-python's consumer arguments, librdkafka's
    properties."""
    if isinstance(backend, RdkafkaBackend):
        config = backend.consumer_config("pool")
        return config["session.timeout.ms"], config["heartbeat.interval.ms"]
    given = {}

    def connect(factory, what, **config):
        given.update(config)
        return _Consumer()

    backend._connect = connect
    KafkaConsumer(backend, ["t"], "pool", None)
    return given["session_timeout_ms"], given["heartbeat_interval_ms"]


# -- the heartbeat follows the session timeout --------------------------------

@pytest.mark.parametrize("backend_cls", [KafkaBackend, RdkafkaBackend])
def test_heartbeat_is_unset_by_default(backend_cls):
    declared = {o.dest: o for o in backend_cls.list_opts()}
    assert declared["heartbeat_interval_ms"].default is None
    assert declared["session_timeout_ms"].default == 10000
    assert "a third of session_timeout_ms" in \
        declared["heartbeat_interval_ms"].help


@pytest.mark.parametrize("backend", BACKENDS)
def test_session_timeout_alone_works_through_oslo(backend):
    """Without the derived heartbeat, kafka-python refused this listener:
    'Heartbeat interval must be lower than the session timeout'."""
    found = transport_backend(
        f"notifbus+{backend}://127.0.0.1:1/?session_timeout_ms=1000")
    session, heartbeat = group_timings(found)
    assert (session, heartbeat) == (1000, 333)
    Heartbeat(group_id="pool", session_timeout_ms=session,
              heartbeat_interval_ms=heartbeat)  # kafka-python's check


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("session, heartbeat", [
    (10000, 1000), (45000, 1000), (3003, 1000), (2400, 800), (1000, 333),
    (6, 2)])
def test_heartbeat_is_a_third_of_the_session_at_most_a_second(
        backend, session, heartbeat):
    found, _ = settings.open_backend(
        new_conf(), f"notifbus+{backend}://h1/?session_timeout_ms={session}")
    assert group_timings(found) == (session, heartbeat)


@pytest.mark.parametrize("backend", BACKENDS)
def test_heartbeat_follows_a_configured_session_timeout(backend):
    conf = new_conf(**{f"notifbus_{backend}": {"session_timeout_ms": 1500}})
    found = transport_backend(f"notifbus+{backend}://127.0.0.1:1/", conf)
    assert group_timings(found) == (1500, 500)


@pytest.mark.parametrize("backend", BACKENDS)
def test_defaults_keep_a_heartbeat_of_one_second(backend):
    found = transport_backend(f"notifbus+{backend}://127.0.0.1:1/")
    assert group_timings(found) == (10000, 1000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_heartbeat_set_wins(backend):
    found, _ = settings.open_backend(
        new_conf(), f"notifbus+{backend}://h1/?session_timeout_ms=1000"
                    "&heartbeat_interval_ms=100")
    assert group_timings(found) == (1000, 100)


def test_derived_heartbeat_bounds():
    assert kafka_options.derived_heartbeat_ms(1) == 1
    assert kafka_options.derived_heartbeat_ms(2999) == 999
    assert kafka_options.derived_heartbeat_ms(3000) == 1000
    assert kafka_options.derived_heartbeat_ms(1800000) == 1000


# -- options that constrain each other, refused at transport creation ---------

@pytest.mark.parametrize("backend", BACKENDS)
def test_heartbeat_not_below_session_is_refused(backend):
    message = refusal(f"notifbus+{backend}://127.0.0.1:1/"
                      "?session_timeout_ms=3000&heartbeat_interval_ms=3000")
    assert message.startswith(f"notifbus+{backend}: ")
    assert ("heartbeat_interval_ms (3000) must be lower than "
            "session_timeout_ms (3000)") in message
    assert "lower heartbeat_interval_ms, or raise session_timeout_ms" \
        in message
    assert "leave heartbeat_interval_ms unset" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_configured_heartbeat_not_below_session_is_refused(backend):
    conf = new_conf(**{f"notifbus_{backend}": {
        "session_timeout_ms": 6000, "heartbeat_interval_ms": 9000}})
    message = refusal(f"notifbus+{backend}://127.0.0.1:1/", conf)
    assert ("heartbeat_interval_ms (9000) must be lower than "
            "session_timeout_ms (6000)") in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_session_too_short_for_any_heartbeat_is_refused(backend):
    message = refusal(f"notifbus+{backend}://127.0.0.1:1/"
                      "?session_timeout_ms=1")
    assert ("heartbeat_interval_ms (1, derived from session_timeout_ms) "
            "must be lower than session_timeout_ms (1)") in message
    assert message.endswith("raise session_timeout_ms")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fetch_wait_not_below_request_timeout_is_refused(backend):
    message = refusal(f"notifbus+{backend}://127.0.0.1:1/"
                      "?request_timeout_ms=2000&fetch_max_wait_ms=2000")
    assert ("fetch_max_wait_ms (2000) must be lower than "
            "request_timeout_ms (2000)") in message
    assert "lower fetch_max_wait_ms, or raise request_timeout_ms" in message


@pytest.mark.parametrize("query, names", [
    ("request_timeout_ms=130000",
     "request_timeout_ms (130000) must be at most delivery_timeout_ms "
     "(120000)"),
    ("request_timeout_ms=540000&delivery_timeout_ms=600000",
     "request_timeout_ms (540000) must be lower than kafka-python's "
     "connections_max_idle_ms (540000)"),
], ids=["delivery", "idle-connection"])
def test_kafka_timeouts_that_contradict_are_refused(query, names):
    message = refusal(f"notifbus+kafka://127.0.0.1:1/?{query}")
    assert names in message
    assert "lower request_timeout_ms" in message


@pytest.mark.parametrize("query, names, fix", [
    ("session_timeout_ms=20000&max_poll_interval_ms=10000",
     "session_timeout_ms (20000) must be at most max_poll_interval_ms "
     "(10000)", "raise max_poll_interval_ms"),
    ("message_timeout_ms=30000&producer_linger_ms=2.5",
     "request_timeout_ms (30000) + producer_linger_ms (2.5) must be at "
     "most message_timeout_ms (30000)",
     "lower request_timeout_ms or producer_linger_ms, or raise "
     "message_timeout_ms"),
    ("message_max_bytes=2000000&fetch_max_bytes=1000000",
     "message_max_bytes (2000000) must be at most fetch_max_bytes "
     "(1000000)", "raise fetch_max_bytes"),
], ids=["max-poll-interval", "message-timeout", "fetch-max-bytes"])
def test_rdkafka_options_that_contradict_are_refused(query, names, fix):
    message = refusal(f"notifbus+rdkafka://127.0.0.1:1/?{query}")
    assert names in message
    assert fix in message


@pytest.mark.parametrize("value", [5, 300001])
def test_rdkafka_request_timeout_outside_librdkafka_range_is_refused(value):
    message = refusal(f"notifbus+rdkafka://127.0.0.1:1/"
                      f"?request_timeout_ms={value}")
    assert "request_timeout_ms" in message


@pytest.mark.parametrize("backend, query", [
    ("kafka", "request_timeout_ms=120000&fetch_max_wait_ms=119999"),
    ("kafka", "request_timeout_ms=539999&delivery_timeout_ms=539999"),
    ("rdkafka", "session_timeout_ms=20000&max_poll_interval_ms=20000"),
    ("rdkafka", "message_timeout_ms=30005&producer_linger_ms=5"),
    ("rdkafka", "message_max_bytes=1000000&fetch_max_bytes=1000000"),
    ("rdkafka", "request_timeout_ms=10&fetch_max_wait_ms=9"),
])
def test_settings_at_the_limits_are_accepted(backend, query):
    transport_backend(f"notifbus+{backend}://127.0.0.1:1/?{query}")


@pytest.mark.parametrize("query", [
    "session_timeout_ms=20000&max_poll_interval_ms=20000"
    "&message_max_bytes=1000000&fetch_max_bytes=1000000",
    "session_timeout_ms=1000&message_timeout_ms=30005&producer_linger_ms=5",
])
def test_librdkafka_takes_what_the_checks_accept(query):
    """The checks refuse no more than librdkafka: its clients are built
    from settings at the limits."""
    backend, _ = settings.open_backend(
        new_conf(), f"notifbus+rdkafka://127.0.0.1:1/?{query}")
    base = dict(backend.client_config(), logger=_Discard())
    consumer = confluent_kafka.Consumer(dict(
        base, **backend.consumer_config("pool")))
    consumer.close()
    confluent_kafka.Producer(dict(base, **backend.producer_config()))


class _Discard:
    def log(self, *args):
        pass


# -- topics notifbus creates -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_created_topics_default_to_the_brokers_replication(backend):
    found = transport_backend(f"notifbus+{backend}://127.0.0.1:9/")
    options = found.opts
    assert kafka_options.new_topic(options) == (-1, {})
    assert options["create_topics"] is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_topic_config_and_creation_from_the_url(backend):
    found = transport_backend(
        f"notifbus+{backend}://127.0.0.1:9/?create_topics=false"
        f"&replication_factor=3"
        f"&topic_config=retention.ms:3600000,min.insync.replicas:2")
    options = found.opts
    assert options["create_topics"] is False
    assert kafka_options.new_topic(options) == (
        3, {"retention.ms": "3600000", "min.insync.replicas": "2"})


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_replication_factor_of_zero_is_refused(backend):
    message = refusal(f"notifbus+{backend}://127.0.0.1:9/"
                      f"?replication_factor=0")
    assert "replication_factor" in message and "-1" in message
