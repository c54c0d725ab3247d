"""Brokers for the functional tests, started and stopped by the suite."""

import pytest

from notifbus.embedded import EmbeddedBroker

#: Consumer timings that let a group join in about a second on Tansu.
FAST_GROUP = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100}


@pytest.fixture(scope="session")
def kafka_broker():
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def rdkafka_broker():
    """A broker for the rdkafka backend's group tests alone: Tansu keeps
    the partition assignment protocol of a consumer group even once the
    group is empty, so a group that listeners of the kafka backend used
    (``notifbus``, the conformance kit's pools) refuses librdkafka's
    members for good (INCONSISTENT_GROUP_PROTOCOL)."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto) for brokers whose log survives restarts."""
    from tests.functional.s3 import LocalS3

    with LocalS3() as s3:
        yield s3


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Certificates of the TLS tests (see tlsproxy.broker_certs)."""
    from tests.functional.tlsproxy import broker_certs

    return broker_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_broker(certs):
    """A broker behind stunnel whose certificate is valid for 127.0.0.1."""
    from tests.functional.tlsproxy import TlsBroker

    with TlsBroker(certs["dir"], *certs["server"]) as broker:
        yield broker
