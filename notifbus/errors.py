"""Exceptions raised by notifbus.

Each one says what went wrong and what to do about it. The oslo driver
translates :class:`DeliveryError` into oslo's ``MessageDeliveryFailure``.
"""


class NotifbusError(Exception):
    """Base class of every notifbus error."""


class ConfigError(NotifbusError, ValueError):
    """A transport URL or an option is invalid."""


class BackendNotFound(NotifbusError):
    """No backend is registered under the requested name."""


class BackendUnavailable(NotifbusError):
    """A backend is registered but cannot be imported (missing extra)."""


class DeliveryError(NotifbusError):
    """A record was not acknowledged by the broker.

    ``retriable`` says whether another attempt may succeed (a broker that
    is down or a timed-out request) or not (a record that is too large).
    """

    def __init__(self, message, retriable=True):
        super().__init__(message)
        self.retriable = retriable


class RecordTooLarge(DeliveryError):
    """A record is larger than the configured maximum message size."""

    def __init__(self, message):
        super().__init__(message, retriable=False)


class DecodeError(NotifbusError, ValueError):
    """Bytes read from a topic are not a notification."""
