"""The conformance kit on the in-memory reference backend."""

import uuid

from notifbus.testing import TransportConformance


class TestMemoryConformance(TransportConformance):
    wait_s = 5.0

    def transport_url(self):
        if not hasattr(self, "_cluster"):
            self._cluster = f"conformance-{uuid.uuid4().hex[:8]}"
        return f"notifbus+memory://{self._cluster}/"
