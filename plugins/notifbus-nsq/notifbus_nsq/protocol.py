"""NSQ's TCP protocol, version 2: commands out, frames in.

Only bytes, no I/O: the connection (:mod:`notifbus_nsq.connection`)
writes what these functions return and feeds what it reads to
:class:`FrameReader`. The format follows the protocol specification of
nsqd (https://nsq.io/clients/tcp_protocol_spec.html):

- a client opens with :data:`MAGIC`, then sends commands: a line
  ``NAME arg ...\\n``, followed for some by a body of a 4-byte big-endian
  size and its bytes;
- nsqd sends frames: a 4-byte size (which counts what follows it), a
  4-byte frame type (:data:`FRAME_RESPONSE`, :data:`FRAME_ERROR`,
  :data:`FRAME_MESSAGE`) and the data;
- a message frame holds an 8-byte timestamp (nanoseconds since the epoch,
  when nsqd received it), a 2-byte attempts count, a 16-byte message id
  and the body.
"""

import dataclasses
import json
import re
import struct

MAGIC = b"  V2"

FRAME_RESPONSE = 0
FRAME_ERROR = 1
FRAME_MESSAGE = 2

OK = b"OK"
HEARTBEAT = b"_heartbeat_"
CLOSE_WAIT = b"CLOSE_WAIT"

#: Errors after which the connection stays usable (the spec's non-fatal
#: errors: an id that is no longer in flight, mostly).
NON_FATAL_ERRORS = (b"E_FIN_FAILED", b"E_REQ_FAILED", b"E_TOUCH_FAILED")

#: What nsqd accepts as a topic or channel name.
NAME = re.compile(r"^[.a-zA-Z0-9_-]{1,64}$")

_HEADER = struct.Struct(">ii")
_SIZE = struct.Struct(">i")
_MESSAGE_HEAD = struct.Struct(">qH16s")


class ProtocolError(Exception):
    """nsqd sent something that is not a frame of protocol V2."""


def valid_name(name):
    """Whether nsqd accepts ``name`` as a topic or channel: 1 to 64 of
    ``[.a-zA-Z0-9_-]``."""
    return bool(NAME.match(name))


def _command(name, *args, body=None):
    line = b" ".join([name] + [_arg(a) for a in args]) + b"\n"
    if body is None:
        return line
    return line + _SIZE.pack(len(body)) + body


def _arg(value):
    return value if isinstance(value, bytes) else str(value).encode()


def identify(features):
    """IDENTIFY with ``features`` (a dict, sent as JSON)."""
    return _command(b"IDENTIFY", body=json.dumps(features).encode())


def sub(topic, channel):
    return _command(b"SUB", topic, channel)


def rdy(count):
    return _command(b"RDY", count)


def fin(message_id):
    return _command(b"FIN", message_id)


def req(message_id, timeout_ms):
    return _command(b"REQ", message_id, int(timeout_ms))


def touch(message_id):
    return _command(b"TOUCH", message_id)


def nop():
    return _command(b"NOP")


def cls():
    return _command(b"CLS")


def pub(topic, body):
    return _command(b"PUB", topic, body=body)


def mpub(topic, bodies):
    """MPUB of ``bodies`` (two or more bytes objects) to ``topic``."""
    payload = [_SIZE.pack(len(bodies))]
    for body in bodies:
        payload.append(_SIZE.pack(len(body)))
        payload.append(body)
    return _command(b"MPUB", topic, body=b"".join(payload))


def mpub_size(bodies):
    """Bytes of the body of an MPUB of ``bodies``: what nsqd's
    ``--max-body-size`` limits."""
    return 4 + sum(4 + len(body) for body in bodies)


@dataclasses.dataclass(frozen=True)
class Message:
    """A message frame's content."""

    timestamp_ns: int
    attempts: int
    id: bytes
    body: bytes


def parse_message(data):
    """The :class:`Message` of a message frame's data."""
    if len(data) < _MESSAGE_HEAD.size:
        raise ProtocolError(f"message frame of {len(data)} bytes is shorter "
                            f"than its {_MESSAGE_HEAD.size}-byte header")
    timestamp, attempts, message_id = _MESSAGE_HEAD.unpack_from(data)
    return Message(timestamp, attempts, message_id,
                   bytes(data[_MESSAGE_HEAD.size:]))


class FrameReader:
    """Cuts a byte stream into ``(frame_type, data)`` frames.

    :param max_frame_bytes: larger frames raise :class:`ProtocolError`
        (the stream is not nsqd's, or it is corrupt).
    """

    def __init__(self, max_frame_bytes=64 * 1024 * 1024):
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data):
        """Add ``data``; return the frames now complete, in order."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            size, frame_type = _HEADER.unpack_from(self._buffer)
            if size < 4 or size > self._max:
                raise ProtocolError(f"frame size {size} is out of range: "
                                    f"not an nsqd speaking protocol V2?")
            if len(self._buffer) < 4 + size:
                break
            frames.append((frame_type, bytes(self._buffer[8:4 + size])))
            del self._buffer[:4 + size]
        return frames
