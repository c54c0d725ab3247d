"""nats-py's private attributes that the ``nats`` backend uses, in one
place.

nats-py has no public API for what these do: read the ``INFO`` a server
sent before a connection failed (to name the cause: TLS required, an
authentication error), tell whether a connection is TLS, abort a
connection whose TLS handshake failed (its ``close`` would wait for a
stream that never reports closing), and turn reconnects on once the first
connection is made (so that a bad address fails at once instead of being
retried). Every such access goes through a function here, which names the
attribute, so that a nats-py upgrade is checked in one module.

At import, the installed nats-py must be in :data:`TESTED` (the range of
the ``nats`` extra); otherwise importing the backend raises
:class:`ImportError` naming the version found and the fix, which the
backend loader reports as :class:`~notifbus.errors.BackendUnavailable`.
The attributes are read with a fallback: a missing one turns the feature
off (each function says how).
"""

import importlib.metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version

#: nats-py versions these accesses were written and tested for: the range
#: of the ``nats`` extra in ``setup.cfg``.
TESTED_RANGE = ">=2.6,<3"
TESTED = SpecifierSet(TESTED_RANGE)


def check(version=None):
    """Refuse a nats-py these accesses were not written for.

    :raises ImportError: ``version`` (default: the installed one) is
        outside :data:`TESTED`; the message names it and the fix.
    """
    version = version or importlib.metadata.version("nats-py")
    if Version(version) not in TESTED:
        raise ImportError(
            f"notifbus's nats backend needs nats-py{TESTED_RANGE}, and "
            f"nats-py {version} is installed; install a tested version: "
            f"pip install 'nats-py{TESTED_RANGE}'")


check()


def server_info(nc):
    """The server's ``INFO`` (``_server_info``), a new dict, ``{}`` before
    the server sent one."""
    return dict(getattr(nc, "_server_info", None) or {})


def uses_tls(nc):
    """Whether the client's connection is TLS now: the stream writer's
    ``ssl_object`` (``_transport._io_writer``), else whether the server
    requires TLS."""
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    if writer is not None:
        return writer.get_extra_info("ssl_object") is not None
    return bool(server_info(nc).get("tls_required"))


def abort_connection(nc):
    """Abort the sockets of the client's connection, the TLS one and the
    bare one under it (``_transport._io_writer``,
    ``_transport._bare_io_writer``); does nothing without them."""
    transport = getattr(nc, "_transport", None)
    for name in ("_io_writer", "_bare_io_writer"):
        writer = getattr(transport, name, None)
        if writer is not None:
            writer.transport.abort()


def allow_reconnects(nc, max_attempts):
    """Let the connected client reconnect, at most ``max_attempts`` times
    in a row (-1: without limit), through its ``options`` dict, which
    nats-py reads at each reconnect."""
    nc.options["allow_reconnect"] = True
    nc.options["max_reconnect_attempts"] = max_attempts
