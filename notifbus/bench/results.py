"""Typed results of the bench's rows.

A row's child process (:mod:`notifbus.bench.rowrun`) prints its result as
one JSON object; :meth:`RowResult.from_json` reads it, and
:meth:`RowResult.to_json` gives back the same object, keys in the same
order, for the ``--json`` report.
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, cast


@dataclasses.dataclass
class Latency:
    """Percentiles of a time, in milliseconds: of one send call
    (:attr:`RowResult.latency`), or from a send to its dispatch to a
    listener (:attr:`ConsumeResult.latency`); ``None`` without values."""

    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    max_ms: Optional[float] = None


@dataclasses.dataclass
class ConsumeResult:
    """What one oslo listener read back (``listeners.read_back``):
    notifications received, distinct ones, ``lost`` (sent minus distinct)
    and ``duplicates``; the rate of distinct ones per second from its
    start; ``note`` says why it stopped waiting early, if it did;
    ``latency``, from each send to its dispatch to the listener, for the
    notifications that carried their send time (the ``e2e`` pass)."""

    mode: Optional[str] = None
    pool: Optional[str] = None
    received: Optional[int] = None
    unique: Optional[int] = None
    lost: Optional[int] = None
    duplicates: Optional[int] = None
    start_s: Optional[float] = None
    seconds: Optional[float] = None
    msgs_per_s: Optional[float] = None
    end_to_end: bool = False
    note: Optional[str] = None
    latency: Optional[Latency] = None

    @classmethod
    def from_json(cls, found: Mapping[str, Any]) -> "ConsumeResult":
        values = dict(found)
        if values.get("latency") is not None:
            values["latency"] = Latency(**values["latency"])
        return cls(**values)


#: the fields of a :class:`RowResult` set after the row, from the others
DERIVED = ("vs_reference", "vs_one_sender", "driver_cpu_us_per_msg")


@dataclasses.dataclass
class RowResult:
    """One row's result: what it published (``msgs_per_s``, ``mb_per_s``
    of payload, ``latency``, peak RSS in MB, ``cpu_us_per_msg``: user +
    system CPU time of the row's process from the first send until
    everything was acknowledged or flushed, in microseconds per
    notification), what its listeners read back (``consume``, by pass:
    ``plain``, ``batch`` and ``e2e``; ``None`` for rows that do not read
    back), and ``error`` when the row failed. ``wall_s`` is the child's
    whole run (set by :mod:`notifbus.bench.runner`);
    :func:`notifbus.bench.stats.add_ratios` sets ``vs_reference``,
    ``vs_one_sender`` and ``driver_cpu_us_per_msg`` (the row's CPU per
    notification minus the ``noop`` row's)."""

    row: str = "?"
    kind: Optional[str] = None
    senders: int = 1
    green: bool = False
    count: Optional[int] = None
    size: Optional[int] = None
    sent: int = 0
    error: Optional[str] = None
    consume: Optional[Dict[str, ConsumeResult]] = None
    config: Optional[Dict[str, Any]] = None
    publish_s: Optional[float] = None
    finish_s: Optional[float] = None
    msgs_per_s: Optional[float] = None
    mb_per_s: Optional[float] = None
    latency: Optional[Latency] = None
    send_failures: Optional[int] = None
    peak_rss_mb: Optional[float] = None
    cpu_us_per_msg: Optional[float] = None
    traceback: Optional[str] = None
    peak_rss_total_mb: Optional[float] = None
    wall_s: Optional[float] = None
    #: with ``--repeat``: the rate of each run of the row, in run order
    #: (see :func:`notifbus.bench.runner.median_run`)
    runs_msgs_per_s: Optional[List[Optional[float]]] = None
    vs_reference: Optional[float] = None
    vs_one_sender: Optional[float] = None
    driver_cpu_us_per_msg: Optional[float] = None
    #: the keys of the JSON object read, in its order
    keys: List[str] = dataclasses.field(default_factory=list, repr=False,
                                        compare=False)

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "RowResult":
        """:raises TypeError: ``result`` has a key that is no field."""
        values = dict(result)
        if values.get("latency") is not None:
            values["latency"] = Latency(**values["latency"])
        if values.get("consume") is not None:
            values["consume"] = {mode: ConsumeResult.from_json(found)
                                 for mode, found in values["consume"].items()}
        return cls(keys=list(result), **values)

    def to_json(self) -> Dict[str, Any]:
        """The object :meth:`from_json` read, then what
        :func:`~notifbus.bench.stats.add_ratios` set."""
        keys = list(self.keys) + [key for key in DERIVED
                                  if key not in self.keys]
        out = {}
        for key in keys:
            value = getattr(self, key)
            if key == "latency" and value is not None:
                value = dataclasses.asdict(value)
            elif key == "consume" and value is not None:
                value = {mode: dataclasses.asdict(found)
                         for mode, found in value.items()}
            out[key] = value
        return out


# -- memory and scaling runs -------------------------------------------------


class _Open:
    """A result read from a child's JSON object: the keys that are
    fields set them, the others are kept in ``extra``; :meth:`to_json`
    writes them all back, in the order read, then the fields set since."""

    keys: List[str]
    extra: Dict[str, Any]

    #: fields read from nested objects: ``{name: from_json(value)}``
    NESTED: Dict[str, Any] = {}

    @classmethod
    def from_json(cls, found: Mapping[str, Any]) -> Any:
        """The result of a child's JSON object ``found``."""
        made: Any = cls
        names = {field.name for field in dataclasses.fields(made)}
        values: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in found.items():
            if key in ("keys", "extra") or key not in names:
                extra[key] = value
                continue
            reader = cls.NESTED.get(key)
            values[key] = (reader(value) if reader and value is not None
                           else value)
        return made(keys=list(found), extra=extra, **values)

    def to_json(self) -> Dict[str, Any]:
        """The object read, then the fields set since."""
        names = [field.name for field in dataclasses.fields(cast(Any, self))
                 if field.name not in ("keys", "extra")]
        out: Dict[str, Any] = {}
        for key in list(self.keys) + [n for n in names
                                      if n not in self.keys]:
            value = self.extra[key] if key in self.extra else getattr(
                self, key)
            if dataclasses.is_dataclass(value) and not isinstance(value,
                                                                  type):
                value = dataclasses.asdict(value)
            out[key] = value
        return out


def _keys() -> Any:
    return dataclasses.field(default_factory=list, repr=False,
                             compare=False)


def _extra() -> Any:
    return dataclasses.field(default_factory=dict, repr=False,
                             compare=False)


@dataclasses.dataclass
class RssSummary:
    """The RSS of a ``memory-long`` run, in MB: when 10, 50 and 100 % of
    the notifications were sent (``p10_mb``...), ``growth_mb`` from 10 to
    100 %, after the flush, the largest sample and the peak; ``held_p10``
    ...: notifications sent and not yet acknowledged at those marks;
    ``samples``: ``[percent, sent, MB, held]`` every 5 %."""

    p10_mb: Optional[float] = None
    p50_mb: Optional[float] = None
    p100_mb: Optional[float] = None
    held_p10: Optional[int] = None
    held_p50: Optional[int] = None
    held_p100: Optional[int] = None
    growth_mb: Optional[float] = None
    flushed_mb: Optional[float] = None
    max_mb: Optional[float] = None
    samples: List[List[Any]] = dataclasses.field(default_factory=list)
    peak_mb: Optional[float] = None


@dataclasses.dataclass
class MemoryResult(_Open):
    """One memory run of one row (``mode``: ``memory-long`` or
    ``memory-stall``, see :mod:`notifbus.bench.memory`): RSS in MB,
    seconds, counts of notifications; ``counters`` are the transport's
    (``sent``, ``acked``, ``failed``, ``retried``, ``spooled``);
    ``bound`` what limits the notifications held in the stall."""

    row: str = "?"
    kind: Optional[str] = None
    senders: int = 1
    mode: Optional[str] = None
    count: Optional[int] = None
    size: Optional[int] = None
    sent: int = 0
    error: Optional[str] = None
    consume: Optional[ConsumeResult] = None
    config: Optional[Dict[str, Any]] = None
    rss_start_mb: Optional[float] = None
    rss: Optional[RssSummary] = None
    publish_s: Optional[float] = None
    msgs_per_s: Optional[float] = None
    counters: Optional[Dict[str, int]] = None
    lost: Optional[int] = None
    duplicates: Optional[int] = None
    stall_s: Optional[float] = None
    bound: Optional[Dict[str, int]] = None
    rss_at_stop_mb: Optional[float] = None
    sent_before_stall: Optional[int] = None
    sent_in_stall: Optional[int] = None
    held_max: Optional[int] = None
    acked_in_stall: Optional[int] = None
    rss_stall_max_mb: Optional[float] = None
    rss_after_mb: Optional[float] = None
    growth_mb: Optional[float] = None
    first_ack_after_s: Optional[float] = None
    all_acked_after_s: Optional[float] = None
    threads_before: Optional[int] = None
    threads_max: Optional[int] = None
    threads_after: Optional[int] = None
    traceback: Optional[str] = None
    wall_s: Optional[float] = None
    keys: List[str] = _keys()
    extra: Dict[str, Any] = _extra()

    NESTED = {"consume": ConsumeResult.from_json,
              "rss": lambda found: RssSummary(**found)}

    @property
    def unacked(self) -> Optional[int]:
        """Notifications sent and not acknowledged (the counters')."""
        if not self.counters:
            return None
        return self.counters["sent"] - self.counters["acked"]


@dataclasses.dataclass
class MemoryRuns:
    """The runs of ``--memory``, by mode: ``long``, then ``stall``."""

    long: List[MemoryResult] = dataclasses.field(default_factory=list)
    stall: List[MemoryResult] = dataclasses.field(default_factory=list)

    def all(self) -> List[MemoryResult]:
        return self.long + self.stall

    def to_json(self) -> Dict[str, Any]:
        return {mode: [result.to_json() for result in results]
                for mode, results in (("long", self.long),
                                      ("stall", self.stall)) if results}


@dataclasses.dataclass
class ProducerMember(_Open):
    """What one producer process of a scaling group reported: ``sent``
    and ``send_failures``, its clock (``started_at``, ``ended_at``:
    wall-clock seconds, ``time.time()``) and its own rate."""

    member: int = 0
    row: Optional[str] = None
    kind: Optional[str] = None
    senders: int = 1
    first: int = 0
    count: int = 0
    sent: int = 0
    error: Optional[str] = None
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    msgs_per_s: Optional[float] = None
    send_failures: Optional[int] = None
    traceback: Optional[str] = None
    wall_s: Optional[float] = None
    keys: List[str] = _keys()
    extra: Dict[str, Any] = _extra()


@dataclasses.dataclass
class ConsumerMember(_Open):
    """What one listener process of a pool reported: notifications
    ``received`` and distinct (``unique``), their sequence numbers as
    ``[first, last]`` ``ranges``, ``buckets`` (``[index, count]`` per
    50 ms of wall clock), and its clock: ``go_at``, ``started_at`` (its
    ``start()`` returned), ``first_at`` and ``last_at`` (first and last
    notification), wall-clock seconds."""

    member: int = 0
    count: int = 0
    listener: Optional[str] = None
    pool: Optional[str] = None
    received: int = 0
    unique: int = 0
    error: Optional[str] = None
    ranges: List[List[int]] = dataclasses.field(default_factory=list)
    buckets: List[List[int]] = dataclasses.field(default_factory=list)
    go_at: Optional[float] = None
    started_at: Optional[float] = None
    first_at: Optional[float] = None
    last_at: Optional[float] = None
    traceback: Optional[str] = None
    wall_s: Optional[float] = None
    keys: List[str] = _keys()
    extra: Dict[str, Any] = _extra()


@dataclasses.dataclass
class ProducerGroup:
    """``processes`` producer processes of one row publishing ``count``
    notifications together: ``msgs_per_s`` is what was acknowledged over
    ``wall_s``, from the first one's start to the last acknowledgement;
    ``speedup`` the rate over that of the same row with one process."""

    row: str = "?"
    kind: Optional[str] = None
    senders: int = 1
    topic: Optional[str] = None
    processes: int = 1
    count: int = 0
    sent: int = 0
    acked: int = 0
    unacked: int = 0
    wall_s: Optional[float] = None
    msgs_per_s: Optional[float] = None
    per_process_msgs_per_s: List[Optional[float]] = dataclasses.field(
        default_factory=list)
    error: Optional[str] = None
    speedup: Optional[float] = None


@dataclasses.dataclass
class ConsumerPool:
    """``consumers`` listeners in one pool (consumer group) reading
    ``count`` notifications from a topic of ``partitions`` partitions:
    ``msgs_per_s`` distinct ones over ``seconds``, from the first
    listener started to the last notification; ``join_s`` from go until
    the last had joined; ``joined_msgs_per_s`` the rate from then on
    (``after_join`` notifications); ``drain_s`` from go until the last
    notification; ``lag`` the records of the topic the pool had not
    committed when it stopped (the broker's log end offsets minus the
    group's committed offsets; ``None`` when they could not be read)."""

    row: str = "?"
    listener: Optional[str] = None
    partitions: Optional[int] = None
    pool: Optional[str] = None
    consumers: int = 1
    count: int = 0
    received: int = 0
    unique: int = 0
    lost: int = 0
    duplicates: int = 0
    seconds: Optional[float] = None
    msgs_per_s: Optional[float] = None
    join_s: Optional[float] = None
    drain_s: Optional[float] = None
    lag: Optional[int] = None
    per_member: List[int] = dataclasses.field(default_factory=list)
    after_join: Optional[int] = None
    joined_msgs_per_s: Optional[float] = None
    error: Optional[str] = None
    speedup: Optional[float] = None
    joined_speedup: Optional[float] = None


@dataclasses.dataclass
class ScalingRuns:
    """The groups of ``--producers`` and the pools of ``--consumers``
    (``None`` when not asked for), and the run that filled the pools'
    topic."""

    producers: Optional[List[ProducerGroup]] = None
    consumers: Optional[List[ConsumerPool]] = None
    fill: Optional[ProducerMember] = None

    def failed(self) -> bool:
        entries: List[Any] = (self.producers or []) + (self.consumers or [])
        return any(entry.error for entry in entries) or bool(
            self.fill and self.fill.error)

    def to_json(self) -> Dict[str, Any]:
        def listed(entries):
            return (None if entries is None else
                    [dataclasses.asdict(entry) for entry in entries])

        return {"producers": listed(self.producers),
                "consumers": listed(self.consumers),
                "fill": self.fill.to_json() if self.fill else None}


@dataclasses.dataclass
class Report:
    """What ``notifbus bench --json`` writes: the ``settings`` of the run
    (the options, as given or resolved), the ``machine`` (see
    :func:`notifbus.bench.machine.describe`), the reference row of the
    ratios, and the results of the mode that ran: ``rows``, ``memory``
    or ``scaling``."""

    settings: Dict[str, Any]
    machine: Dict[str, Any]
    reference: str
    rows: Optional[List[RowResult]] = None
    memory: Optional[MemoryRuns] = None
    scaling: Optional[ScalingRuns] = None

    def failed(self) -> bool:
        """Whether a row, run or group reports an error."""
        if self.scaling is not None:
            return self.scaling.failed()
        results: List[Any] = list(self.rows or [])
        if self.memory is not None:
            results += self.memory.all()
        return any(result.error for result in results)

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"settings": self.settings,
                               "machine": self.machine,
                               "reference": self.reference}
        if self.rows is not None:
            out["rows"] = [result.to_json() for result in self.rows]
        if self.memory is not None:
            out["memory"] = self.memory.to_json()
        if self.scaling is not None:
            out["scaling"] = self.scaling.to_json()
        return out
