"""The inspection commands without a broker: the backends without
administration support, the transport from the configuration files, the
table output and ``replay --headers`` (memory backend)."""

import argparse
import io
import json
import uuid

import pytest

from notifbus import admin
from notifbus.backends.memory import backend as memory
from notifbus.cmd import main, output
from notifbus.record import Record

URL = "notifbus+memory://inspect/"


@pytest.mark.parametrize("command, argv", [
    ("topics list", ["topics", "list", URL]),
    ("topics describe", ["topics", "describe", URL, "t"]),
    ("topics create", ["topics", "create", URL, "t"]),
    ("topics delete", ["topics", "delete", URL, "t", "--yes"]),
    ("groups list", ["groups", "list", URL]),
    ("groups describe", ["groups", "describe", URL, "g"]),
    ("check", ["check", URL, "--probe"]),
])
def test_backend_without_admin_support_is_one_line_status_2(command, argv,
                                                            capsys):
    assert main.main(argv) == 2
    assert capsys.readouterr().err == (
        f"notifbus {command}: not supported by backend 'memory': topics, "
        f"groups and check work with the kafka, nats, rdkafka backends\n")


def test_transport_url_comes_from_the_config_file(tmp_path, capsys):
    conf = tmp_path / "service.conf"
    conf.write_text("[oslo_messaging_notifications]\n"
                    "transport_url = notifbus+memory://fromconf/\n")
    assert main.main(["groups", "list", "--config-file", str(conf)]) == 2
    assert "not supported by backend 'memory'" in capsys.readouterr().err


def test_without_a_transport_url_is_status_2(tmp_path, capsys):
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    assert main.main(["topics", "list", "--config-file", str(empty)]) == 2
    assert capsys.readouterr().err.startswith(
        "notifbus topics list: no transport URL")


def test_timeout_must_be_positive(capsys):
    with pytest.raises(SystemExit) as info:
        main.main(["check", "notifbus+kafka://h/", "--timeout", "0"])
    assert info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_table_aligns_columns_and_shows_none_as_dash():
    out = io.StringIO()
    output.table(["TOPIC", "LAG"], [["a.long.topic", 3], ["b", None]],
                 stream=out)
    assert out.getvalue() == ("TOPIC         LAG\n"
                              "a.long.topic  3\n"
                              "b             -\n")


def test_json_has_the_total_lag_of_a_group():
    out = io.StringIO()
    output.as_json(admin.GroupInfo(
        name="g", state="Stable", members=[],
        positions=[admin.GroupPosition("t", 0, 2, 5, 3),
                   admin.GroupPosition("t", 1, None, 4, 4)]), stream=out)
    found = json.loads(out.getvalue())
    assert found["total_lag"] == 7
    assert [p["lag"] for p in found["positions"]] == [3, 4]


def test_lag_counts_the_whole_partition_when_nothing_is_committed():
    assert admin.lag(None, 7) == 7
    assert admin.lag(5, 7) == 2
    assert admin.lag(9, 7) == 0


def test_group_positions_cover_committed_and_owned_partitions():
    asked = []

    def ends(topic):
        asked.append(topic)
        return {"a": {0: 10, 1: 4}, "b": {0: 7}}[topic]

    positions = admin.group_positions(
        {("a", 0): 6, ("a", 1): -1, ("b", 0): -1001},
        {("a", 1): "m1", ("b", 0): "m2"}, ends)
    assert [(p.topic, p.partition, p.committed, p.end_offset, p.lag,
             p.member) for p in positions] == [
        ("a", 0, 6, 10, 4, None),
        ("a", 1, None, 4, 4, "m1"),
        ("b", 0, None, 7, 7, "m2")]
    assert asked == ["a", "b"]


def test_replay_headers_prints_each_record_headers(capsys):
    name = f"headers-{uuid.uuid4().hex[:8]}"
    try:
        memory.cluster(name).produce(
            [Record(topic="t.info", value=b"{}",
                    headers=[("notifbus-pool", b"pool-a"),
                             ("bin", b"\x00\xff")])], [0], 1, 1 << 20)
        url = f"notifbus+memory://{name}/"
        assert main.main(["replay", url, "t.info", "--headers",
                          "--quiet"]) == 0
        line = json.loads(capsys.readouterr().out)
        assert line["headers"] == [["notifbus-pool", "pool-a"],
                                   ["bin", "\x00\\xff"]]
        assert main.main(["replay", url, "t.info", "--quiet"]) == 0
        assert "headers" not in json.loads(capsys.readouterr().out)
    finally:
        memory.reset(name)


def _leaf_commands(parser, prog="notifbus"):
    subs = [a for a in parser._actions
            if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prog, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaf_commands(sub, f"{prog} {name}")


def test_every_command_with_a_transport_takes_the_config_files():
    found = {}
    for prog, parser in _leaf_commands(main.build_parser()):
        options = {o for a in parser._actions for o in a.option_strings}
        found[prog] = {"--config-file", "--config-dir"} <= options
    # broker and bench use no service's transport
    assert [prog for prog, has in found.items() if not has] == [
        "notifbus bench", "notifbus broker"]
    assert found["notifbus topics delete"] and found["notifbus check"]
