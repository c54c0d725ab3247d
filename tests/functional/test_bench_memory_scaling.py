"""``notifbus bench --memory`` and ``--producers/--consumers`` end to end,
with tiny counts, on the embedded broker.

Correctness only (the runs are there, with their figures, and nothing is
lost); never how fast anything was, nor how much memory it took.
"""

import contextlib
import io
import json

import pytest

from notifbus.cmd import main

pytestmark = pytest.mark.functional

COUNT = 2000
BOUND = 500
MAX_BATCH = 500  # the library's max_batch_records: one batch in flight


def _run(argv, out):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        code = main.main(["bench"] + argv + ["--json", str(out)])
    return {"code": code, "stdout": stdout.getvalue(),
            "stderr": stderr.getvalue(),
            "report": json.loads(out.read_text())}


def _number(value):
    return isinstance(value, (int, float)) and value > 0


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "memory.json"
    return _run(["--memory", "--count", str(COUNT), "--stall", "1",
                 "--stall-count", str(COUNT), "--max-buffer-records",
                 str(BOUND), "--rows", "notifbus-confirmed-x4,"
                 "notifbus-buffered", "--consume-wait", "15"], out)


@pytest.fixture(scope="module")
def scaling_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "scaling.json"
    return _run(["--producers", "1,2", "--consumers", "1,2", "--count",
                 str(COUNT), "--rows", "notifbus-confirmed",
                 "--consume-wait", "15"], out)


def test_long_runs_sample_the_rss_and_lose_nothing(memory_run):
    assert memory_run["code"] == 0, memory_run["stdout"]
    report = memory_run["report"]
    assert report["settings"]["count"] == COUNT
    long = {r["row"]: r for r in report["memory"]["long"]}
    assert list(long) == ["notifbus-confirmed-x4", "notifbus-buffered"]
    for result in long.values():
        assert result["error"] is None, result
        assert result["sent"] == COUNT
        rss = result["rss"]
        for key in ("p10_mb", "p50_mb", "p100_mb", "max_mb"):
            assert _number(rss[key]), (key, rss)
        assert rss["growth_mb"] == pytest.approx(
            rss["p100_mb"] - rss["p10_mb"])
        assert [s[0] for s in rss["samples"]] == list(range(5, 101, 5))
        counters = result["counters"]
        assert counters["acked"] == counters["sent"] == COUNT + 1
        assert counters["failed"] == 0
        assert result["lost"] == 0 and result["consume"]["unique"] == COUNT


def test_the_stall_holds_at_most_the_bound_and_loses_nothing(memory_run):
    stall = {r["row"]: r for r in memory_run["report"]["memory"]["stall"]}
    for result in stall.values():
        assert result["error"] is None, result
        assert result["stall_s"] == 1.0
        assert result["sent"] == COUNT
        assert _number(result["rss_start_mb"])
        assert _number(result["rss_stall_max_mb"])
        assert result["counters"]["acked"] == COUNT + 1
        assert result["lost"] == 0 and result["consume"]["unique"] == COUNT
    confirmed = stall["notifbus-confirmed-x4"]
    assert confirmed["bound"] == {"senders": 4}
    assert confirmed["held_max"] <= 4
    buffered = stall["notifbus-buffered"]
    assert buffered["bound"]["max_buffer_records"] == BOUND
    # the buffer filled up, and the sender then waited for room
    assert BOUND <= buffered["held_max"] <= BOUND + MAX_BATCH
    assert buffered["sent_in_stall"] <= BOUND + MAX_BATCH
    assert buffered["sent_before_stall"] + buffered["sent_in_stall"] < COUNT


def test_the_memory_tables_are_printed(memory_run):
    out = memory_run["stdout"]
    assert "RSS 10%" in out and "growth MB" in out and "held max" in out
    assert f"{BOUND} rec/16 MB" in out and "4 snd" in out
    assert "(SIGSTOP) for 1 s" in out
    assert "notifbus-buffered (stall): broker stopped for 1 s" in \
        memory_run["stderr"]


def test_producer_processes_share_the_count(scaling_run):
    assert scaling_run["code"] == 0, scaling_run["stdout"]
    report = scaling_run["report"]
    producers = report["scaling"]["producers"]
    assert [e["processes"] for e in producers] == [1, 2]
    for entry in producers:
        assert entry["error"] is None, entry
        assert entry["row"] == "notifbus-confirmed"
        assert entry["sent"] == COUNT and entry["unacked"] == 0
        assert _number(entry["msgs_per_s"]) and _number(entry["wall_s"])
        assert len(entry["per_process_msgs_per_s"]) == entry["processes"]
    assert producers[0]["speedup"] == 1.0
    assert _number(producers[1]["speedup"])
    assert report["machine"]["cpus"] >= 1


def test_consumers_in_one_pool_lose_nothing(scaling_run):
    report = scaling_run["report"]
    assert report["scaling"]["fill"]["error"] is None
    consumers = report["scaling"]["consumers"]
    assert [e["consumers"] for e in consumers] == [1, 2]
    for entry in consumers:
        assert entry["error"] is None, entry
        assert entry["unique"] == COUNT and entry["lost"] == 0
        assert sum(entry["per_member"]) >= COUNT
        assert len(entry["per_member"]) == entry["consumers"]
        assert _number(entry["msgs_per_s"])
        assert _number(entry["join_s"])
        assert 0 <= entry["after_join"] <= COUNT
    assert report["settings"]["partitions"] == 2
    out = scaling_run["stdout"]
    assert "procs" in out and "speed-up" in out and "per consumer" in out
    assert "CPUs (os.cpu_count())" in out
