"""Tests of backend discovery and loading through stevedore."""

import importlib
import importlib.metadata
import uuid

import pytest
import stevedore.driver
from stevedore.extension import ExtensionManager

from notifbus import backends, errors, opts
from notifbus.backends import base
from notifbus.backends.memory import backend as memory

GROUP = backends.NAMESPACE


@pytest.fixture
def register(tmp_path, monkeypatch):
    """Register entry points of a fake distribution found on sys.path.

    ``register(**{name: "module:Attr"})`` returns the backend names, made
    unique so that no cache from another test can answer for them.
    """

    def _register(modules=None, **entries):
        suffix = uuid.uuid4().hex[:8]
        names = {f"{name}_{suffix}": target
                 for name, target in entries.items()}
        dist = tmp_path / f"fakebackend_{suffix}-0.0.dist-info"
        dist.mkdir()
        dist.joinpath("METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fakebackend-{suffix}\n"
            f"Version: 0.0\n")
        lines = [f"[{GROUP}]"] + [f"{name} = {target}"
                                  for name, target in names.items()]
        dist.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in (modules or {}).items():
            tmp_path.joinpath(f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()
        # stevedore lists a namespace once per process; make it look again
        # (monkeypatch puts the cached list back afterwards).
        monkeypatch.delitem(ExtensionManager.ENTRY_POINT_CACHE, GROUP,
                            raising=False)
        return list(names)

    return _register


@pytest.fixture
def stevedore_calls(monkeypatch):
    """Record the DriverManager constructions made by backends.load."""
    calls = []
    real = stevedore.driver.DriverManager

    def spy(namespace, name, *args, **kwargs):
        calls.append((namespace, name))
        return real(namespace, name, *args, **kwargs)

    monkeypatch.setattr(backends.driver, "DriverManager", spy)
    return calls


def test_names_include_builtin_backends():
    found = backends.names()
    assert {"memory", "kafka"} <= set(found)
    assert found == sorted(set(found))


def test_load_memory_returns_the_class(stevedore_calls):
    cls = backends.load("memory")
    assert cls is memory.MemoryBackend
    assert issubclass(cls, base.Backend)
    assert stevedore_calls == [(GROUP, "memory")]


def test_load_kafka_returns_the_class():
    from notifbus.backends.kafka import backend as kafka

    assert backends.load("kafka") is kafka.KafkaBackend


def test_unknown_backend(stevedore_calls):
    with pytest.raises(errors.BackendNotFound) as info:
        backends.load("does_not_exist")
    message = str(info.value)
    assert "'does_not_exist'" in message
    assert "memory" in message and "kafka" in message
    assert "notifbus+<backend>://" in message
    assert stevedore_calls == []


def test_registered_backend_is_listed(register):
    [name] = register(extra="notifbus.backends.memory.backend:MemoryBackend")
    assert name in backends.names()
    assert backends.load(name) is memory.MemoryBackend


def test_missing_module_is_unavailable_with_install_hint(register,
                                                         stevedore_calls):
    [name] = register(broken="notifbus_missing_module:Backend")
    assert name in backends.names()
    with pytest.raises(errors.BackendUnavailable) as info:
        backends.load(name)
    message = str(info.value)
    assert repr(name) in message
    assert "notifbus_missing_module:Backend" in message
    # the backend's own distribution, not an extra of notifbus that does
    # not exist
    dist = f"fakebackend-{name.rsplit('_', 1)[1]}"
    assert f"pip install --force-reinstall {dist}" in message
    assert "notifbus[" not in message
    assert isinstance(info.value.__cause__, ImportError)
    assert info.value.__cause__.name == "notifbus_missing_module"
    # Loaded through stevedore, not imported by hand.
    assert stevedore_calls == [(GROUP, name)]


def test_builtin_backend_hint_names_the_extra():
    assert backends.install_hint("nats") == (
        " Install its client, for example with 'pip install "
        "notifbus[nats]'.")


def test_failing_import_other_than_import_error(register):
    module = f"notifbus_exploding_{uuid.uuid4().hex[:8]}"
    [name] = register(
        modules={module: "raise RuntimeError('client init exploded')\n"},
        exploding=f"{module}:Backend")
    with pytest.raises(errors.BackendUnavailable) as info:
        backends.load(name)
    message = str(info.value)
    assert repr(name) in message
    assert "client init exploded" in message
    assert "pip install" not in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_missing_attribute_is_unavailable(register):
    module = f"notifbus_empty_{uuid.uuid4().hex[:8]}"
    [name] = register(modules={module: "X = 1\n"},
                      empty=f"{module}:Backend")
    with pytest.raises(errors.BackendUnavailable) as info:
        backends.load(name)
    assert repr(name) in str(info.value)
    assert f"{module}:Backend" in str(info.value)


def test_options_skip_unavailable_backend(register):
    [name] = register(broken="notifbus_missing_module:Backend")
    groups = dict(opts.list_opts())
    assert opts.GROUP in groups
    assert opts.backend_group("memory") in groups
    assert opts.backend_group(name) not in groups


def test_entry_point_seen_by_importlib_metadata(register):
    [name] = register(broken="notifbus_missing_module:Backend")
    eps = importlib.metadata.entry_points()
    found = (eps.select(group=GROUP) if hasattr(eps, "select")
             else eps.get(GROUP, []))
    assert {ep.name: ep.value for ep in found}[name] == (
        "notifbus_missing_module:Backend")
