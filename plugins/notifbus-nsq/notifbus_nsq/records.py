"""Records as NSQ message bodies.

NSQ messages have a body and nothing else. A record without headers (every
notification) travels as its value alone, so any NSQ consumer reads oslo's
envelope as it is. A record with headers (a dead letter, which says where
it came from and why), or whose value NSQ cannot carry as it is (empty:
nsqd refuses an empty body; or starting with the magic), travels as
:data:`HEADERS_MAGIC`, the 4-byte big-endian size of a JSON list of
``[name, base64(value)]`` pairs, that list, then the value. The key only
chooses the nsqd (the partition) and is not sent.
"""

import base64
import json
import struct

from notifbus.record import Received

#: Opens a body that carries record headers; a JSON document (oslo's
#: envelope) never starts with a NUL byte.
HEADERS_MAGIC = b"\x00NBH"
_SIZE = struct.Struct(">I")


def encode(record):
    """The NSQ message body of ``record``."""
    if (not record.headers and record.value and
            not record.value.startswith(HEADERS_MAGIC)):
        return record.value
    head = json.dumps([[name, base64.b64encode(value).decode()]
                       for name, value in record.headers]).encode()
    return HEADERS_MAGIC + _SIZE.pack(len(head)) + head + record.value


def decode(body):
    """``(value, headers)`` of an NSQ message body; a body that does not
    parse as one with headers is a value."""
    if body.startswith(HEADERS_MAGIC):
        start = len(HEADERS_MAGIC) + _SIZE.size
        try:
            (size,) = _SIZE.unpack_from(body, len(HEADERS_MAGIC))
            pairs = json.loads(body[start:start + size])
            headers = tuple((name, base64.b64decode(value))
                            for name, value in pairs)
        except (struct.error, ValueError, TypeError):
            return body, ()
        return body[start + size:], headers
    return body, ()


def received(topic, partition, offset, message):
    """The :class:`~notifbus.record.Received` of an NSQ
    :class:`~notifbus_nsq.protocol.Message`: ``partition`` is the index of
    its nsqd in the URL, ``offset`` the consumer's count of deliveries."""
    value, headers = decode(message.body)
    return Received(topic=topic, partition=partition, offset=offset,
                    value=value, headers=headers,
                    timestamp_ms=message.timestamp_ns // 1_000_000)
