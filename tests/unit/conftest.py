"""Fixtures shared by the unit tests."""

import uuid

import futurist._thread
import pytest

from notifbus.backends.memory import backend as memory
from tests import tlscerts


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Client certificates from a test CA, one with a locked key, and a
    file that is no certificate: for the TLS option checks."""
    directory = tmp_path_factory.mktemp("certs")
    ca = tlscerts.make_ca(directory)
    cert, key = tlscerts.issue(ca, directory, "client", ["client.test"])
    locked_cert, locked_key = tlscerts.issue(
        ca, directory, "locked", ["client.test"], key_password="k3y-pw")
    junk = directory / "junk.pem"
    junk.write_text("not a certificate\n")
    return {"ca": ca.path, "cert": cert, "key": key,
            "locked_cert": locked_cert, "locked_key": locked_key,
            "junk": str(junk), "dir": directory}


@pytest.fixture
def fast_executor_shutdown(monkeypatch):
    """oslo's threading executor joins futurist workers that wake up to
    notice the shutdown only every MAX_IDLE_FOR seconds (1 s): 0.05 s."""
    monkeypatch.setattr(futurist._thread.ThreadWorker, "MAX_IDLE_FOR", 0.05)


@pytest.fixture
def name(request):
    """A memory cluster of this test only, named after its module."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    cluster_name = f"{module}-{uuid.uuid4().hex}"
    yield cluster_name
    memory.reset(cluster_name)


@pytest.fixture
def stack():
    """Cleanups run in reverse order at the end of the test."""
    cleanups = []
    yield cleanups.append
    for cleanup in reversed(cleanups):
        cleanup()
