"""The conformance kit on the rdkafka backend, against Apache Kafka."""

import pytest

from notifbus.embedded import free_port
from notifbus.testing import TransportConformance
from tests.functional.conftest import FAST_GROUP


def rdkafka_url(broker, **query):
    """``notifbus+rdkafka://`` to ``broker`` with ``query`` parameters."""
    return broker.url(**query).replace("notifbus+kafka://",
                                       "notifbus+rdkafka://", 1)


# on Apache Kafka: Tansu, the broker of the demo, which uses the kafka
# backend, runs the kit with that backend (test_kafka_conformance.py)
@pytest.mark.parametrize("rdkafka_broker", ["apache-kafka"], indirect=True)
class TestRdkafkaConformance(TransportConformance):
    @pytest.fixture(autouse=True)
    def _broker(self, rdkafka_broker):
        self.broker = rdkafka_broker

    def transport_url(self):
        return rdkafka_url(self.broker, **FAST_GROUP)

    def unreachable_url(self):
        return (f"notifbus+rdkafka://127.0.0.1:{free_port()}/"
                f"?bootstrap_timeout_ms=1000&send_timeout_ms=2000")
