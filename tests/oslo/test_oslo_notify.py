"""oslo.messaging's ``NotifyTestCase``, unmodified, over
``notifbus+kafka://``, ``notifbus+rdkafka://`` and ``notifbus+nats://``
(the NSQ plugin's run is in test_oslo_notify_nsq.py, skipped where the
plugin is not installed).

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

The rdkafka backend (``RdkafkaNotifyOnApacheKafka``) runs them on Apache
Kafka as the kafka backend does, on a broker of its own (see
``conftest.py``). Only the kafka backend runs them on Tansu too: the
rdkafka backend's consumer groups are checked on Tansu by the functional
tests and the eventlet hub checks.

On NATS (``NotifyOnNats``) each test points oslo's URLs at the run's
nats-server (the ``nats_server`` fixture) and gets a stream prefix of its
own (a configuration override, as above) whose streams are deleted when
it ends, as oslo's tests reuse topic names.
"""

import pytest
from oslo_messaging.tests.functional import test_functional

from notifbus import opts
from tests.functional import natsserver
from tests.oslo.hub import set_transport_urls


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


@pytest.mark.usefixtures("rdkafka_on_apache_kafka")
class RdkafkaNotifyOnApacheKafka(test_functional.NotifyTestCase):
    pass


class NotifyOnNats(test_functional.NotifyTestCase):
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
