"""Choosing the partition a record goes to.

:func:`murmur2` and :func:`kafka_partition` reproduce the Java client's
default partitioner for keyed records exactly, so records written by
notifbus land on the same partition as records with the same key written
by any other Kafka client. The :class:`Partitioner` classes are the
strategies the bus can be configured with; they hold only counters and
never talk to a broker.
"""

import abc
import itertools
import random
import threading
from typing import Dict, Iterator, Optional, Tuple

_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data``.

    Byte-for-byte ``org.apache.kafka.common.utils.Utils.murmur2``: the
    result is the signed 32-bit int the Java method returns.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    end = length - length % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> _R
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[end + 2] << 16
    if tail >= 2:
        h ^= data[end + 1] << 8
    if tail >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: ``n`` with the sign bit cleared."""
    return n & 0x7FFFFFFF


def _check_partitions(num_partitions: int) -> None:
    if num_partitions < 1:
        raise ValueError(
            f"num_partitions must be >= 1, got {num_partitions!r}"
        )


def kafka_partition(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``.

    ``to_positive(murmur2(key)) % num_partitions``, as the Java client
    does for a record with a non-null key.
    """
    _check_partitions(num_partitions)
    return to_positive(murmur2(key)) % num_partitions


class Partitioner(abc.ABC):
    """A strategy for choosing a record's partition.

    Implementations must be safe to call from several threads.
    """

    name: str = ""

    @abc.abstractmethod
    def partition(
        self, topic: str, key: Optional[bytes], num_partitions: int
    ) -> int:
        """Return a partition in ``range(num_partitions)`` for a record.

        Raises ``ValueError`` when ``num_partitions`` is less than 1.
        """

    def new_batch(self) -> None:
        """Called by the bus when a new batch starts (sticky uses it)."""
        return None

    def __repr__(self):
        return f"{type(self).__name__}()"


class RoundRobin(Partitioner):
    """Cycle through ``0 .. num_partitions - 1``, per topic.

    Each topic has its own counter, so interleaving topics does not skew
    the spread of any of them.
    """

    name = "round_robin"

    def __init__(self):
        self._lock = threading.Lock()
        # next() of a count is atomic: no lock per record
        self._counters: Dict[str, Iterator[int]] = {}

    def partition(self, topic, key, num_partitions):
        _check_partitions(num_partitions)
        counter = self._counters.get(topic)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(topic, itertools.count())
        return next(counter) % num_partitions


class KeyHash(Partitioner):
    """Kafka's default partitioner: keyed records go where Java puts them.

    Records with the same key always share a partition (for a fixed
    partition count). Records without a key are spread round robin.
    """

    name = "key_hash"

    def __init__(self):
        self._unkeyed = RoundRobin()

    def partition(self, topic, key, num_partitions):
        if key is None:
            return self._unkeyed.partition(topic, key, num_partitions)
        return kafka_partition(key, num_partitions)


class Sticky(Partitioner):
    """Keep sending to one partition per topic until a new batch starts.

    Filling one partition per batch makes fewer, larger requests. After
    :meth:`new_batch` each topic moves on to its next partition, so load
    still spreads over every partition across batches. Each topic starts
    at a random partition so that many short-lived producers do not all
    begin on partition 0; pass ``rng`` (a :class:`random.Random`) to make
    the start reproducible.
    """

    name = "sticky"

    def __init__(self, rng: Optional[random.Random] = None):
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._batch = 0
        # topic -> (partition, batch it was chosen for)
        self._current: Dict[str, Tuple[int, int]] = {}

    def new_batch(self):
        with self._lock:
            self._batch += 1

    def partition(self, topic, key, num_partitions):
        _check_partitions(num_partitions)
        with self._lock:
            state = self._current.get(topic)
            if state is None:
                chosen = self._rng.randrange(num_partitions)
            else:
                chosen, batch = state
                if batch != self._batch:
                    chosen += 1
                chosen %= num_partitions
            self._current[topic] = (chosen, self._batch)
        return chosen


NAMES = ("round_robin", "key_hash", "sticky")

_CLASSES = {cls.name: cls for cls in (RoundRobin, KeyHash, Sticky)}


def from_name(name: str) -> Partitioner:
    """Return a new partitioner of the strategy called ``name``.

    Raises ``ValueError`` naming the valid choices for an unknown name.
    """
    try:
        cls = _CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown partitioner {name!r}; choose one of " + ", ".join(NAMES)
        ) from None
    return cls()
