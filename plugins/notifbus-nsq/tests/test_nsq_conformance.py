"""The conformance kit on ``notifbus+nsq://``, against the session's nsqd.

The tests that need what NSQ lacks (replay, seek) are not run: the
backend declares them unsupported (``NsqBackend.unsupported``) and the
kit skips them, naming the declaration."""

import pytest
from notifbus_nsq import testing

from notifbus.testing import TransportConformance


class TestNsqConformance(TransportConformance):
    wait_s = 10.0

    @pytest.fixture(autouse=True)
    def _nsqd(self, nsqd):
        self.nsqd = nsqd

    def transport_url(self):
        return self.nsqd.url()

    def unreachable_url(self):
        return (f"notifbus+nsq://127.0.0.1:{testing.free_port()}/"
                f"?connect_timeout_ms=1000&send_timeout_ms=2000")
