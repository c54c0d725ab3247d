"""Tests in an eventlet-patched process, as many services still run.

oslo.messaging's own functional notification tests (imported from its
wheel, whose ``oslo_messaging.tests`` package monkey-patches on import) and
our checks that the driver never blocks the eventlet hub. The process is
patched first thing, so this directory runs in a pytest process of its own
(see the Makefile).
"""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402

import pytest  # noqa: E402

from notifbus.embedded import EmbeddedBroker  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def kafka_url():
    with EmbeddedBroker() as broker:
        url = broker.url()
        os.environ["NOTIFY_TRANSPORT_URL"] = url
        os.environ["RPC_TRANSPORT_URL"] = url
        yield url
