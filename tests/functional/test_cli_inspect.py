"""``notifbus topics``, ``groups``, ``check`` and ``replay --headers`` on
Apache Kafka (the kafka and rdkafka backends, whose admin code differs)
and on NATS JetStream."""

import json
import re
import subprocess
import sys
import time
import uuid

import pytest
from oslo_config import cfg

from notifbus import settings
from notifbus.bus import poll_until_assigned
from notifbus.cmd import main
from notifbus.embedded import free_port
from notifbus.record import Record
from tests.functional import natsserver

BACKENDS = ("kafka", "rdkafka", "nats")


@pytest.fixture(scope="module")
def nats_prefix(nats_server):
    prefix = natsserver.unique_prefix("nbcli")
    yield prefix
    natsserver.delete_streams(prefix, nats_server.address)


@pytest.fixture(params=BACKENDS)
def url(request):
    """A transport URL of each backend; the NATS one in a prefix of the
    module's own."""
    if request.param == "nats":
        return natsserver.url(request.getfixturevalue("nats_prefix"),
                              request.getfixturevalue("nats_server").address)
    return request.getfixturevalue("apache_kafka").url(
        request.param, session_timeout_ms=1000, heartbeat_interval_ms=100)


def unique(tag):
    return f"cli-{tag}-{uuid.uuid4().hex[:8]}"


def run(capsys, *argv):
    """``(status, stdout, stderr)`` of ``notifbus argv`` in this process."""
    status = main.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv):
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


@pytest.fixture
def backend(url):
    conf = cfg.ConfigOpts()
    conf([])
    opened, _ = settings.open_backend(conf, url)
    yield opened
    opened.close()


def fill(backend, topic, counts):
    """Create ``topic`` with one partition per count and write ``counts[p]``
    records to partition ``p``."""
    backend.ensure_topic(topic, len(counts), 10.0)
    records, partitions = [], []
    for partition, count in enumerate(counts):
        records += [Record(topic=topic, value=b"r%d" % n)
                    for n in range(count)]
        partitions += [partition] * count
    assert backend.produce(records, partitions, 10.0) == [None] * len(
        records)


def test_topics_create_list_describe_delete(url, backend, capsys):
    topic = unique("topic")
    created = run_json(capsys, "topics", "create", url, topic,
                       "--partitions", "3")
    assert created[0]["name"] == topic
    assert [p["partition"] for p in created[0]["partitions"]] == [0, 1, 2]

    status, _, err = run(capsys, "topics", "create", url, topic)
    assert (status, err.strip()) == (1, f"notifbus topics create: topic "
                                        f"{topic!r} exists already at "
                                        f"{err.split(' at ')[-1].strip()}")

    fill(backend, topic, [2, 0, 1])
    listed = {t["name"]: t for t in run_json(capsys, "topics", "list", url)}
    assert len(listed[topic]["partitions"]) == 3
    described = run_json(capsys, "topics", "describe", url, topic)[0]
    ends = [p["end_offset"] for p in described["partitions"]]
    if url.startswith("notifbus+nats"):  # stream sequences: 1, 2, then 3
        assert ends == [3, 0, 4]
    else:
        assert ends == [2, 0, 1]

    status, out, _ = run(capsys, "topics", "delete", url, topic, "--yes")
    assert (status, out) == (0, f"deleted topic {topic!r}\n")
    deadline = time.monotonic() + 10
    while topic in {t["name"] for t in run_json(capsys, "topics", "list",
                                                 url)}:
        assert time.monotonic() < deadline, "the topic is still listed"
        time.sleep(0.2)
    status, _, err = run(capsys, "topics", "describe", url, topic)
    assert status == 1
    assert f"topic {topic!r} does not exist" in err


def test_delete_asks_for_a_confirmation(url, backend, capsys, monkeypatch):
    topic = unique("keep")
    fill(backend, topic, [1])
    # not a terminal: refused, status 2
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    status, _, err = run(capsys, "topics", "delete", url, topic)
    assert status == 2
    assert "needs a confirmation" in err and "--yes" in err
    # a terminal, and the answer is no: kept
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    status, _, err = run(capsys, "topics", "delete", url, topic)
    assert (status, err) == (1, f"notifbus topics delete: topic {topic!r} "
                                f"kept\n")
    assert run_json(capsys, "topics", "describe", url, topic)[0]["name"] \
        == topic


