"""Tests of the wire format: oslo.messaging's own, byte for byte."""

import copy
import datetime
import json
import re

import pytest
from oslo_context import context as oslo_context
from oslo_messaging._drivers import common as driver_common
from oslo_serialization import jsonutils

from notifbus import codec, errors

CTXT = {"user": "alice", "project_id": "p1", "roles": ["admin"]}
MESSAGE = {
    "message_id": "0b2c6c5e-6e0a-4a43-a0a5-0f2f5b1a7e29",
    "publisher_id": "compute.host1",
    "event_type": "compute.instance.create.end",
    "priority": "INFO",
    "payload": {"instance_id": "i-1", "size": 3, "name": "caf\u00e9 \u2603"},
    "timestamp": "2024-01-02 03:04:05.678901",
}


def oslo_kafka_bytes(ctxt, message):
    """What oslo's impl_kafka writes: pack_message, then dumps + encode."""
    msg = copy.deepcopy(message)
    msg["_context"] = ctxt if isinstance(ctxt, dict) else ctxt.to_dict()
    msg = driver_common.serialize_msg(msg)
    return jsonutils.dumps(msg).encode("utf-8")


class DictContext:
    """A context object as oslo passes them: it has ``to_dict()``."""

    def __init__(self, **values):
        self.values = values

    def to_dict(self):
        return dict(self.values)


def test_round_trip_with_envelope():
    value = codec.encode(CTXT, MESSAGE, 2.0)
    ctxt, message = codec.decode(value)
    assert ctxt == CTXT
    assert message == MESSAGE


def test_envelope_layout():
    body = json.loads(codec.encode(CTXT, MESSAGE, 2.0))
    assert set(body) == {"oslo.version", "oslo.message"}
    assert body["oslo.version"] == "2.0"
    inner = json.loads(body["oslo.message"])
    assert inner["_context"] == CTXT
    assert inner["payload"] == MESSAGE["payload"]


def test_default_version_is_enveloped():
    assert codec.encode(CTXT, MESSAGE) == codec.encode(CTXT, MESSAGE, 2.0)


@pytest.mark.parametrize("version", [2.0, "2.0", 2.1])
def test_bytes_identical_to_oslo_kafka_driver(version):
    assert codec.encode(CTXT, MESSAGE, version) == oslo_kafka_bytes(
        CTXT, MESSAGE)


def test_oslo_driver_bytes_decode():
    ctxt, message = codec.decode(oslo_kafka_bytes(CTXT, MESSAGE))
    assert (ctxt, message) == (CTXT, MESSAGE)


def test_oslo_unpacks_our_bytes():
    from oslo_messaging._drivers import impl_kafka

    ctxt, message = impl_kafka.unpack_message(
        codec.encode(CTXT, MESSAGE, 2.0))
    assert (ctxt, message) == (CTXT, MESSAGE)


@pytest.mark.parametrize("version", [1.0, "1.0"])
def test_round_trip_without_envelope(version):
    value = codec.encode(CTXT, MESSAGE, version)
    assert b"oslo.version" not in value
    assert b"oslo.message" not in value
    body = json.loads(value)
    assert body["_context"] == CTXT
    assert body["event_type"] == MESSAGE["event_type"]
    assert codec.decode(value) == (CTXT, MESSAGE)


def test_bare_bytes_as_oslo_serializes_them():
    expected = dict(copy.deepcopy(MESSAGE), _context=CTXT)
    assert codec.encode(CTXT, MESSAGE, 1.0) == jsonutils.dumps(
        expected).encode("utf-8")


def test_encode_does_not_modify_the_message():
    message = copy.deepcopy(MESSAGE)
    codec.encode(CTXT, message, 2.0)
    codec.encode(CTXT, message, 1.0)
    assert message == MESSAGE
    assert "_context" not in message


def test_context_object_with_to_dict():
    ctxt = DictContext(user="bob", request_id="req-1")
    value = codec.encode(ctxt, MESSAGE, 2.0)
    assert value == oslo_kafka_bytes(ctxt, MESSAGE)
    assert codec.decode(value)[0] == {"user": "bob", "request_id": "req-1"}


def test_oslo_request_context():
    ctxt = oslo_context.RequestContext(user_id="u1", project_id="p2",
                                       request_id="req-abc")
    value = codec.encode(ctxt, MESSAGE, 2.0)
    assert value == oslo_kafka_bytes(ctxt, MESSAGE)
    decoded, _ = codec.decode(value)
    assert decoded["user"] == "u1"
    assert decoded["project_id"] == "p2"
    assert decoded["request_id"] == "req-abc"


