"""Fixtures and checks of the whole suite.

This file is loaded before ``tests/oslo/conftest.py`` monkey-patches its
process for eventlet, so it imports nothing at module level that would
then be left unpatched: the NATS helpers are imported in the fixture.
"""

import pytest

from tests import services


def pytest_configure(config):
    services.check_all_in_ci()


@pytest.fixture(scope="session")
def nats_server():
    """The NATS server with JetStream of this pytest run (see
    :func:`tests.functional.natsserver.session_server`): ``.address`` is
    its ``host:port``."""
    from tests.functional import natsserver

    with natsserver.session_server() as server:
        yield server


@pytest.fixture
def faults():
    """A :class:`notifbus.testing.faults.Faults` that the backends of the
    transports this test makes are wrapped with (the memory cluster's
    outage and failed sends, on any backend)."""
    from notifbus.testing.faults import Faults

    injected = Faults()
    with injected.wrapping_loaded_backends():
        yield injected
