"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+nats://``.

oslo's harness reads the URLs from ``NOTIFY_TRANSPORT_URL`` and
``RPC_TRANSPORT_URL``: each test points them at the run's nats-server
(the ``nats_server`` fixture) and restores them afterwards. Each test gets
a stream prefix of its own (set as a configuration override: oslo's
harness checks the URL's query against its Kafka options) whose streams
are deleted when it ends, as oslo's tests reuse topic names.
"""

import pytest
from oslo_messaging.tests.functional import test_functional

from notifbus import opts
from tests.functional import natsserver
from tests.oslo.hub import set_transport_urls


class NotifbusNatsNotifyTestCase(test_functional.NotifyTestCase):
    @pytest.fixture(autouse=True)
    def _nats_server(self, nats_server):
        # pytest fills fixtures before unittest's setUp runs
        self.nats_address = nats_server.address

    def setUp(self):
        self.addCleanup(set_transport_urls(
            f"notifbus+nats://{self.nats_address}/"))
        super().setUp()
        prefix = natsserver.unique_prefix("nboslo")
        self.addCleanup(natsserver.delete_streams, prefix, self.nats_address)
        opts.register_opts(self.conf)
        self.config(stream_prefix=prefix, group="notifbus_nats")
