"""Tests of transport URL and configuration resolution."""

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import backends, errors, opts, settings
from notifbus.backends.memory import backend as memory


def resolve(url, conf=None):
    conf = conf if conf is not None else cfg.ConfigOpts()
    return settings.resolve(conf, oslo_messaging.TransportURL.parse(conf, url))


def default(option, backend_cls=None):
    """Default of ``option`` as declared, not as resolved."""
    option_list = (opts.notifbus_opts if backend_cls is None
                   else backend_cls.list_opts())
    return next(o.default for o in option_list if o.dest == option)


def test_backend_from_scheme():
    assert resolve("notifbus+memory://c1/").backend == "memory"
    assert resolve("notifbus+kafka://h:9092/").backend == "kafka"


def test_defaults_without_query():
    found = resolve("notifbus+memory://c1/")
    assert found.common == {o.dest: o.default for o in opts.notifbus_opts}
    assert found.backend_options == {
        o.dest: o.default for o in memory.MemoryBackend.list_opts()}


@pytest.mark.parametrize("url, transport", [
    ("kafka://h:9092/", "kafka"),
    ("notifbus://h:9092/", "notifbus"),
    ("notifbus+://h:9092/", "notifbus+"),
    ("rabbit+kafka://h:9092/", "rabbit+kafka"),
])
def test_bad_scheme(url, transport):
    with pytest.raises(errors.ConfigError) as info:
        resolve(url)
    message = str(info.value)
    assert repr(transport) in message
    assert "notifbus+<backend>://" in message
    for name in backends.names():
        assert name in message


def test_unknown_backend_lists_registered_ones():
    with pytest.raises(errors.BackendNotFound) as info:
        resolve("notifbus+nosuchbroker://h:1/")
    message = str(info.value)
    assert "'nosuchbroker'" in message
    registered = backends.names()
    assert {"memory", "kafka"} <= set(registered)
    assert ", ".join(registered) in message


def test_backend_option_from_query():
    found = resolve("notifbus+memory://c1/?auto_offset_reset=latest")
    assert found.backend_options["auto_offset_reset"] == "latest"
    assert "auto_offset_reset" not in found.common


def test_common_option_from_query_typed():
    found = resolve(
        "notifbus+kafka://h:9092/?max_batch_records=7&linger_ms=2.5"
        "&exchange_in_topic=true&partitioner=key_hash&consumer_group=g1")
    common = found.common
    assert common["max_batch_records"] == 7
    assert isinstance(common["max_batch_records"], int)
    assert common["linger_ms"] == 2.5
    assert isinstance(common["linger_ms"], float)
    assert common["exchange_in_topic"] is True
    assert common["partitioner"] == "key_hash"
    assert common["consumer_group"] == "g1"
    # What the query does not name keeps its default.
    assert common["max_batch_bytes"] == default("max_batch_bytes")


def test_kafka_options_from_query_typed():
    found = resolve("notifbus+kafka://h:9092/?acks=1&replication_factor=3"
                    "&ssl_check_hostname=false")
    backend = found.backend_options
    assert backend["acks"] == "1"
    assert backend["replication_factor"] == 3
    assert backend["ssl_check_hostname"] is False


def test_no_option_is_in_both_groups():
    # a name in both would be set by the URL in the backend group only,
    # leaving the [notifbus] value the bus uses untouched
    common = {opt.dest for opt in opts.notifbus_opts}
    for name in ("memory", "kafka"):
        specific = {opt.dest for opt in backends.load(name).list_opts()}
        assert not common & specific, name


def test_common_option_in_a_memory_url_reaches_the_bus():
    found = resolve("notifbus+memory://c1/?num_partitions=9")
    assert found.common["num_partitions"] == 9


@pytest.mark.parametrize("query, option", [
    ("linger_ms=abc", "linger_ms"),
    ("max_batch_records=many", "max_batch_records"),
    ("max_batch_records=0", "max_batch_records"),
    ("exchange_in_topic=maybe", "exchange_in_topic"),
    ("partitioner=random", "partitioner"),
    ("auto_offset_reset=middle", "auto_offset_reset"),
    ("num_partitions=0", "num_partitions"),
])
def test_invalid_value_names_the_option(query, option):
    with pytest.raises(errors.ConfigError) as info:
        resolve(f"notifbus+memory://c1/?{query}")
    message = str(info.value)
    assert repr(option) in message
    assert repr(query.partition("=")[2]) in message
    assert "notifbus+memory" in message


