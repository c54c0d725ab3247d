"""The bench's typed results: read from the children's JSON, written back
as the ``--json`` report, and the machine they ran on."""

import json
import re

from notifbus.bench import machine
from notifbus.bench.results import (
    ConsumeResult,
    ConsumerPool,
    MemoryResult,
    MemoryRuns,
    ProducerGroup,
    ProducerMember,
    Report,
    RowResult,
    RssSummary,
    ScalingRuns,
)

LONG = {"row": "notifbus-buffered", "kind": "notifbus-buffered",
        "senders": 1, "mode": "memory-long", "count": 1000, "size": 200,
        "sent": 1000, "error": None,
        "consume": {"mode": "batch", "received": 1000, "unique": 1000,
                    "lost": 0, "duplicates": 0},
        "rss_start_mb": 70.0,
        "rss": {"p10_mb": 71.0, "p50_mb": 71.5, "p100_mb": 72.0,
                "growth_mb": 1.0, "samples": [[10, 100, 71.0, 5]]},
        "counters": {"sent": 1001, "acked": 999, "failed": 0},
        "a_new_figure": [1, 2], "lost": 0, "duplicates": 0}


def test_a_memory_result_reads_nested_types_and_writes_the_same_json():
    result = MemoryResult.from_json(LONG)
    assert isinstance(result.consume, ConsumeResult)
    assert result.consume.unique == 1000
    assert isinstance(result.rss, RssSummary)
    assert result.rss.growth_mb == 1.0 and result.rss.held_p10 is None
    assert result.unacked == 2
    # a key the child adds that is no field yet is kept, not refused
    assert result.extra == {"a_new_figure": [1, 2]}
    out = result.to_json()
    assert list(out)[:len(LONG)] == list(LONG)
    assert out["a_new_figure"] == [1, 2]
    assert out["rss"]["p10_mb"] == 71.0 and out["rss"]["held_p10"] is None
    assert out["consume"]["unique"] == 1000
    # fields set after reading are written too
    result.mode = "memory-stall"
    assert result.to_json()["mode"] == "memory-stall"
    assert json.loads(json.dumps(out)) == out


def test_a_failed_run_has_no_counters():
    failed = MemoryResult.from_json({"row": "x", "error": "timed out",
                                     "green": False, "consume": None})
    assert failed.unacked is None and failed.rss is None
    assert failed.to_json()["green"] is False


def _report(**results):
    return Report(settings={"count": 10}, machine={"cpus": 2},
                  reference="oslo-kafka", **results)


def test_each_mode_writes_its_own_results():
    rows = _report(rows=[RowResult.from_json({"row": "noop"})]).to_json()
    assert list(rows) == ["settings", "machine", "reference", "rows"]
    assert rows["rows"][0]["row"] == "noop"
    memory = _report(memory=MemoryRuns(
        long=[MemoryResult.from_json(LONG)])).to_json()
    assert list(memory) == ["settings", "machine", "reference", "memory"]
    assert list(memory["memory"]) == ["long"]
    scaling = _report(scaling=ScalingRuns(
        producers=[ProducerGroup(row="notifbus-buffered", processes=2)],
        fill=ProducerMember.from_json({"sent": 5, "error": None}))
    ).to_json()
    assert scaling["scaling"]["consumers"] is None
    assert scaling["scaling"]["producers"][0]["processes"] == 2
    fill = scaling["scaling"]["fill"]
    assert list(fill)[:2] == ["sent", "error"] and fill["sent"] == 5
    assert fill["started_at"] is None


def test_a_report_fails_when_any_result_failed():
    assert not _report(rows=[RowResult.from_json({"row": "a"})]).failed()
    assert _report(rows=[RowResult.from_json(
        {"row": "a", "error": "x"})]).failed()
    assert _report(memory=MemoryRuns(stall=[MemoryResult(
        error="x")])).failed()
    assert not _report(scaling=ScalingRuns(
        consumers=[ConsumerPool(lag=0)])).failed()
    assert _report(scaling=ScalingRuns(
        consumers=[ConsumerPool(error="x")])).failed()
    assert _report(scaling=ScalingRuns(
        producers=[], fill=ProducerMember(error="x"))).failed()


def test_the_machine_is_described(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n")
    assert machine.cpu_model(str(cpuinfo)) == "Some CPU @ 2.0GHz"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684544 kB\nMemFree: 1 kB\n")
    assert machine.memory_mb(str(meminfo)) == 24106
    assert machine.memory_mb(str(tmp_path / "none")) is None
    found = machine.describe("4.4.0")
    for key in ("cpus", "usable_cpus", "cpu_model", "memory_mb", "system",
                "kernel", "python", "time", "versions", "commit"):
        assert key in found
    assert found["versions"]["apache-kafka"] == "4.4.0"
    assert found["versions"]["notifbus"]
    assert found["versions"]["oslo.messaging"]
    assert "apache-kafka" not in machine.describe()["versions"]
    # the suite runs from a checkout
    assert re.fullmatch(r"[0-9a-f]{40}(\+changes)?", found["commit"])
