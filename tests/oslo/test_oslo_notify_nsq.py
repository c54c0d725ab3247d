"""Run oslo.messaging's ``NotifyTestCase`` over ``notifbus+nsq://``, the
backend of the ``notifbus-nsq`` plugin package (plugins/notifbus-nsq), and
check that green senders and listeners never block eventlet's hub.

One nsqd for the module, on free ports with a temporary data path. oslo's
harness reads the URLs from ``NOTIFY_TRANSPORT_URL`` and
``RPC_TRANSPORT_URL``: each test points them at that nsqd, and deletes its
topics when it ends, as oslo's tests reuse topic names and every listener
without a pool joins one channel (``notifbus``).
"""

import os

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_messaging.tests.functional import test_functional

from notifbus import backends
from tests.oslo.hub import MAX_STALL_S, green_round_trip, set_transport_urls

if "nsq" not in backends.names():
    pytest.skip("the notifbus-nsq plugin is not installed: pip install -e "
                "plugins/notifbus-nsq (make venv does)",
                allow_module_level=True)

from notifbus_nsq import testing  # noqa: E402


@pytest.fixture(scope="module")
def nsqd():
    binary = testing.find_nsqd()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(testing.INSTALL_HINT, pytrace=False)
        pytest.skip(testing.INSTALL_HINT)
    with testing.nsqd(binary=binary) as server:
        yield server


class NotifbusNsqNotifyTestCase(test_functional.NotifyTestCase):
    @pytest.fixture(autouse=True)
    def _nsqd(self, nsqd):
        # pytest fills fixtures before unittest's setUp runs
        self.nsqd = nsqd

    def setUp(self):
        self.addCleanup(set_transport_urls(self.nsqd.url()))
        self.addCleanup(self.nsqd.delete_topics)
        super().setUp()


def test_green_send_and_listen_over_nsq_do_not_block_the_hub(nsqd):
    """The plugin's I/O runs on notifbus's loop thread: green senders and
    a green listener wait for it without stalling a 10 ms ticker."""
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf,
                                                          url=nsqd.url())
    seen, worst = green_round_trip(transport)
    assert sorted(seen) == list(range(200))
    assert worst < MAX_STALL_S, f"the hub stalled for {worst:.3f} s"
