"""The programs the functional tests start, and what a missing one means.

``.ci/run`` installs them from Debian packages, so in CI (the ``CI``
environment variable is set) a missing program fails the run; elsewhere
the tests that need it skip, saying which package to install.
"""

import os
import shutil

import pytest

#: program -> (names to look for, Debian package, what needs it)
PROGRAMS = {
    "nats-server": (("nats-server",), "nats-server",
                    "the NATS tests start their own servers"),
    "stunnel": (("stunnel", "stunnel4"), "stunnel4",
                "the Kafka TLS tests put it in front of the broker"),
}

# Debian installs nats-server in /usr/sbin, which is not on every PATH
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin",
     "/sbin"])


def in_ci():
    return bool(os.environ.get("CI"))


def find(program):
    """Path of ``program`` (a key of :data:`PROGRAMS`), or ``None``.

    ``$NOTIFBUS_<PROGRAM>`` (``NOTIFBUS_NATS_SERVER``, ``NOTIFBUS_STUNNEL``)
    names another binary.
    """
    names, _, _ = PROGRAMS[program]
    override = os.environ.get(
        "NOTIFBUS_" + program.upper().replace("-", "_"))
    if override:
        return shutil.which(override, path=_SEARCH_PATH)
    for name in names:
        found = shutil.which(name, path=_SEARCH_PATH)
        if found:
            return found
    return None


def missing(program):
    """Why the tests cannot run ``program``, naming the package."""
    _, package, purpose = PROGRAMS[program]
    return (f"{program} is not installed (Debian package {package}: "
            f"apt-get install {package}); {purpose}")


def require(program):
    """Path of ``program``; when it is missing, fail the calling test in
    CI and skip it elsewhere."""
    found = find(program)
    if found is None:
        if in_ci():
            pytest.fail(missing(program), pytrace=False)
        pytest.skip(missing(program))
    return found


def check_all_in_ci():
    """In CI, refuse to run at all when a program is missing: tests that
    would skip for lack of it must fail the run instead."""
    if not in_ci():
        return
    absent = [missing(name) for name in PROGRAMS if find(name) is None]
    if absent:
        raise pytest.UsageError(
            "CI is set and the suite's services are incomplete:\n  "
            + "\n  ".join(absent))
