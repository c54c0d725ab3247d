"""Tests of the compact encoder: the JSON values of oslo's own bytes,
read back by oslo's own deserializer, whatever the message holds."""

import collections
import dataclasses
import datetime
import decimal
import enum
import ipaddress
import json
import uuid

import pytest
from oslo_context import context as oslo_context
from oslo_messaging._drivers import impl_kafka

from notifbus import codec
from tests.unit.test_codec import CTXT, MESSAGE, DictContext, oslo_kafka_bytes


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Flavor:
    """An object with no JSON form."""


AT = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
PAYLOADS = {
    "plain": {"instance_id": "i-1", "size": 3, "ok": True, "none": None,
              "ratio": 0.25, "list": [1, "a", None], "tuple": (1, 2)},
    "non-ascii": {"name": "caf\u00e9 \u2603 \U0001f600", "ctl": "a\nb\t\""},
    "datetimes": {"at": AT, "naive_midnight": datetime.datetime(2024, 1, 1),
                  "aware": AT.replace(tzinfo=datetime.timezone.utc),
                  "day": datetime.date(2024, 5, 6)},
    "sets": {"set": {3}, "frozen": frozenset(["a"]),
             "nested": [{"at": AT, "tags": {"x"}}]},
    "objects": {"uuid": uuid.UUID(int=7), "decimal": decimal.Decimal("1.10"),
                "ip": ipaddress.ip_address("10.0.0.1"),
                "error": ValueError("no room")},
    "subclasses": {"name": Name("n"), "ordered": collections.OrderedDict(
        a=1), "level": Level.HIGH},
    "non-finite": {"nan": float("nan"), "inf": float("inf"),
                   "ninf": float("-inf"), "null": None},
    "big-int": {"id": 123456789012345678901234567890},
    "int-keys": {1: "one", 2.5: "x", None: "n", False: "f"},
    "surrogate": {"s": "\ud800"},
    "deep": {"a": [[[[[[[{"b": [AT]}]]]]]]]},
}


def oslo_reads(value):
    """What oslo's own Kafka driver reads from ``value``, in a form where
    NaN equals NaN and 1 differs from 1.0."""
    ctxt, message = impl_kafka.unpack_message(value)
    return repr((ctxt, message))


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
@pytest.mark.parametrize("ctxt", [
    CTXT,
    DictContext(user="bob", request_id="req-1"),
    oslo_context.RequestContext(user_id="u1", project_id="p2",
                                request_id="req-abc"),
], ids=["dict", "to_dict", "RequestContext"])
def test_oslo_reads_what_oslo_writes(payload, ctxt):
    message = dict(MESSAGE, payload=payload)
    value = codec.encode_compact(ctxt, message)
    assert oslo_reads(value) == oslo_reads(oslo_kafka_bytes(ctxt, message))
    assert repr(codec.decode(value)) == repr(
        codec.decode(codec.encode(ctxt, message)))


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_bare_format_reads_as_oslo_writes(payload):
    message = dict(MESSAGE, payload=payload)
    value = codec.encode_compact(CTXT, message, 1.0)
    assert b"oslo.version" not in value
    assert repr(json.loads(value)) == repr(
        json.loads(codec.encode(CTXT, message, 1.0)))


@pytest.mark.skipif(codec.orjson is None,
                    reason="orjson is not installed (the speedups extra)")
@pytest.mark.parametrize("name", ["plain", "non-ascii", "datetimes", "sets",
                                  "objects"])
def test_written_by_orjson(name):
    message = dict(MESSAGE, payload=PAYLOADS[name])
    value = codec.encode_compact(CTXT, message)
    assert value != codec.encode(CTXT, message)
    assert b'", "' not in value  # no space after separators


def test_without_orjson_the_bytes_are_oslos(monkeypatch):
    monkeypatch.setattr(codec, "orjson", None)
    message = dict(MESSAGE, payload=PAYLOADS["datetimes"])
    assert codec.encode_compact(CTXT, message) == oslo_kafka_bytes(
        CTXT, message)


# what oslo's to_primitive refuses, and orjson would write itself
REFUSED = {"enum": Color.RED, "enum-in-subclass": collections.OrderedDict(
    a=Color.RED), "time": datetime.time(7, 8, 9), "dataclass": Point(1, 2),
    "object": Flavor()}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_what_oslo_refuses_is_refused(value):
    message = dict(MESSAGE, payload={"x": value})
    with pytest.raises(ValueError, match="Cannot convert"):
        oslo_kafka_bytes(CTXT, message)
    with pytest.raises(ValueError, match="Cannot convert"):
        codec.encode_compact(CTXT, message)


def test_a_message_that_holds_itself_fails_as_with_json():
    payload = {}
    payload["self"] = payload
    with pytest.raises(ValueError, match="Circular reference"):
        codec.encode_compact(CTXT, dict(MESSAGE, payload=payload))


def test_keys_json_cannot_write_fail_as_with_json():
    message = dict(MESSAGE, payload={(1, 2): "tuple key"})
    with pytest.raises(TypeError, match="keys must be"):
        codec.encode_compact(CTXT, message)


def test_does_not_modify_the_message():
    message = dict(MESSAGE, payload=dict(PAYLOADS["sets"]))
    before = repr(message)
    codec.encode_compact(CTXT, message)
    assert repr(message) == before
