"""oslo.messaging's own functional notification tests, against notifbus.

Importing ``oslo_messaging.tests`` monkey-patches the process with eventlet,
so these tests run in a pytest process of their own (see the Makefile).
"""

import os

import pytest

from notifbus.embedded import EmbeddedBroker


@pytest.fixture(scope="session", autouse=True)
def kafka_url():
    with EmbeddedBroker() as broker:
        url = broker.url()
        os.environ["NOTIFY_TRANSPORT_URL"] = url
        os.environ["RPC_TRANSPORT_URL"] = url
        yield url
