"""A third-party backend, proven: the example plugin package
(examples/notifbus-example-backend), installed on its own, registers
``example`` under ``notifbus.backends`` and passes the conformance kit."""

import pytest

from notifbus import backends
from notifbus.testing import TransportConformance

if "example" not in backends.names():
    pytest.skip("the example plugin is not installed: pip install -e "
                "examples/notifbus-example-backend (make venv does)",
                allow_module_level=True)


class TestExamplePlugin(TransportConformance):
    wait_s = 10.0

    @pytest.fixture(autouse=True)
    def _log(self, tmp_path):
        self.path = tmp_path / "log.sqlite"

    def transport_url(self):
        return (f"notifbus+example:///?path={self.path}"
                f"&session_timeout_ms=2000")

    def unreachable_url(self):
        return (f"notifbus+example:///?path={self.path.parent}/missing/"
                f"dir/log.sqlite")


def test_the_plugin_is_loaded_from_its_own_package():
    cls = backends.load("example")
    assert cls.__module__ == "notifbus_example.backend"
