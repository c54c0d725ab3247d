"""The contract between the bus and a backend adapter.

A backend moves :class:`~notifbus.record.Record` objects to and from one
kind of log broker (Kafka, NATS JetStream, memory, ...). It knows nothing of
oslo.messaging, batching, retry or partitioning: the :mod:`notifbus.bus`
applies those policies and calls the methods below.

Threads: a :class:`Backend` may be used by many threads at once (its
``produce`` is called by whichever sender leads the current group commit).
A :class:`Consumer` is driven by one thread (the listener's poller); only
:meth:`Consumer.wakeup` is called from other threads.

A backend is loaded by name through stevedore from the ``notifbus.backends``
entry point group; see :func:`notifbus.backends.load`.
"""

import abc
import warnings
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from oslo_config import cfg

from notifbus.option_values import OptionValues
from notifbus.record import Received, Record

TopicPartition = Tuple[str, int]


class Backend(abc.ABC):
    """One connection, shared by the producers and consumers of a transport.

    :param hosts: ``[(host, port), ...]`` from the transport URL; a backend
        fills in its default port where ``port`` is ``None``.
    :param options: this backend's option values (its
        ``[notifbus_<name>]`` group with the URL's query parameters
        applied, plus the ``[notifbus]`` options it names in
        :attr:`common_options`), a ``dict`` by name. A transport gives
        every option; an option missing (a backend built directly, in a
        test) takes its declared default.
    :param username: user name from the transport URL, or ``None``.
    :param password: password from the transport URL, or ``None``. Never log
        it.

    Construction does no network I/O: connections are made on first use, so
    that a service starts even while its broker is down.
    """

    #: Parts of this contract the backend does not provide, named as in
    #: :data:`notifbus.testing.contract.FEATURES`: ``"replay"`` (the
    #: replay methods below raise ``NotImplementedError``), ``"seek"``
    #: (:meth:`Consumer.seek` does), ``"rebalance"`` (every member reads
    #: every partition: ``on_revoke`` is not called for a member joining).
    #: The conformance kit skips the tests that need them, saying so. A
    #: broker without a log (NSQ) declares
    #: ``frozenset({"replay", "seek", "rebalance"})``.
    unsupported: FrozenSet[str] = frozenset()

    #: Names of ``[notifbus]`` options (:data:`notifbus.opts.notifbus_opts`)
    #: that this backend reads from ``options`` too, such as
    #: ``max_message_bytes``: a transport passes their values (from the
    #: configuration or the URL) with the backend's own options, so that
    #: the backend and the bus apply the same value of an option declared
    #: once.
    common_options: Tuple[str, ...] = ()

    def __init__(self, hosts: Iterable[Tuple[str, Optional[int]]],
                 options: Mapping[str, Any],
                 username: Optional[str] = None,
                 password: Optional[str] = None) -> None:
        self.hosts = list(hosts)
        #: the option values as given, a ``dict`` (what backends written
        #: before :attr:`opts` read)
        self.options: Dict[str, Any] = dict(options)
        #: the option values, read as attributes (``self.opts.acks``,
        #: ``self.opts.session_timeout_s`` for a ``session_timeout_ms``
        #: option): every option of :meth:`list_opts` and
        #: :attr:`common_options`, with its declared default where
        #: ``options`` has none. An undeclared name raises
        #: :class:`~notifbus.option_values.UnknownOption`.
        self.opts = OptionValues(type(self).__name__,
                                 self.declared_opts(), self.options)
        self.username = username
        self.password = password

    @classmethod
    def list_opts(cls) -> List[cfg.Opt]:
        """oslo.config options of the ``[notifbus_<name>]`` group."""
        return []

    @classmethod
    def declared_opts(cls) -> List[cfg.Opt]:
        """Every option this backend reads: :meth:`list_opts` and the
        ``[notifbus]`` options named in :attr:`common_options`."""
        from notifbus import opts  # opts loads the backends

        common = [opt for opt in opts.notifbus_opts
                  if opt.dest in cls.common_options]
        return list(cls.list_opts()) + common

    @abc.abstractmethod
    def ensure_topic(self, topic: str, partitions: int,
                     timeout: float) -> int:
        """Create ``topic`` with ``partitions`` partitions if it is missing.

        Blocks until the topic exists. Returns its actual partition count
        (an existing topic keeps the count it has).

        :raises DeliveryError: (retriable) the broker did not answer within
            ``timeout`` seconds.
        """

    @abc.abstractmethod
    def produce(self, records: Sequence[Record], partitions: Sequence[int],
                timeout: float) -> List[Optional[Exception]]:
        """Write ``records[i]`` to partition ``partitions[i]`` of its topic.

        Blocks until the broker acknowledged every record, or failed it, or
        ``timeout`` seconds passed. Records of one partition are written in
        the order given.

        Returns one entry per record: ``None`` once the broker acknowledged
        it (it is stored and will survive per the broker's durability
        settings), else a :class:`~notifbus.errors.DeliveryError` whose
        ``retriable`` flag says whether another attempt may succeed. Per
        record failures are returned, not raised.
        """

    @abc.abstractmethod
    def subscribe(self, topics: Iterable[str], group: str,
                  on_revoke: Optional[Callable[[Set[TopicPartition]], None]]
                  = None) -> "Consumer":
        """Join consumer group ``group`` reading ``topics``.

        The partitions of the topics are shared among the group's consumers;
        each group gets every record. A group that has no committed position
        starts per the backend's offset-reset option.

        ``on_revoke(partitions)``, when the backend calls it, is called
        from inside :meth:`Consumer.poll`, on the polling thread, before the
        consumer gives partitions up to another member, so that the caller
        can commit what it has processed. A backend may never call it: one
        whose members all read every partition (NATS JetStream's shared
        durables, NSQ's channels) has nothing to give up, and a member that
        lost its partitions without a rebalance (its session expired) may
        learn it only when a commit fails. Records of partitions given up
        without a call are read again by their next owner from the last
        commit (at least once).
        """

    # -- replay: reading a topic outside any consumer group ------------------
    # Optional: a backend without them raises NotImplementedError and
    # ``notifbus replay`` says so.

    def end_offsets(self, topic: str, timeout: float) -> Dict[int, int]:
        """``{partition: offset the next record will get}`` for ``topic``.
        """
        raise NotImplementedError(
            f"the {type(self).__name__} backend cannot replay topics")

    def offsets_for_time(self, topic: str, timestamp_ms: int,
                         timeout: float) -> Dict[int, int]:
        """``{partition: first offset whose timestamp is at or after
        timestamp_ms}``; the end offset where there is none."""
        raise NotImplementedError(
            f"the {type(self).__name__} backend cannot replay topics")

    def count_records(self, topic: str, partition: int, start: int,
                      end: int, timeout: float) -> int:
        """How many records the partition holds at offsets ``[start,
        end)``. The default, ``end - start``, is right where a partition's
        offsets have no gaps (Kafka, memory); a backend whose offsets have
        gaps counts them (NATS, where a topic's partitions share one
        sequence)."""
        return max(end - start, 0)

    def read(self, topic: str, partition: int, offset: int,
             max_records: int, timeout: float) -> List[Received]:
        """Up to ``max_records`` records of one partition from ``offset``
        on, in order, without joining a group or committing anything.
        Returns ``[]`` when nothing arrived within ``timeout``."""
        raise NotImplementedError(
            f"the {type(self).__name__} backend cannot replay topics")

    def close(self, timeout: float = 5.0) -> None:
        """Release connections. Returns within about ``timeout`` seconds,
        even when the broker is gone. The default holds none."""
        return None


