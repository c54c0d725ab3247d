"""``notifbus replay`` end to end on the in-memory backend."""

import json
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.backends.memory import backend as memory
from notifbus.cmd import main
from notifbus.cmd.replay import parse_time


@pytest.fixture
def url():
    name = f"replay-{uuid.uuid4().hex[:8]}"
    yield f"notifbus+memory://{name}/"
    memory.reset(name)


def _publish(url, count, topic="events"):
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    notifier = oslo_messaging.Notifier(transport, "replayer",
                                       driver="messaging", topics=[topic])
    for seq in range(count):
        notifier.info({"user": "u"}, "replay.event", seq)
    transport.cleanup()


def test_prints_each_notification_as_json(url, capsys):
    _publish(url, 6)
    assert main.main(["replay", url, "events.info", "--quiet"]) == 0
    lines = [json.loads(line) for line in
             capsys.readouterr().out.splitlines()]
    assert sorted(line["message"]["payload"] for line in lines) == list(
        range(6))
    assert all(line["message"]["publisher_id"] == "replayer"
               for line in lines)
    assert {line["topic"] for line in lines} == {"events.info"}


def test_from_offset_skips_earlier_records(url, capsys):
    # two partitions: offsets 0..3 in each
    _publish(url + "?num_partitions=2", 8)
    main.main(["replay", url, "events.info", "--from-offset", "3",
               "--quiet"])
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["offset"] for line in lines] == [3, 3]


def test_republishes_to_another_topic(url, capsys):
    _publish(url, 5)
    assert main.main(["replay", url, "events.info", "--to-topic",
                      "again.info"]) == 0
    err = capsys.readouterr().err
    assert "replayed 5/5 (100%)" in err
    cluster = memory.cluster(url.split("//")[1].strip("/"))
    assert len(cluster.records("again.info")) == 5


def test_undecodable_records_are_printed_with_their_error(url, capsys):
    _publish(url, 1)
    cluster = memory.cluster(url.split("//")[1].strip("/"))
    from notifbus.record import Record
    cluster.produce([Record(topic="events.info", value=b"\xff")], [0],
                    2, 1 << 20)
    main.main(["replay", url, "events.info", "--quiet"])
    lines = [json.loads(line) for line in
             capsys.readouterr().out.splitlines()]
    assert any("error" in line for line in lines)
    assert any("message" in line for line in lines)


def test_parse_time():
    assert parse_time("1764000000000") == 1764000000000
    assert parse_time("2025-11-24T16:00:00") == 1764000000000
    assert parse_time("2025-11-24T17:00:00+01:00") == 1764000000000
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_missing_topic_is_a_clear_error(url, capsys):
    _publish(url, 1)
    assert main.main(["replay", url, "events.info", "--partition", "99",
                      "--quiet"]) == 1
    assert "has no partition 99" in capsys.readouterr().err
