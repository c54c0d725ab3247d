"""Backend adapters, loaded through stevedore.

Each package here is one backend, cut the same way (``backend``: the
:class:`~notifbus.backends.base.Backend`; ``consumer``: its
:class:`~notifbus.backends.base.Consumer`; ``options``: its
``[notifbus_<name>]`` options); ``kafka_common`` holds what the two Kafka
backends share, ``base`` the contract, ``threads`` the bounded waits on a
client library's blocking calls. Third-party packages add backends to the
``notifbus.backends`` entry point group.
"""

import importlib.metadata

from stevedore import driver

from notifbus import errors

NAMESPACE = "notifbus.backends"


def names():
    """Names of every registered backend."""
    eps = importlib.metadata.entry_points()
    if hasattr(eps, "select"):
        found = eps.select(group=NAMESPACE)
    else:  # Python < 3.10
        found = eps.get(NAMESPACE, [])
    return sorted({ep.name for ep in found})


def install_hint(name):
    """What to install when the backend registered as ``name`` cannot be
    imported, as a sentence: notifbus's own backends need the extra of the
    same name (``notifbus[kafka]``); a backend of another distribution
    (found from its entry point), that distribution with its
    dependencies."""
    eps = importlib.metadata.entry_points()
    found = (eps.select(group=NAMESPACE, name=name) if hasattr(eps, "select")
             else [ep for ep in eps.get(NAMESPACE, []) if ep.name == name])
    dists = {getattr(getattr(ep, "dist", None), "name", None)
             for ep in found}
    dist_name = dists.pop() if len(dists) == 1 else None
    if dist_name is None or dist_name.lower() == "notifbus":
        return (f" Install its client, for example with 'pip install "
                f"notifbus[{name}]'.")
    return (f" It comes from the distribution {dist_name!r}: install it "
            f"again with its dependencies ('pip install --force-reinstall "
            f"{dist_name}').")


def load(name):
    """Return the backend class registered as ``name``.

    :raises BackendNotFound: nothing is registered under ``name``.
    :raises BackendUnavailable: it is registered but its import failed,
        typically because the extra that installs its client is missing.
    """

    def _reraise(manager, entrypoint, exc):
        hint = install_hint(name) if isinstance(exc, ImportError) else ""
        raise errors.BackendUnavailable(
            f"notifbus backend {name!r} ({entrypoint.value}) could not be "
            f"loaded: {exc}.{hint}") from exc

    if name not in names():
        raise errors.BackendNotFound(
            f"no notifbus backend named {name!r}; registered backends: "
            f"{', '.join(names()) or 'none'}. Check the scheme of the "
            f"transport URL (notifbus+<backend>://...).")
    manager = driver.DriverManager(
        NAMESPACE, name, invoke_on_load=False,
        on_load_failure_callback=_reraise)
    return manager.driver