class Consumer(abc.ABC):
    """A member of a consumer group, created by :meth:`Backend.subscribe`.

    Positions move forward only through :meth:`poll` and :meth:`seek`, and
    are stored in the broker only through :meth:`commit`: a consumer that
    dies re-reads from the last commit (at least once).
    """

    @abc.abstractmethod
    def poll(self, timeout: float, max_records: int) -> List[Received]:
        """Return up to ``max_records`` records, waiting up to ``timeout``
        seconds for the first one.

        Returns ``[]`` on timeout or soon after :meth:`wakeup`. A broker that
        cannot be reached is retried inside; ``poll`` logs and returns
        ``[]`` rather than raise.
        """

    @abc.abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store, synchronously, the next offset to read for each partition.

        :raises DeliveryError: the broker refused or did not answer; the
            caller keeps the offsets and commits them later.
        """

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Make the next :meth:`poll` of the partition start at ``offset``.

        Optional: the bus does not call it (tests and tools do). A backend
        without it declares ``"seek"`` in :attr:`Backend.unsupported`; the
        default raises ``NotImplementedError``.
        """
        raise NotImplementedError(
            f"the {type(self).__name__} consumer cannot seek")

    def assigned(self) -> bool:
        """Whether the group has given this member its partitions (it may
        get none when the group has more members than partitions).

        Must not wait for the broker: the bus calls it on the polling
        thread between short :meth:`poll` calls
        (:func:`notifbus.bus.poll_until_assigned`) until it says ``True``,
        and keeps the records those polls return, in order, for its next
        fetches (they are committed only once dispatched). Joining happens
        in :meth:`poll`, as the client library does it; a consumer keeps
        no records of its own for later.

        The default answers ``True`` at once, right for a broker that
        places a member without a group protocol; a consumer written for
        the earlier contract, which defines ``wait_assigned(timeout)``, is
        asked ``wait_assigned(0)`` (deprecated: define ``assigned``).

        :raises ConfigError: the group will not take this member as
            configured (a session timeout outside the brokers' bounds); the
            listener's start fails with it.
        """
        legacy = getattr(self, "wait_assigned", None)
        if legacy is None:
            return True
        _warn_legacy_wait(type(self))
        return bool(legacy(0))

    def assignment(self) -> Optional[Set[TopicPartition]]:
        """The partitions this member reads now, or ``None`` (the default)
        when the backend cannot tell.

        Optional: read only to warn about a member that reads no partition
        of one of its topics (more listeners in a pool than partitions) and
        to report a member that joined as connected
        (:mod:`notifbus.health`); both are skipped on ``None``.
        """
        return None

    @abc.abstractmethod
    def wakeup(self) -> None:
        """Make a blocked :meth:`poll` return. Safe from any thread."""

    def lag(self) -> Optional[Dict[TopicPartition, int]]:
        """Records between this member's position and the end of each
        partition it reads, from what the client already knows (no request
        to the broker); ``None`` when the backend cannot tell so cheaply.
        A backend that counts per topic rather than per partition (NATS)
        gives partition ``None``. Called from any thread (a metrics
        scrape): must not block."""
        return None

    @abc.abstractmethod
    def close(self, timeout: float = 5.0) -> None:
        """Leave the group. Returns within about ``timeout`` seconds."""


_WARNED_LEGACY: Set[type] = set()


def _warn_legacy_wait(cls: type) -> None:
    """Say once per class that ``wait_assigned`` is deprecated."""
    if cls in _WARNED_LEGACY:
        return
    _WARNED_LEGACY.add(cls)
    warnings.warn(
        f"{cls.__module__}.{cls.__qualname__} defines wait_assigned(timeout), "
        f"which notifbus no longer calls to wait for the group: it asks "
        f"wait_assigned(0) between polls. Define assigned() instead, a "
        f"check that does not wait, and keep no polled records in the "
        f"consumer (see notifbus.backends.base.Consumer.assigned)",
        DeprecationWarning, stacklevel=3)
