"""Test kit for notifbus backends, including third-party ones.

Subclass :class:`~notifbus.testing.conformance.TransportConformance` in a
pytest module and implement :meth:`transport_url`; every test of the kit then
runs against your backend through oslo.messaging's public API::

    from notifbus.testing import TransportConformance

    class TestMyBackend(TransportConformance):
        def transport_url(self):
            return "notifbus+mine://127.0.0.1:7000/"


A backend declares what it does not support in its class's
``unsupported`` attribute (names of
:data:`~notifbus.testing.contract.FEATURES`); the tests that need it are
skipped, saying so.
"""

from notifbus.testing.conformance import TransportConformance
from notifbus.testing.contract import (
    FEATURES,
    BackendContract,
    declared_unsupported,
    requires,
)

__all__ = ["FEATURES", "BackendContract", "TransportConformance",
           "declared_unsupported", "requires"]
