"""Brokers for the functional tests, started and stopped by the suite.

The Kafka tests run on two brokers, named in their test ids:
``apache-kafka`` (Apache Kafka in KRaft mode, from the project's jars, or
the cluster named by ``$NOTIFBUS_KAFKA_BOOTSTRAP``) and ``tansu`` (the
embedded broker of ``notifbus demo``).
"""

import contextlib

import pytest

from notifbus.embedded import EmbeddedBroker
from notifbus.testing.kafka import broker_from_environment

#: Consumer timings that let a group notice a member that died, or join,
#: within about a second.
FAST_GROUP = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100}

#: Settings of the Apache Kafka nodes of the tests: the group session
#: timeouts of FAST_GROUP (the broker's floor is 6 s by default).
APACHE_KAFKA_CONFIG = {"group.min.session.timeout.ms": 500}

KAFKA_BROKERS = ("apache-kafka", "tansu")


@pytest.fixture(scope="session")
def apache_kafka():
    """One Apache Kafka KRaft node for the session."""
    with broker_from_environment(
            broker_config=APACHE_KAFKA_CONFIG) as broker:
        yield broker


@pytest.fixture(scope="session")
def tansu():
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def tansu_rdkafka():
    """A Tansu broker for the rdkafka backend's group tests alone: Tansu
    keeps the partition assignment protocol of a consumer group even once
    the group is empty, so a group that listeners of the kafka backend used
    (``notifbus``, the conformance kit's pools) refuses librdkafka's
    members for good (INCONSISTENT_GROUP_PROTOCOL)."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session", params=KAFKA_BROKERS)
def kafka_broker(request):
    """Each Kafka broker of the matrix in turn."""
    return request.getfixturevalue(request.param.replace("-", "_"))


@pytest.fixture(scope="session", params=KAFKA_BROKERS)
def rdkafka_broker(request):
    """Each Kafka broker of the matrix, for the rdkafka backend's group
    tests."""
    name = request.param
    return request.getfixturevalue(
        "tansu_rdkafka" if name == "tansu" else name.replace("-", "_"))


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


@contextlib.contextmanager
def restartable(request):
    """A started one-node broker of kind ``request.param``, whose log
    survives a kill and a start on the same address (see
    :mod:`tests.functional.brokers`); stopped at the end of the block."""
    from tests.functional import brokers

    if request.param == "tansu":
        broker = brokers.RestartableTansu(
            request.getfixturevalue("s3_server"))
    else:
        broker = brokers.RestartableApacheKafka(APACHE_KAFKA_CONFIG)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=KAFKA_BROKERS)
def restartable_broker(request):
    """A started one-node broker of each kind, whose log survives a kill
    and a start on the same address."""
    with restartable(request) as broker:
        yield broker
