"""Encode and decode notifications in oslo.messaging's wire format.

A notification is the message dict with its context under ``_context``,
serialized as JSON. From version 2.0 on, it is wrapped in oslo's envelope
``{"oslo.version": "2.0", "oslo.message": "<json>"}``: the bytes are the
same as those written by oslo's own Kafka driver, so either driver reads
the other's messages.
"""

import json

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


def encode(ctxt, message, version=2.0):
    """Return the bytes of ``message`` with ``ctxt`` as its context."""
    body = dict(message)
    body["_context"] = ctxt if isinstance(ctxt, dict) else ctxt.to_dict()
    if float(version) >= 2.0:
        body = {VERSION_KEY: ENVELOPE_VERSION,
                MESSAGE_KEY: _ENCODER.encode(body)}
    return _ENCODER.encode(body).encode("utf-8")


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
