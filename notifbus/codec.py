"""Encode and decode notifications in oslo.messaging's wire format.

A notification is the message dict with its context under ``_context``,
serialized as JSON. From version 2.0 on, it is wrapped in oslo's envelope
``{"oslo.version": "2.0", "oslo.message": "<json>"}``. :func:`encode`
writes the bytes oslo's own Kafka driver writes, byte for byte;
:func:`encode_compact` (what the driver sends) writes the same JSON values
without the spaces and ``\\u`` escapes, through orjson when the
``speedups`` extra installs it: oslo's own deserializer reads the same
notification from either, and either driver reads the other's messages.
"""

import enum
import json
import math

from oslo_serialization import jsonutils

from notifbus import errors

try:  # the speedups extra
    import orjson
except ImportError:  # pragma: no cover - depends on the installation
    orjson = None

ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"

# jsonutils.dumps is json.dumps(obj, default=to_primitive), which builds an
# encoder per call; one encoder with the same settings writes the same
# bytes and is safe to share between threads.
_ENCODER = json.JSONEncoder(default=jsonutils.to_primitive)

# orjson reads a number past 64-bit integers as a float, where json keeps
# the integer: bytes with such a run of digits are read by json. A digit
# of an enveloped message is a digit of the bytes too, so the outer bytes
# decide for both levels.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_LONG_RUN = b"0" * 19


def _fast_reader(value):
    """orjson's ``loads`` where it reads ``value`` as json would, else
    ``None``."""
    if orjson is None or _LONG_RUN in value.translate(_DIGITS_ONLY):
        return None
    return orjson.loads


def _loads(data, fast):
    """``json.loads(data)``, through ``fast`` (orjson) when given: orjson
    refuses what only json accepts (NaN, Infinity, lone surrogates,
    invalid UTF-8), and json reads that."""
    if fast is not None:
        try:
            return fast(data)
        except ValueError:
            pass
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data)


def _body(ctxt, message):
    body = dict(message)
    body["_context"] = ctxt if isinstance(ctxt, dict) else ctxt.to_dict()
    return body


def encode(ctxt, message, version=2.0):
    """Return the bytes of ``message`` with ``ctxt`` as its context, those
    of oslo's own Kafka driver byte for byte (``version`` 2.0 and later:
    in oslo's envelope)."""
    body = _body(ctxt, message)
    if float(version) >= 2.0:
        body = {VERSION_KEY: ENVELOPE_VERSION,
                MESSAGE_KEY: _ENCODER.encode(body)}
    return _ENCODER.encode(body).encode("utf-8")


# orjson writes the exact JSON types below (a tuple as a list) as json
# does, and gives other objects to ``default`` (oslo's to_primitive, as
# json does) once told to pass datetimes and dataclasses on. It writes
# the rest itself: a non-finite float as null where oslo writes NaN, an
# Enum by value where oslo writes str(member), subclasses of the JSON
# types without ``default`` (inside them, an Enum too), a Fragment raw. A
# message with any of those is written by json.
_LEAVES = frozenset((str, int, bool, type(None)))
_MAX_VALUES = 100000
_OPTIONS = 0
_WRITTEN_BY_ORJSON: tuple = (enum.Enum, dict, list, tuple, str, int, float)
if orjson is not None:
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | \
        orjson.OPT_PASSTHROUGH_DATACLASS
    _WRITTEN_BY_ORJSON += (orjson.Fragment,)


def _orjson_writes_as_json(obj):
    """Whether orjson, with ``to_primitive`` as its default, writes the
    same JSON values as oslo's ``jsonutils.dumps`` for ``obj``.

    Objects that are no JSON type are looked at as ``to_primitive`` makes
    them; a non-finite float, an Enum member, a subclass of a JSON type,
    an object that ``to_primitive`` leaves as it is, or more than
    ``_MAX_VALUES`` values (a message that holds itself) say no.
    """
    stack = [obj]
    pop, extend = stack.pop, stack.extend
    budget = _MAX_VALUES  # a message that holds itself never ends
    while stack:
        value = pop()
        kind = type(value)
        if kind is dict:
            items = value.values()
        elif kind is list or kind is tuple:
            items = value
        elif kind is float:
            if not math.isfinite(value):
                return False
            continue
        elif kind in _LEAVES:  # what to_primitive made of an object
            continue
        elif isinstance(value, _WRITTEN_BY_ORJSON):
            return False
        else:
            primitive = jsonutils.to_primitive(value)
            if primitive is value:
                return False
            stack.append(primitive)
            continue
        budget -= len(items) + 1
        if budget < 0:
            return False
        if not _LEAVES.issuperset(map(type, items)):
            extend([item for item in items if type(item) not in _LEAVES])
    return True


def _orjson_dumps(obj):
    """orjson's bytes for ``obj``, or ``None`` where orjson refuses it
    (keys that are no strings, integers past 64 bits, lone surrogates,
    nesting deeper than orjson's limit)."""
    try:
        return orjson.dumps(obj, default=jsonutils.to_primitive,
                            option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None


def encode_compact(ctxt, message, version=2.0):
    """Return the bytes of ``message`` with ``ctxt`` as its context, as
    JSON values identical to those of :func:`encode` (oslo's
    ``jsonutils.dumps``, its ``to_primitive`` for datetimes, sets and
    other objects), written by orjson: without spaces after separators,
    non-ASCII characters in UTF-8 rather than ``\\u`` escapes.

    Falls back to :func:`encode` without orjson, and for a message orjson
    would write differently (an Enum member, NaN or Infinity) or refuses
    (see :func:`_orjson_dumps`). ``version`` as in :func:`encode`.

    :raises TypeError: what ``json.dumps`` raises for the message (a key
        that is no string, number, boolean or None).
    """
    if orjson is None:
        return encode(ctxt, message, version)
    body = _body(ctxt, message)
    if not _orjson_writes_as_json(body):
        return encode(ctxt, message, version)
    value = _orjson_dumps(body)
    if value is None:
        return encode(ctxt, message, version)
    if float(version) < 2.0:
        return value
    return orjson.dumps({VERSION_KEY: ENVELOPE_VERSION,
                         MESSAGE_KEY: value.decode("utf-8")})


def decode(value):
    """Return ``(ctxt, message)`` from bytes written by :func:`encode`.

    Accepts enveloped and bare (pre-2.0) messages. Raises
    :class:`~notifbus.errors.DecodeError` naming the problem for anything
    that is not a notification.
    """
    if not value:
        raise errors.DecodeError("empty message")
    if isinstance(value, bytearray):
        value = bytes(value)
    fast = _fast_reader(value) if isinstance(value, bytes) else None
    try:
        body = _loads(value, fast)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise errors.DecodeError(
            f"JSON {type(body).__name__} where an object was expected")
    if VERSION_KEY in body or MESSAGE_KEY in body:
        body = _open_envelope(body, fast)
    if "_context" not in body:
        raise errors.DecodeError("no '_context' key: not an oslo message")
    ctxt = body.pop("_context")
    if not isinstance(ctxt, dict):
        raise errors.DecodeError("'_context' is not an object")
    return ctxt, body


def _open_envelope(body, fast=None):
    version = body.get(VERSION_KEY)
    if version != ENVELOPE_VERSION:
        raise errors.DecodeError(
            f"unsupported envelope version {version!r}, expected "
            f"{ENVELOPE_VERSION!r}")
    try:
        inner = _loads(body[MESSAGE_KEY], fast)
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.DecodeError(f"broken envelope: {exc}") from exc
    if not isinstance(inner, dict):
        raise errors.DecodeError("envelope holds no JSON object")
    return inner
