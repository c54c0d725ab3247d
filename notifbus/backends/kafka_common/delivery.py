"""How both Kafka backends name their brokers and report a record that
was not delivered, so that an operator reads the same message whichever
client library sends.

Each backend classifies its own client's errors (kafka-python's exception
classes, librdkafka's error codes): which are permanent (no retry cures
them: an invalid record, a refused authorisation) and which mean a record
too large; this module words the resulting
:class:`~notifbus.errors.DeliveryError` and
:class:`~notifbus.errors.RecordTooLarge`.
"""

from typing import Iterable, List, Optional, Tuple

from notifbus import errors
from notifbus.record import Record

#: Port of a host given without one in the transport URL: Kafka's.
DEFAULT_PORT = 9092


def bootstrap_servers(hosts: Iterable[Tuple[str, Optional[int]]]
                      ) -> List[str]:
    """``["host:port", ...]`` of the transport URL's ``hosts``, with
    :data:`DEFAULT_PORT` where a host has no port."""
    return [f"{host}:{port or DEFAULT_PORT}" for host, port in hosts]


def too_large(record: Record, detail: str) -> errors.RecordTooLarge:
    """The error of ``record`` refused as too large by the broker or the
    client; ``detail`` is what the client said (and the limit that applied
    where the backend knows it)."""
    return errors.RecordTooLarge(
        f"the broker or client refused a record of {record.size} bytes for "
        f"topic {record.topic!r} as too large: {detail}")


def not_acknowledged(where: str, record: Record, detail: str,
                     retriable: bool) -> errors.DeliveryError:
    """The error of ``record`` that the brokers at ``where`` did not
    acknowledge; ``detail`` is what the client said, ``retriable`` whether
    a later attempt may succeed."""
    return errors.DeliveryError(
        f"Kafka at {where} did not acknowledge the record for topic "
        f"{record.topic!r}: {detail}", retriable=retriable)


def refused_member(backend: str, group: str, session_timeout_ms: int,
                   detail: str) -> errors.ConfigError:
    """The error of a consumer group that will not take this member
    because of its ``session_timeout_ms``: the brokers accept session
    timeouts between their ``group.min.session.timeout.ms`` and
    ``group.max.session.timeout.ms`` only (Kafka's JoinGroup error
    ``INVALID_SESSION_TIMEOUT``); ``detail`` is what the client said. No
    retry cures it: the listener's start fails with it."""
    return errors.ConfigError(
        f"the Kafka brokers refused to let a listener join group {group!r} "
        f"with session_timeout_ms={session_timeout_ms} ({detail}): they "
        f"accept session timeouts between their group.min.session."
        f"timeout.ms and group.max.session.timeout.ms only (6000 and "
        f"1800000 by default); set session_timeout_ms within them, in "
        f"[notifbus_{backend}] or the transport URL, or change the "
        f"brokers' settings")
