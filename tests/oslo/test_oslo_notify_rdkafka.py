"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+rdkafka://``.

The same broker and settings as ``test_oslo_notify.py`` (the Kafka
backend), through librdkafka: oslo's harness reads the URLs from
``NOTIFY_TRANSPORT_URL`` and ``RPC_TRANSPORT_URL``, which each test points
at the session's broker with the ``notifbus+rdkafka`` scheme and restores
afterwards. The consumer timings are configuration overrides (oslo's
harness checks the URL's query against its own Kafka options), and each
test gets its own default consumer group and topics (through
``exchange_in_topic``), distinct from those of the Kafka backend's run of
the same tests, which a new group would otherwise read from the start.
"""

import os
import uuid

from oslo_messaging import transport
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
        # not the groups of test_oslo_notify.py on the same broker: the
        # kafka backend's members assign partitions with another protocol
        self.config(consumer_group="rdkafka-" + self.id().rsplit(".", 1)[-1],
                    group="notifbus")
        # nor its topics, whose records a new group would read from the
        # start: oslo's tests reuse topic names
        self.conf.register_opts(transport._transport_opts)
        self.config(control_exchange=f"rdkafka{uuid.uuid4().hex[:8]}")
        self.config(exchange_in_topic=True, group="notifbus")


def _restore(saved):
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
