"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+rdkafka://``.

The same broker and settings as ``test_oslo_notify.py`` (the Kafka
backend), through librdkafka: oslo's harness reads the URLs from
``NOTIFY_TRANSPORT_URL`` and ``RPC_TRANSPORT_URL``, which each test points
at the session's broker with the ``notifbus+rdkafka`` scheme and restores
afterwards. The consumer timings are configuration overrides (oslo's
harness checks the URL's query against its own Kafka options), and each
test gets its own default consumer group.
"""

import os

from oslo_messaging.tests.functional import test_functional

from notifbus import opts

VARIABLES = ("NOTIFY_TRANSPORT_URL", "RPC_TRANSPORT_URL")


class NotifbusRdkafkaNotifyTestCase(test_functional.NotifyTestCase):
    def setUp(self):
        saved = {name: os.environ.get(name) for name in VARIABLES}
        self.addCleanup(_restore, saved)
        for name in VARIABLES:
            os.environ[name] = saved[name].replace(
                "notifbus+kafka://", "notifbus+rdkafka://", 1)
        super().setUp()
        opts.register_opts(self.conf)
        self.config(session_timeout_ms=2000, heartbeat_interval_ms=100,
                    group="notifbus_rdkafka")
        self.config(consumer_group=self.id().rsplit(".", 1)[-1],
                    group="notifbus")


def _restore(saved):
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
