"""The conformance kit on the Kafka backend, against a real Tansu broker."""

import pytest

from notifbus.embedded import free_port
from notifbus.testing import TransportConformance
from tests.functional.conftest import FAST_GROUP


class TestKafkaConformance(TransportConformance):
    @pytest.fixture(autouse=True)
    def _broker(self, kafka_broker):
        self.broker = kafka_broker

    def transport_url(self):
        return self.broker.url(**FAST_GROUP)

    def unreachable_url(self):
        return (f"notifbus+kafka://127.0.0.1:{free_port()}/"
                f"?bootstrap_timeout_ms=1000&send_timeout_ms=2000")
