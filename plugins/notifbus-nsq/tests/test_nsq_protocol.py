"""NSQ's protocol V2 as bytes, and records as message bodies: no nsqd."""

import struct

import pytest
from notifbus_nsq import protocol, records

from notifbus.record import Record


def test_commands_are_lines_with_sized_bodies():
    assert protocol.sub("t.info", "pool") == b"SUB t.info pool\n"
    assert protocol.rdy(200) == b"RDY 200\n"
    assert protocol.req(b"0123456789abcdef", 0) == \
        b"REQ 0123456789abcdef 0\n"
    assert protocol.pub("t", b"hello") == b"PUB t\n\x00\x00\x00\x05hello"
    assert protocol.mpub("t", [b"a", b"bc"]) == (
        b"MPUB t\n" + struct.pack(">iiiBiBB", 15, 2, 1, ord("a"), 2,
                                  ord("b"), ord("c")))
    assert protocol.mpub_size([b"a", b"bc"]) == 15


def test_frames_are_cut_from_a_stream_in_any_pieces():
    message = struct.pack(">qH16s", 1_700_000_000_123_000_000, 3,
                          b"0123456789abcdef") + b"body"
    stream = (struct.pack(">ii", 4 + 11, 0) + b"_heartbeat_" +
              struct.pack(">ii", 4 + len(message), 2) + message +
              struct.pack(">ii", 4 + 2, 0) + b"OK")
    reader, frames = protocol.FrameReader(), []
    for i in range(0, len(stream), 5):
        frames += reader.feed(stream[i:i + 5])
    assert [t for t, _ in frames] == [0, 2, 0]
    assert frames[0][1] == protocol.HEARTBEAT
    parsed = protocol.parse_message(frames[1][1])
    assert (parsed.attempts, parsed.id, parsed.body) == (
        3, b"0123456789abcdef", b"body")
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameReader().feed(b"HTTP/1.1 400 Bad")


def test_names_nsqd_accepts():
    assert protocol.valid_name("notifications.info.dead")
    assert not protocol.valid_name("a" * 65)
    assert not protocol.valid_name("has space")


@pytest.mark.parametrize("record", [
    Record(topic="t", value=b'{"oslo.version": "2.0"}'),
    Record(topic="t", value=b""),
    Record(topic="t", value=records.HEADERS_MAGIC + b"x"),
    Record(topic="t", value=b"v", headers=[("notifbus-error", b"\xff")]),
])
def test_record_bodies_round_trip(record):
    body = records.encode(record)
    assert body  # nsqd refuses empty bodies
    assert records.decode(body) == (record.value, tuple(record.headers))


def test_a_notification_travels_as_its_value():
    value = b'{"oslo.version": "2.0", "oslo.message": "{}"}'
    assert records.encode(Record(topic="t", value=value, key=b"k")) == value
