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

ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"

# jsonutils.dumps is json.dumps(obj, default=to_primitive), which builds an
# encoder per call; one encoder with the same settings writes the same
# bytes and is safe to share between threads.
_ENCODER = json.JSONEncoder(default=jsonutils.to_primitive)


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
    try:
        body = json.loads(value.decode("utf-8") if isinstance(
            value, (bytes, bytearray)) else value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise errors.DecodeError(
            f"JSON {type(body).__name__} where an object was expected")
    if VERSION_KEY in body or MESSAGE_KEY in body:
        body = _open_envelope(body)
    if "_context" not in body:
        raise errors.DecodeError("no '_context' key: not an oslo message")
    ctxt = body.pop("_context")
    if not isinstance(ctxt, dict):
        raise errors.DecodeError("'_context' is not an object")
    return ctxt, body


def _open_envelope(body):
    version = body.get(VERSION_KEY)
    if version != ENVELOPE_VERSION:
        raise errors.DecodeError(
            f"unsupported envelope version {version!r}, expected "
            f"{ENVELOPE_VERSION!r}")
    try:
        inner = json.loads(body[MESSAGE_KEY])
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.DecodeError(f"broken envelope: {exc}") from exc
    if not isinstance(inner, dict):
        raise errors.DecodeError("envelope holds no JSON object")
    return inner
