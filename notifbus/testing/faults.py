"""Fault injection for tests, on any backend.

:class:`FaultyBackend` wraps a :class:`~notifbus.backends.base.Backend` and
breaks it on demand through its :class:`Faults`::

    backend = FaultyBackend(memory.MemoryBackend([("c1", None)], {}))
    backend.faults.fail_next(2)        # the next two produce calls fail
    backend.faults.refuse(lambda record: record.value == b"bad")
    backend.faults.set_down(True)      # the broker is unreachable

For the backends an oslo.messaging transport builds, install the wrapper
around the backend loader while the transports are made::

    faults = Faults()
    with faults.wrapping_loaded_backends():
        transport = oslo_messaging.get_notification_transport(conf, url)
    faults.set_down(True)

Every backend wrapped with one :class:`Faults` breaks together: a notifier
and a listener transport see the same outage.
"""

import contextlib
import threading
import time
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Type,
)
from unittest import mock

from notifbus import backends, errors
from notifbus.backends import base
from notifbus.backends.base import TopicPartition
from notifbus.record import Received, Record


class Faults:
    """What is broken now, shared by the :class:`FaultyBackend` objects it
    is handed to. Thread-safe.

    While down (:meth:`set_down`): ``produce`` fails every record at once
    with a retriable :class:`~notifbus.errors.DeliveryError` whose message
    says ``is down``; ``ensure_topic`` and ``Consumer.commit`` raise one;
    ``Consumer.poll`` waits for the backend to come back up within its
    timeout and does not reach the backend before, so group assignments do
    not move, and ``Consumer.assigned`` says no. Stored data is kept.
    """

    def __init__(self):
        self.cond = threading.Condition()
        self._down = False
        self._fail_count = 0
        self._fail_retriable = True
        self._refused: Optional[Callable[[Record], bool]] = None

    def fail_next(self, n: int, retriable: bool = True) -> None:
        """Make the next ``n`` calls of ``produce`` fail every record with a
        :class:`~notifbus.errors.DeliveryError` of the given ``retriable``
        flag, without reaching the backend. Replaces any count set before;
        ``n=0`` cancels it. Calls made while down do not count.
        """
        with self.cond:
            self._fail_count = max(0, int(n))
            self._fail_retriable = bool(retriable)

    def refuse(self, match: Optional[Callable[[Record], bool]]) -> None:
        """Make ``produce`` refuse each record for which ``match(record)``
        is true with a non-retriable
        :class:`~notifbus.errors.DeliveryError`, and pass the others of
        the batch to the backend, as a broker that refuses one record of
        a batch (too large, a bad header) stores the rest. ``None``
        cancels it."""
        with self.cond:
            self._refused = match

    def refused(self, record: Record) -> bool:
        """Whether :meth:`refuse` makes ``produce`` refuse ``record``."""
        match = self._refused
        return match is not None and bool(match(record))

    def set_down(self, down: bool) -> None:
        """Take the backends down (``True``) or bring them back up."""
        with self.cond:
            self._down = bool(down)
            self.cond.notify_all()

    @property
    def down(self) -> bool:
        """Whether :meth:`set_down` took the backends down."""
        return self._down

    def take_failure(self) -> Optional[bool]:
        """The ``retriable`` flag of the injected failure the current
        produce call gets, counting it down; ``None`` for none."""
        with self.cond:
            if not self._fail_count:
                return None
            self._fail_count -= 1
            return self._fail_retriable

    def wait_up(self, deadline: float,
                stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait until up, until ``time.monotonic()`` passes ``deadline`` or
        until ``stop()`` (called with :attr:`cond` held) is true. True when
        up."""
        with self.cond:
            while self._down:
                remaining = deadline - time.monotonic()
                if stop() or remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    @contextlib.contextmanager
    def wrapping_loaded_backends(self) -> Iterator["Faults"]:
        """Within this context, :func:`notifbus.backends.load` returns
        classes whose instances are the loaded backend wrapped in a
        :class:`FaultyBackend` with these faults: the backends of the
        transports made meanwhile break with them, also after the context
        is left."""
        load = backends.load
        classes: Dict[type, type] = {}

        def faulty_load(name):
            backend_cls = load(name)
            if backend_cls not in classes:
                classes[backend_cls] = faulty_class(backend_cls, self)
            return classes[backend_cls]

        with mock.patch.object(backends, "load", faulty_load):
            yield self


def faulty_class(backend_cls: Type[base.Backend],
                 faults: Faults) -> Type["FaultyBackend"]:
    """A class built like ``backend_cls`` (same options, same declared
    support) whose instances wrap one of ``backend_cls`` in a
    :class:`FaultyBackend` with ``faults``."""

    def __init__(self, hosts, options, username=None, password=None):
        FaultyBackend.__init__(
            self, backend_cls(hosts, options, username, password), faults)

    return type(f"Faulty{backend_cls.__name__}", (FaultyBackend,), {
        "__init__": __init__,
        "list_opts": staticmethod(backend_cls.list_opts),
        "common_options": backend_cls.common_options,
        "unsupported": backend_cls.unsupported,
    })


class FaultyBackend(base.Backend):
    """``backend`` with the faults of ``faults`` (a new :class:`Faults`
    when ``None``) injected. Anything else, attributes the contract does
    not name included, is the wrapped backend's."""

    def __init__(self, backend: base.Backend,
                 faults: Optional[Faults] = None):
        # No Backend.__init__: hosts and options are the wrapped backend's.
        self.backend = backend
        self.faults = Faults() if faults is None else faults

    def __getattr__(self, name):
        return getattr(self.backend, name)

    @property
    def unsupported(self):
        return self.backend.unsupported

    @property
    def common_options(self):
        return self.backend.common_options

    def _down_error(self):
        return errors.DeliveryError(
            f"{type(self.backend).__name__} is down (injected fault)")

    def ensure_topic(self, topic: str, partitions: int,
                     timeout: float) -> int:
        if self.faults.down:
            raise self._down_error()
        return self.backend.ensure_topic(topic, partitions, timeout)

    def produce(self, records: Sequence[Record], partitions: Sequence[int],
                timeout: float) -> List[Optional[Exception]]:
        if self.faults.down:
            return [self._down_error() for _ in records]
        retriable = self.faults.take_failure()
        if retriable is not None:
            return [errors.DeliveryError(
                f"{type(self.backend).__name__}: injected failure",
                retriable=retriable) for _ in records]
        refused = [self.faults.refused(record) for record in records]
        if not any(refused):
            return self.backend.produce(records, partitions, timeout)
        passed = [i for i, no in enumerate(refused) if not no]
        stored = self.backend.produce([records[i] for i in passed],
                                      [partitions[i] for i in passed],
                                      timeout) if passed else []
        results: List[Optional[Exception]] = [errors.DeliveryError(
            f"{type(self.backend).__name__}: injected refusal of the "
            f"record", retriable=False) if no else None for no in refused]
        for i, result in zip(passed, stored):
            results[i] = result
        return results

    def subscribe(self, topics: Iterable[str], group: str,
                  on_revoke: Optional[Callable[[Set[TopicPartition]], None]]
                  = None) -> "FaultyConsumer":
        return FaultyConsumer(
            self.backend.subscribe(topics, group, on_revoke), self)

    def end_offsets(self, topic: str, timeout: float) -> Dict[int, int]:
        return self.backend.end_offsets(topic, timeout)

    def offsets_for_time(self, topic: str, timestamp_ms: int,
                         timeout: float) -> Dict[int, int]:
        return self.backend.offsets_for_time(topic, timestamp_ms, timeout)

    def count_records(self, topic: str, partition: int, start: int,
                      end: int, timeout: float) -> int:
        return self.backend.count_records(topic, partition, start, end,
                                          timeout)

    def read(self, topic: str, partition: int, offset: int,
             max_records: int, timeout: float) -> List[Received]:
        return self.backend.read(topic, partition, offset, max_records,
                                 timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.backend.close(timeout)


class FaultyConsumer(base.Consumer):
    """A consumer of a :class:`FaultyBackend`, with its faults."""

    def __init__(self, consumer: base.Consumer, backend: FaultyBackend):
        self.consumer = consumer
        self._backend = backend
        self._faults = backend.faults
        self._woken = False

    def __getattr__(self, name):
        return getattr(self.consumer, name)

    def _take_woken(self):
        # Called with the faults' condition held.
        woken, self._woken = self._woken, False
        return woken

    def poll(self, timeout: float, max_records: int) -> List[Received]:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._faults.wait_up(deadline, self._take_woken):
            return []
        with self._faults.cond:
            self._woken = False
        return self.consumer.poll(max(0.0, deadline - time.monotonic()),
                                  max_records)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._faults.down:
            raise self._backend._down_error()
        self.consumer.commit(offsets)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.consumer.seek(topic, partition, offset)

    def assignment(self) -> Set[TopicPartition]:
        return self.consumer.assignment()

    def assigned(self) -> bool:
        return not self._faults.down and self.consumer.assigned()

    def wakeup(self) -> None:
        with self._faults.cond:
            self._woken = True
            self._faults.cond.notify_all()
        self.consumer.wakeup()

    def lag(self) -> Optional[Dict[TopicPartition, int]]:
        return self.consumer.lag()

    def close(self, timeout: float = 5.0) -> None:
        self.consumer.close(timeout)
