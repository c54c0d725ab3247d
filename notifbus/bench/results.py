"""Typed results of the bench's rows.

A row's child process (:mod:`notifbus.bench.rowrun`) prints its result as
one JSON object; :meth:`RowResult.from_json` reads it, and
:meth:`RowResult.to_json` gives back the same object, keys in the same
order, for the ``--json`` report.
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional


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
