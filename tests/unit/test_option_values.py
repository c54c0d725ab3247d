"""Option values read as attributes (notifbus.option_values), the
namespace every backend gets as ``opts`` and the [notifbus] settings."""

import pytest
from oslo_config import cfg

from notifbus import backends, errors, opts
from notifbus.backends.memory import backend as memory
from notifbus.option_values import OptionValues, UnknownOption

DECLARED = [
    cfg.IntOpt("session_timeout_ms", default=10000),
    cfg.IntOpt("start_timeout_ms", default=-1),
    cfg.IntOpt("heartbeat_interval_ms"),
    cfg.StrOpt("acks", default="all"),
]


def test_declared_defaults_and_given_values():
    found = OptionValues("notifbus+test", DECLARED, {"acks": "1"})
    assert found.acks == "1"
    assert found.session_timeout_ms == 10000
    assert found.heartbeat_interval_ms is None


def test_seconds_are_derived_from_milliseconds():
    found = OptionValues("notifbus+test", DECLARED,
                         {"session_timeout_ms": 1500})
    assert found.session_timeout_s == 1.5
    # unset, or -1 (no limit): None
    assert found.heartbeat_interval_s is None
    assert found.start_timeout_s is None


def test_an_unknown_name_names_the_owner_and_the_option():
    found = OptionValues("notifbus+test", DECLARED)
    with pytest.raises(UnknownOption) as info:
        _ = found.sesion_timeout_ms
    assert isinstance(info.value, AttributeError)
    assert "notifbus+test" in str(info.value)
    assert "'sesion_timeout_ms'" in str(info.value)
    assert "'session_timeout_ms'" in str(info.value)  # the close match
    with pytest.raises(UnknownOption):
        _ = found.acks_s  # no acks_ms: nothing to derive


def test_an_undeclared_value_is_refused():
    with pytest.raises(errors.ConfigError, match="'ackz'"):
        OptionValues("notifbus+test", DECLARED, {"ackz": "1"})


def test_values_are_read_only():
    found = OptionValues("notifbus+test", DECLARED)
    with pytest.raises(AttributeError, match="read-only"):
        found.acks = "1"
    with pytest.raises(TypeError):
        found["acks"] = "1"


def test_a_read_only_mapping_of_the_declared_options():
    found = OptionValues("notifbus+test", DECLARED, {"acks": "1"})
    assert found["acks"] == "1"
    assert dict(found) == {"session_timeout_ms": 10000,
                           "start_timeout_ms": -1,
                           "heartbeat_interval_ms": None, "acks": "1"}
    assert "session_timeout_s" not in found


def _installed(name):
    try:
        return backends.load(name)
    except errors.BackendUnavailable:
        return None


@pytest.mark.parametrize("name", opts.BUILTIN_BACKENDS)
def test_every_backend_reads_its_declared_defaults(name):
    backend_cls = _installed(name)
    if backend_cls is None:
        pytest.skip(f"the {name} extra is not installed")
    backend = backend_cls([("127.0.0.1", None)] if name != "memory" else [],
                          {})
    try:
        for opt in backend_cls.declared_opts():
            assert getattr(backend.opts, opt.dest) == opt.default
        with pytest.raises(UnknownOption, match=backend_cls.__name__):
            _ = backend.opts.no_such_option
    finally:
        backend.close(0)


def test_a_backend_reading_a_dict_still_gets_one():
    # third-party backends written before opts read self.options
    backend = memory.MemoryBackend([], {"auto_offset_reset": "latest"})
    assert backend.options == {"auto_offset_reset": "latest"}
    assert backend.opts.auto_offset_reset == "latest"


def test_both_kafka_backends_declare_the_shared_options_alike():
    kafka = _installed("kafka")
    rdkafka = _installed("rdkafka")
    if kafka is None or rdkafka is None:
        pytest.skip("needs the kafka and rdkafka extras")
    from notifbus.backends.kafka_common import options as kafka_options

    shared = {opt.dest for opt in kafka_options.shared_opts()}
    assert len(shared) >= 14
    first = {o.dest: o for o in kafka.list_opts() if o.dest in shared}
    second = {o.dest: o for o in rdkafka.list_opts() if o.dest in shared}
    assert set(first) == set(second) == shared
    for name in shared:
        assert first[name].help == second[name].help, name
        assert first[name].default == second[name].default, name