def test_unknown_option_lists_valid_names():
    with pytest.raises(errors.ConfigError) as info:
        resolve("notifbus+memory://c1/?lingerms=5")
    message = str(info.value)
    assert "'lingerms'" in message
    valid = sorted({o.dest for o in opts.notifbus_opts}
                   | {o.dest for o in memory.MemoryBackend.list_opts()})
    assert ", ".join(valid) in message


def test_unknown_option_is_per_backend():
    # A Kafka option is not valid in a memory URL.
    with pytest.raises(errors.ConfigError, match="'acks'"):
        resolve("notifbus+memory://c1/?acks=1")


def test_config_overrides_used_when_query_is_silent():
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf.set_override("linger_ms", 4.0, group="notifbus")
    conf.set_override("consumer_group", "from-conf", group="notifbus")
    conf.set_override("auto_offset_reset", "latest", group="notifbus_memory")
    found = resolve("notifbus+memory://c1/?consumer_group=from-url", conf)
    assert found.common["linger_ms"] == 4.0
    assert found.backend_options["auto_offset_reset"] == "latest"
    assert found.common["consumer_group"] == "from-url"


def test_config_file(tmp_path):
    config_file = tmp_path / "notifbus.conf"
    config_file.write_text("[notifbus]\nmax_batch_records = 11\n"
                           "[notifbus_kafka]\nclient_id = from-file\n")
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf(["--config-file", str(config_file)])
    found = resolve("notifbus+kafka://h:9092/?client_id=from-url", conf)
    assert found.common["max_batch_records"] == 11
    assert found.backend_options["client_id"] == "from-url"


def test_resolve_registers_options():
    conf = cfg.ConfigOpts()
    resolve("notifbus+memory://c1/", conf)
    assert conf.notifbus.max_batch_records == default("max_batch_records")
    assert conf.notifbus_memory.auto_offset_reset == default(
        "auto_offset_reset", backend_cls=memory.MemoryBackend)


def test_a_transport_registers_the_selected_backend_group_only():
    conf = cfg.ConfigOpts()
    resolve("notifbus+memory://c1/", conf)
    groups = set(conf.keys())
    assert {"notifbus", "notifbus_memory"} <= groups
    assert not {"notifbus_kafka", "notifbus_rdkafka", "notifbus_nats"} & \
        groups


def test_common_settings_are_frozen_attributes_with_seconds():
    found = resolve("notifbus+memory://c1/?send_timeout_ms=2500"
                    "&listener_start_timeout_ms=-1")
    assert found.common.send_timeout_ms == 2500
    assert found.common.send_timeout_s == 2.5
    assert found.common.listener_start_timeout_s is None
    with pytest.raises(AttributeError):
        found.common.send_timeout_ms = 1
    with pytest.raises(AttributeError, match="'send_timout_ms'"):
        _ = found.common.send_timout_ms


def test_hosts_credentials_and_vhost():
    found = resolve("notifbus+kafka://user:s3cr%40t@h1:9092,user:s3cr%40t@"
                    "h2/vhost1")
    assert found.hosts == [("h1", 9092), ("h2", None)]
    assert found.username == "user"
    assert found.password == "s3cr@t"
    assert found.virtual_host == "vhost1"
    assert found.describe_hosts() == "h1:9092,h2"


def test_no_credentials_no_vhost():
    found = resolve("notifbus+kafka://h1:9092/")
    assert (found.username, found.password, found.virtual_host) == (
        None, None, None)


def test_no_hosts():
    found = resolve("notifbus+memory:///")
    assert found.hosts == []
    assert found.describe_hosts() == ""


def test_repr_masks_password():
    found = resolve("notifbus+kafka://user:hunter2secret@h1:9092/")
    text = repr(found)
    assert "hunter2secret" not in text
    assert "password='***'" in text
    assert "user" in text
    assert "h1" in text
    assert "hunter2secret" not in str(found)


