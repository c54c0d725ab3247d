"""Topics an operator controls, on Apache Kafka, through oslo's transport:
``create_topics = false``, ``replication_factor = -1`` (the broker's
default), ``topic_config``, and a cluster whose authorizer lets the
service write and read but not create topics."""

import time
import uuid

import kafka
import oslo_messaging
import pytest
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ConfigResource,
    ConfigResourceType,
    NewTopic,
    ResourcePattern,
    ResourceType,
)

from notifbus.testing.kafka import KafkaCluster
from tests.functional.faults import message, target
from tests.functional.security import conf, round_trip

BACKENDS = ["kafka", "rdkafka"]
ADMIN, SERVICE = "admin", "nova"
PASSWORDS = {ADMIN: "admin-secret", SERVICE: "nova-secret"}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _send(url, topic, retry):
    """One notification to ``<topic>.info``; the failure, or ``None``."""
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    try:
        transport._send_notification(target(topic), {}, message(1),
                                     version=2.0, retry=retry)
    except oslo_messaging.MessageDeliveryFailure as exc:
        return exc
    finally:
        transport.cleanup()
    return None


def _admin(cluster):
    return kafka.KafkaAdminClient(bootstrap_servers=cluster.address)


def _create(cluster, topic):
    admin = _admin(cluster)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        admin.close()


def test_a_missing_topic_fails_at_once_when_creation_is_off(apache_kafka,
                                                           backend):
    topic = f"prov{uuid.uuid4().hex[:8]}"
    url = apache_kafka.url(backend, create_topics="false")
    started = time.monotonic()
    error = _send(url, topic, retry=None)  # not retried: no retry cures it
    took = time.monotonic() - started
    assert error is not None and took < 10, took
    text = str(error)
    assert f"{topic}.info" in text and "create_topics" in text
    assert "notifbus topics create" in text
    _create(apache_kafka, f"{topic}.info")
    assert _send(url, topic, retry=0) is None


def test_created_topics_take_the_brokers_replication_and_topic_config(
        apache_kafka, backend):
    topic = f"prov{uuid.uuid4().hex[:8]}"
    url = apache_kafka.url(
        backend, topic_config="retention.ms:3600000,cleanup.policy:delete")
    assert _send(url, topic, retry=0) is None
    admin = _admin(apache_kafka)
    try:
        described = admin.describe_topics([f"{topic}.info"])[0]
        replicas = {len(p["replica_nodes"])
                    for p in described["partitions"]}
        # the fixture's broker default.replication.factor is Kafka's, 1
        assert replicas == {1}
        found = admin.describe_configs([ConfigResource(
            ConfigResourceType.TOPIC, f"{topic}.info")])
    finally:
        admin.close()
    configs = _configs(found)
    assert configs["retention.ms"] == "3600000"
    assert configs["cleanup.policy"] == "delete"


def _configs(found):
    """``{name: value}`` of a topic's configs set on it, from kafka-python's
    ``describe_configs`` (``{"topic": {name: {config: {"value": ...}}}}``)."""
    (configs,) = found["topic"].values()
    return {name: config["value"] for name, config in configs.items()}


@pytest.fixture(scope="module")
def acl_kafka(certs):
    """Apache Kafka with StandardAuthorizer: ``nova`` may read, write and
    describe every topic and read every group, but not create topics;
    ``admin`` and the plaintext listener (the brokers' own) are super
    users."""
    with KafkaCluster(tls=certs["ip_only"], users=PASSWORDS, broker_config={
            "authorizer.class.name":
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:ANONYMOUS;User:{ADMIN}",
    }) as cluster:
        admin = _admin(cluster)
        try:
            acls = [ACL(f"User:{SERVICE}", "*", operation,
                        ACLPermissionType.ALLOW,
                        ResourcePattern(ResourceType.TOPIC, "*"))
                    for operation in (ACLOperation.READ, ACLOperation.WRITE,
                                      ACLOperation.DESCRIBE)]
            acls.append(ACL(f"User:{SERVICE}", "*", ACLOperation.READ,
                            ACLPermissionType.ALLOW,
                            ResourcePattern(ResourceType.GROUP, "*")))
            result = admin.create_acls(acls)
            assert not result["failed"], result
        finally:
            admin.close()
        yield cluster


def _service_url(cluster, certs, backend, **query):
    params = "&".join(f"{k}={v}" for k, v in dict(
        query, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        ssl_cafile=certs["ca"]).items())
    return (f"notifbus+{backend}://{SERVICE}:{PASSWORDS[SERVICE]}@"
            f"{cluster.sasl_ssl_servers}/?{params}")


def test_a_service_that_may_not_create_topics(acl_kafka, certs, backend):
    """Creating is refused at once, naming the authorization; on a topic
    the operator made, the idempotent producer (WRITE on a topic suffices
    for its producer id, KIP-679) and a listener work."""
    topic = f"acl{uuid.uuid4().hex[:8]}"
    url = _service_url(acl_kafka, certs, backend)
    started = time.monotonic()
    error = _send(url, topic, retry=None)
    assert error is not None and time.monotonic() - started < 15
    assert "Authorization" in str(error) or "AUTHORIZATION" in str(error)
    _create(acl_kafka, f"{topic}.info")
    payload = {"n": topic}
    assert round_trip(url, payload, topic=topic) == payload