def test_groups_describe_shows_committed_offsets_and_lag(url, backend,
                                                         capsys):
    topic, group = unique("lag"), unique("pool")
    fill(backend, topic, [5, 3])
    nats = url.startswith("notifbus+nats")
    consumer = backend.subscribe([topic], group)
    try:
        kept = []
        assert poll_until_assigned(consumer, 30, kept.extend)
        # what the commit below needs this member to hold: NATS
        # acknowledges the records it received (sequences 1 and 2)
        needed = {(topic, 0, 1), (topic, 0, 2)} if nats else set()
        seen = {r.position for r in kept}
        deadline = time.monotonic() + 30
        while not (seen and needed <= seen):
            assert time.monotonic() < deadline, seen
            seen |= {r.position for r in consumer.poll(0.5, 100)}
        # the listener processed records 0-1 of partition 0 and 0 of
        # partition 1 (NATS: stream sequences 1 and 2, below 3)
        consumer.commit({(topic, 0): 3} if nats else
                        {(topic, 0): 2, (topic, 1): 1})
        described = run_json(capsys, "groups", "describe", url, group)
        status, table, _ = run(capsys, "groups", "describe", url, group)
        assert status == 0
        print(table, file=sys.stderr)
    finally:
        consumer.close()
    assert described["name"] == group
    positions = [(p["topic"], p["partition"], p["committed"],
                  p["end_offset"], p["lag"])
                 for p in described["positions"]]
    if nats:
        # one position per topic: acknowledged up to sequence 2 of 8
        assert positions == [(topic, None, 3, 9, 6)]
        assert described["total_lag"] == 6
        assert described["members"] is None  # JetStream does not name them
    else:
        assert positions == [(topic, 0, 2, 5, 3), (topic, 1, 1, 3, 2)]
        assert described["total_lag"] == 5
        [member] = described["members"]
        assert member["assignment"] == [[topic, 0], [topic, 1]]
        assert described["state"] == "Stable"
    assert f"total lag {described['total_lag']}" in table
    listed = {g["name"]: g for g in run_json(capsys, "groups", "list", url)}
    assert group in listed


def test_unknown_group_is_one_line_status_1(url, capsys):
    status, _, err = run(capsys, "groups", "describe", url, unique("none"))
    assert status == 1
    assert len(err.splitlines()) == 1
    assert "does not exist" in err


def test_check_with_probe_is_ok(url, capsys):
    topic = unique("check")
    status, out, err = run(capsys, "check", url, "--probe", "--topic", topic)
    assert status == 0, err
    assert out.startswith("ok: ") and len(out.splitlines()) == 1
    for step in ("metadata", "produce", "consume"):
        assert re.search(rf"\b{step} \d+ ms\b", out), step
    print(out, file=sys.stderr)


def test_check_of_an_unreachable_broker_fails_within_the_timeout():
    def check(backend, query="", timeout="2"):
        return subprocess.Popen(
            [sys.executable, "-m", "notifbus.cmd.main", "check",
             f"notifbus+{backend}://127.0.0.1:{free_port()}/{query}",
             "--timeout", timeout],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # at once: each waits for its timeout
    checks = {name: check(name) for name in BACKENDS}
    # kafka-python gives up before the timeout: its error, in one line
    checks["kafka-refused"] = check("kafka", "?bootstrap_timeout_ms=300",
                                    timeout="20")
    for name, process in checks.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 1, (name, err)
        assert out == ""
        assert len(err.splitlines()) == 1, (name, err)
        backend = name.partition("-")[0]
        assert re.match(rf"notifbus check: failed at (connect|metadata) of "
                        rf"notifbus\+{backend}://127\.0\.0\.1:", err), err
        # the check ends at its timeout (kafka-python alone would wait for
        # its bootstrap timeout, 5 s), or before with the client's error
        waited = re.search(r"no answer within (2) s|after (\d+) ms:", err)
        assert waited, err
        if name == "kafka-refused":
            assert "no Kafka broker answered" in err
        else:
            assert waited.group(1) or int(waited.group(2)) <= 2500, err


def test_replay_headers(url, backend, capsys):
    topic = unique("headers")
    backend.ensure_topic(topic, 1, 10.0)
    assert backend.produce([Record(topic=topic, value=b"not json",
                                   headers=[("pool", b"p1"),
                                            ("raw", b"\xff")])],
                           [0], 10.0) == [None]
    status, out, err = run(capsys, "replay", url, topic, "--headers",
                           "--quiet")
    assert status == 0, err
    [line] = [json.loads(text) for text in out.splitlines()]
    assert line["headers"] == [["pool", "p1"], ["raw", "\\xff"]]
    status, out, _ = run(capsys, "replay", url, topic, "--quiet")
    assert "headers" not in json.loads(out)
