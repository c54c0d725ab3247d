"""The conformance kit on the NATS JetStream backend, against the run's
nats-server, in a stream prefix of its own that is deleted afterwards."""

import pytest

from notifbus.embedded import free_port
from notifbus.testing import TransportConformance
from tests.functional import natsserver


@pytest.fixture(scope="module")
def nats_prefix(nats_server):
    prefix = natsserver.unique_prefix("nbconf")
    yield prefix
    natsserver.delete_streams(prefix, nats_server.address)


class TestNatsConformance(TransportConformance):
    @pytest.fixture(autouse=True)
    def _prefix(self, nats_server, nats_prefix):
        self.address = nats_server.address
        self.prefix = nats_prefix

    def transport_url(self):
        return natsserver.url(self.prefix, self.address)

    def unreachable_url(self):
        return (f"notifbus+nats://127.0.0.1:{free_port()}/"
                f"?connect_timeout_s=1&send_timeout_ms=2000")