def test_repr_without_password():
    assert "password=None" in repr(resolve("notifbus+kafka://h1:9092/"))


# Query semantics, against oslo.messaging's own parsing of the URL
# (TransportURL.parse joins a repeated parameter's values with ',').

@pytest.mark.parametrize("query, option", [
    ("session_timeout_ms=1000&session_timeout_ms=2000", "session_timeout_ms"),
    ("client_id=a&client_id=b", "client_id"),
    ("client_id=a%2Cb", "client_id"),
    ("linger_ms=1.5&linger_ms=2", "linger_ms"),
    ("ssl_check_hostname=true&ssl_check_hostname=false",
     "ssl_check_hostname"),
    ("acks=1&acks=all", "acks"),
])
def test_repeated_single_valued_option_is_refused(query, option):
    with pytest.raises(errors.ConfigError) as info:
        resolve(f"notifbus+kafka://h:9092/?{query}")
    message = str(info.value)
    assert f"option {option!r} is given more than once" in message
    assert f"give {option} once" in message
    assert "[notifbus_kafka]" in message


def test_repeated_option_message_hides_secrets():
    with pytest.raises(errors.ConfigError) as info:
        resolve("notifbus+kafka://h:9092/?sasl_password=s3cr1t"
                "&sasl_password=other")
    assert "'sasl_password'" in str(info.value)
    assert "s3cr1t" not in str(info.value)


def test_repeated_dict_option_adds_entries():
    found = resolve("notifbus+rdkafka://h:9092/?extra_config=a.b:1"
                    "&extra_config=c.d:x")
    assert found.backend_options["extra_config"] == {"a.b": "1", "c.d": "x"}
    same = resolve("notifbus+rdkafka://h:9092/?extra_config=a.b:1,c.d:x")
    assert same.backend_options["extra_config"] == {"a.b": "1", "c.d": "x"}


def test_dict_option_with_a_key_twice_is_refused_without_its_values():
    with pytest.raises(errors.ConfigError) as info:
        resolve("notifbus+rdkafka://h:9092/?extra_config=a.b:1"
                "&extra_config=a.b:2")
    message = str(info.value)
    assert "'extra_config'" in message
    assert "a.b:2" not in message  # extra_config is secret


def test_list_value_of_a_hand_built_url():
    conf = cfg.ConfigOpts()
    url = oslo_messaging.TransportURL(
        conf, "notifbus+kafka", hosts=[oslo_messaging.TransportHost("h")],
        query={"client_id": ["a", "b"]})
    with pytest.raises(errors.ConfigError, match="'client_id' is given"):
        settings.resolve(conf, url)
    url.query = {"client_id": ["a"]}
    assert settings.resolve(conf, url).backend_options["client_id"] == "a"


@pytest.mark.parametrize("query", ["client_id=", "client_id",
                                   "client_id=&client_id="])
def test_empty_value_keeps_the_configured_one(query):
    # oslo.messaging drops parameters without a value
    assert resolve(f"notifbus+kafka://h:9092/?{query}").backend_options[
        "client_id"] == default("client_id", backends.load("kafka"))


@pytest.mark.parametrize("query", ["client_id=&client_id=b",
                                   "client_id=b&client_id="])
def test_empty_value_beside_a_value(query):
    assert resolve(f"notifbus+kafka://h:9092/?{query}").backend_options[
        "client_id"] == "b"


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("1", True),
    ("false", False), ("No", False), ("off", False), ("0", False),
])
def test_boolean_spellings(raw, expected):
    found = resolve(f"notifbus+memory://c1/?exchange_in_topic={raw}")
    assert found.common["exchange_in_topic"] is expected


@pytest.mark.parametrize("query, expected", [
    ("client_id=a%20b", "a b"),
    ("client_id=a+b", "a b"),          # '+' is a space in a query
    ("client_id=a%2Bb", "a+b"),
    ("client_id=a%26b%3Dc", "a&b=c"),
    ("client_id=a=b", "a=b"),
    ("client_id=%C3%A9t%C3%A9", "\u00e9t\u00e9"),
])
def test_percent_encoding(query, expected):
    found = resolve(f"notifbus+kafka://h:9092/?{query}")
    assert found.backend_options["client_id"] == expected
