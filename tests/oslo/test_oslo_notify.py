"""oslo.messaging's ``NotifyTestCase``, unmodified, over
``notifbus+kafka://``.

On Apache Kafka (``NotifyOnApacheKafka``) the URL has no query and the
configuration no override: the defaults hold, with one consumer group
(``notifbus``) for every listener without a pool, as in a service.

On Tansu (``NotifyOnTansu``), which completes a group join only after
about half of ``session_timeout_ms``, the consumer timings are lowered,
and each test gets a consumer group of its own, as oslo's tests do for
its own Kafka driver: a member that a previous test left behind cannot
stall the next test's rebalances there. oslo's harness checks the URL's
query against its own Kafka options, so these, and the options of the
broker's URL, are configuration overrides.
"""

import pytest
from oslo_messaging.tests.functional import test_functional

from notifbus import opts


@pytest.mark.usefixtures("on_apache_kafka")
class NotifyOnApacheKafka(test_functional.NotifyTestCase):
    pass


@pytest.mark.usefixtures("on_tansu")
class NotifyOnTansu(test_functional.NotifyTestCase):
    def setUp(self):
        super().setUp()
        opts.register_opts(self.conf)
        self.config(**self.broker_options, group="notifbus_kafka")
        self.config(session_timeout_ms=2000, heartbeat_interval_ms=100,
                    group="notifbus_kafka")
        self.config(consumer_group=self.id().rsplit(".", 1)[-1],
                    group="notifbus")
