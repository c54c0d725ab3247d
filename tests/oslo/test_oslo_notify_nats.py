"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+nats://``.

oslo's harness reads the URLs from ``NOTIFY_TRANSPORT_URL`` and
``RPC_TRANSPORT_URL``: each test points them at the machine's nats-server
and restores them afterwards. Each test gets a stream prefix of its own
(set as a configuration override: oslo's harness checks the URL's query
against its Kafka options) whose streams are deleted when it ends, as
oslo's tests reuse topic names.
"""

import os

from oslo_messaging.tests.functional import test_functional

from notifbus import opts
from tests.functional import natsserver

URL = f"notifbus+nats://{natsserver.ADDRESS}/"
VARIABLES = ("NOTIFY_TRANSPORT_URL", "RPC_TRANSPORT_URL")


class NotifbusNatsNotifyTestCase(test_functional.NotifyTestCase):
    def setUp(self):
        if not natsserver.reachable():
            self.skipTest(f"no NATS server at {natsserver.ADDRESS}")
        saved = {name: os.environ.get(name) for name in VARIABLES}
        self.addCleanup(_restore, saved)
        for name in VARIABLES:
            os.environ[name] = URL
        super().setUp()
        prefix = natsserver.unique_prefix("nboslo")
        self.addCleanup(natsserver.delete_streams, prefix)
        opts.register_opts(self.conf)
        self.config(stream_prefix=prefix, group="notifbus_nats")


def _restore(saved):
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
