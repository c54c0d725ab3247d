"""The nsqd of the NSQ tests: one for the session, on free ports of
127.0.0.1 with a temporary data path. Without nsqd the tests skip, except
under ``CI``, where they fail (``make nsq`` builds it)."""

import os

import pytest
from notifbus_nsq import testing


def require_nsqd():
    binary = testing.find_nsqd()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(testing.INSTALL_HINT, pytrace=False)
        pytest.skip(testing.INSTALL_HINT)
    return binary


@pytest.fixture(scope="session")
def nsqd_binary():
    return require_nsqd()


@pytest.fixture(scope="session")
def nsqd(nsqd_binary):
    with testing.nsqd(binary=nsqd_binary) as server:
        yield server
