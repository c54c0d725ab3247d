"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+kafka://``.

oslo's harness checks the URL's query against its own Kafka options, so the
consumer timings that make a group join fast on the test broker are set as
configuration overrides here instead.
"""

from oslo_messaging.tests.functional import test_functional

from notifbus import opts


class NotifbusNotifyTestCase(test_functional.NotifyTestCase):
    def setUp(self):
        super().setUp()
        opts.register_opts(self.conf)
        self.config(session_timeout_ms=1000, heartbeat_interval_ms=100,
                    group="notifbus_kafka")
