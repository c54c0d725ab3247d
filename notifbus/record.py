"""The unit that travels over the bus."""

import dataclasses
import functools
from typing import Optional, Sequence, Tuple

Headers = Sequence[Tuple[str, bytes]]


@dataclasses.dataclass(frozen=True, init=False)
class Record:
    """One message on the wire.

    ``timestamp_ms`` is set by the producer when left at ``None``.
    """

    topic: str
    value: bytes
    key: Optional[bytes] = None
    headers: Headers = ()
    timestamp_ms: Optional[int] = None

    def __init__(self, topic: str, value: bytes,
                 key: Optional[bytes] = None, headers: Headers = (),
                 timestamp_ms: Optional[int] = None) -> None:
        # one record per notification: its fields go to __dict__ at once
        # (a frozen dataclass's own __init__ sets each through
        # object.__setattr__), with its size, which every sender asks for
        size = 0 if value is None else len(value)  # None: a tombstone
        if key:
            size += len(key)
        if headers:
            size += sum(len(k) + len(v) for k, v in headers)
        self.__dict__.update(topic=topic, value=value, key=key,
                             headers=headers, timestamp_ms=timestamp_ms,
                             size=size)

    @functools.cached_property
    def size(self) -> int:
        """Bytes this record occupies, as counted for batch and size limits:
        the value, the key and each header's name and value (computed when
        the record is made)."""
        size = len(self.value) + len(self.key or b"")
        return size + sum(len(k) + len(v) for k, v in self.headers)


@dataclasses.dataclass(frozen=True)
class Received:
    """A record read back from a topic, with its position in the log.

    ``error`` says why a record at this position could not be read at all
    (a record batch compressed with a codec the client lacks, or corrupt):
    its ``value`` is then ``None``, and listeners dead-letter it as a
    marker, naming the error.
    """

    topic: str
    partition: int
    offset: int
    value: Optional[bytes]
    key: Optional[bytes] = None
    headers: Headers = ()
    timestamp_ms: Optional[int] = None
    error: Optional[str] = None

    @property
    def position(self):
        """``(topic, partition, offset)``: where to find this record again."""
        return (self.topic, self.partition, self.offset)
