"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+kafka://``.

oslo's harness checks the URL's query against its own Kafka options, so the
consumer timings that make a group join fast on the test broker are set as
configuration overrides here instead. Each test gets its own default
consumer group, as oslo's tests do for its own Kafka driver
(``consumer_group`` per test): listeners without a pool still share one
group within a test, and a member a previous test left behind cannot stall
the next test's rebalances.
"""

from oslo_messaging.tests.functional import test_functional

from notifbus import opts


class NotifbusNotifyTestCase(test_functional.NotifyTestCase):
    def setUp(self):
        super().setUp()
        opts.register_opts(self.conf)
        self.config(session_timeout_ms=2000, heartbeat_interval_ms=100,
                    group="notifbus_kafka")
        self.config(consumer_group=self.id().rsplit(".", 1)[-1],
                    group="notifbus")
