"""Tests in an eventlet-patched process, as many services still run.

oslo.messaging's own functional notification tests (imported from its
wheel, whose ``oslo_messaging.tests`` package monkey-patches on import) and
our checks that the driver never blocks the eventlet hub. The process is
patched first thing, so this directory runs in a pytest process of its own
(see the Makefile).

Brokers, started once for the session and only when a test asks for one:

- ``apache_kafka``: Apache Kafka in KRaft mode with its default settings,
  for the kafka backend; ``apache_kafka_rdkafka``: another one for the
  rdkafka backend. oslo's tests reuse topic names, and every listener
  without a pool joins the same consumer group (``notifbus``): each
  backend's run starts on a broker that the other's did not touch. With
  ``$NOTIFBUS_KAFKA_BOOTSTRAP`` both are that cluster;
- ``tansu``: the embedded broker of ``notifbus demo``.

oslo's tests read the broker from ``NOTIFY_TRANSPORT_URL`` and
``RPC_TRANSPORT_URL``: the fixtures ``on_apache_kafka``,
``rdkafka_on_apache_kafka`` and ``on_tansu`` point them at one for the
duration of a test (:func:`tests.oslo.hub.set_transport_urls`). The
eventlet hub checks take ``backend_url``: each backend in turn, the Kafka
backends on each Kafka broker.
"""

import eventlet

eventlet.monkey_patch()

import contextlib  # noqa: E402

import oslo_messaging  # noqa: E402
import pytest  # noqa: E402
from oslo_config import cfg  # noqa: E402

from notifbus.embedded import EmbeddedBroker  # noqa: E402
from notifbus.testing.kafka import broker_from_environment  # noqa: E402
from tests.functional import natsserver  # noqa: E402
from tests.oslo.hub import set_transport_urls  # noqa: E402


@pytest.fixture(scope="session")
def apache_kafka():
    """An Apache Kafka KRaft node, default settings, for the kafka
    backend."""
    with broker_from_environment() as broker:
        yield broker


@pytest.fixture(scope="session")
def apache_kafka_rdkafka():
    """An Apache Kafka KRaft node, default settings, for the rdkafka
    backend."""
    with broker_from_environment() as broker:
        yield broker


@pytest.fixture(scope="session")
def tansu():
    with EmbeddedBroker() as broker:
        yield broker


@contextlib.contextmanager
def transport_urls(url):
    """``NOTIFY_TRANSPORT_URL`` and ``RPC_TRANSPORT_URL`` set to ``url``
    inside the block, restored after it."""
    restore = set_transport_urls(url)
    try:
        yield url
    finally:
        restore()


#: Consumer timings on Tansu, which completes a group join only after
#: about half of ``session_timeout_ms``: listeners start within a second.
TANSU_FAST_GROUP = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100}

#: Kafka brokers the eventlet hub checks run on, named in their test ids.
KAFKA_BROKERS = ("apache-kafka", "tansu")


def _url_on(request, broker, backend):
    if broker == "tansu":
        return request.getfixturevalue("tansu").url(backend,
                                                    **TANSU_FAST_GROUP)
    name = "apache_kafka" if backend == "kafka" else f"apache_kafka_{backend}"
    return request.getfixturevalue(name).url(backend)


#: Backends the eventlet hub checks run on, each Kafka backend on each
#: Kafka broker: (backend, broker).
HUB_BACKENDS = [(backend, broker) for backend in ("kafka", "rdkafka")
                for broker in KAFKA_BROKERS] + [("nats", None)]


@pytest.fixture(params=HUB_BACKENDS,
                ids=["-".join(filter(None, p)) for p in HUB_BACKENDS])
def backend_url(request):
    """``(backend, URL)`` of each backend in turn: the Kafka backends on
    Apache Kafka with the defaults and on Tansu with
    :data:`TANSU_FAST_GROUP`; NATS on the run's nats-server, with a stream
    prefix of its own whose streams are deleted afterwards."""
    backend, broker = request.param
    if backend == "nats":
        server = request.getfixturevalue("nats_server")
        prefix = natsserver.unique_prefix("nbgreen")
        yield backend, natsserver.url(prefix, server.address)
        natsserver.delete_streams(prefix, server.address)
        return
    if backend == "rdkafka":
        pytest.importorskip("confluent_kafka")
    yield backend, _url_on(request, broker, backend)


@pytest.fixture
def on_apache_kafka(apache_kafka):
    with transport_urls(apache_kafka.url("kafka")) as url:
        yield url


@pytest.fixture
def rdkafka_on_apache_kafka(apache_kafka_rdkafka):
    with transport_urls(apache_kafka_rdkafka.url("rdkafka")) as url:
        yield url


def _harness_url(request, url):
    """``url`` without its query, which oslo's harness would check against
    its own Kafka options; the query goes to the test's
    ``broker_options``, for its ``setUp`` to set as configuration."""
    parsed = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url)
    request.instance.broker_options = {
        name: value[-1] if isinstance(value, list) else value
        for name, value in parsed.query.items()}
    return url.split("?", 1)[0]


@pytest.fixture
def on_tansu(request, tansu):
    with transport_urls(_harness_url(request, tansu.url("kafka"))) as url:
        yield url