def test_datetime_payload_serialized_like_oslo():
    at = datetime.datetime(2024, 5, 6, 7, 8, 9)
    message = dict(MESSAGE, payload={"at": at})
    value = codec.encode(CTXT, message, 2.0)
    assert value == oslo_kafka_bytes(CTXT, message)
    decoded = codec.decode(value)[1]["payload"]["at"]
    assert decoded == jsonutils.to_primitive(at)
    assert decoded.startswith("2024-05-06T07:08:09")


def envelope(version="2.0", inner="{}"):
    body = {}
    if version is not None:
        body["oslo.version"] = version
    if inner is not None:
        body["oslo.message"] = inner
    return json.dumps(body).encode()


@pytest.mark.parametrize("value, problem", [
    (b"", "empty"),
    (None, "empty"),
    (b"\x00\x01\x02garbage\xff", "not JSON"),
    (b"\xff\xfe{\"_context\": {}}", "not JSON"),
    (b"{\"_context\": {}, \"a\": ", "not JSON"),
    (b"[{\"_context\": {}}]", "JSON list where an object was expected"),
    (b"\"a string\"", "JSON str where an object was expected"),
    (b"42", "JSON int where an object was expected"),
    (b"{\"event_type\": \"x\", \"payload\": {}}", "no '_context' key"),
    (b"{\"_context\": [1, 2]}", "'_context' is not an object"),
    (envelope(version="1.0"), "unsupported envelope version '1.0'"),
    (envelope(version=None), "unsupported envelope version None"),
    (envelope(inner="this is not json"), "broken envelope"),
    (envelope(inner=None), "broken envelope"),
    (envelope(inner="[1, 2]"), "envelope holds no JSON object"),
    (envelope(inner=json.dumps({"payload": {}})), "no '_context' key"),
])
def test_decode_rejects(value, problem):
    with pytest.raises(errors.DecodeError, match=re.escape(problem)):
        codec.decode(value)


def test_invalid_utf8_names_the_codec():
    with pytest.raises(errors.DecodeError) as info:
        codec.decode(b"\xff\xfe{}")
    assert "utf-8" in str(info.value)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_envelope_with_non_json_message_keeps_cause():
    with pytest.raises(errors.DecodeError) as info:
        codec.decode(envelope(inner="{not json"))
    assert isinstance(info.value.__cause__, ValueError)


def test_decode_error_is_a_value_error():
    with pytest.raises(ValueError):
        codec.decode(b"nope")


# Decoding reads through orjson when it is installed, through json
# otherwise: both give what json gives.

@pytest.fixture(params=["orjson", "json"])
def reader(request, monkeypatch):
    if request.param == "json":
        monkeypatch.setattr(codec, "orjson", None)
    elif codec.orjson is None:
        pytest.skip("orjson is not installed (the speedups extra)")
    return request.param


@pytest.mark.parametrize("payload", [
    {"id": 123456789012345678901234567890},  # past 64 bits: stays an int
    {"id": -(2 ** 63), "max": 2 ** 64 - 1},
    {"ratio": 0.1, "tiny": 5e-324, "big": 1.7976931348623157e308},
    {"text": "caf\u00e9 \u2603 \U0001f600", "nested": [[], {}, [None]]},
    {"digits_in_a_string": "x" + "9" * 40},
])
def test_both_readers_decode_as_json_does(reader, payload):
    message = dict(MESSAGE, payload=payload)
    ctxt, decoded = codec.decode(codec.encode(CTXT, message))
    assert decoded["payload"] == payload
    assert json.dumps(decoded["payload"]) == json.dumps(payload)
    assert ctxt == CTXT


@pytest.mark.parametrize("special", ["NaN", "Infinity", "-Infinity"])
def test_both_readers_accept_what_oslo_can_write(reader, special):
    value = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(
        dict(MESSAGE, payload={"x": float(special)}, _context={}))})
    _, decoded = codec.decode(value.encode())
    assert repr(decoded["payload"]["x"]) == repr(float(special))


def test_both_readers_keep_lone_surrogates(reader):
    inner = json.dumps(dict(MESSAGE, payload={"s": "\ud800"}, _context={}))
    value = json.dumps({"oslo.version": "2.0", "oslo.message": inner})
    _, decoded = codec.decode(value.encode())
    assert decoded["payload"]["s"] == "\ud800"


def test_both_readers_name_invalid_utf8(reader):
    with pytest.raises(errors.DecodeError) as info:
        codec.decode(b'{"a": "\xff"}')
    assert "utf-8" in str(info.value)
