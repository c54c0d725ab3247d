"""One TCP connection to nsqd, on an asyncio loop.

:class:`Connection` opens with the protocol's magic and IDENTIFY, then
reads frames until the connection ends: it answers heartbeats with NOP,
hands message frames to ``on_message`` and matches responses and errors
to the requests waiting for them, in order (nsqd answers the commands
that have an answer in the order it received them). Everything here runs
on the loop thread of the backend (:class:`notifbus.loop_thread.LoopThread`).
"""

import asyncio
import collections
import json
import socket

from notifbus_nsq import protocol

READ_CHUNK = 256 * 1024


class NsqError(Exception):
    """nsqd answered a command with an error frame (``E_...``), or the
    connection ended before it answered."""

    def __init__(self, message, code=b""):
        super().__init__(message)
        self.code = code


class Connection:
    """A connection to nsqd at ``host:port``.

    :param features: the IDENTIFY body (a dict), sent on :meth:`open`.
    :param on_message: ``on_message(connection, message)`` for each
        message frame (a :class:`~notifbus_nsq.protocol.Message`), called on
        the loop; ``None`` for a connection that only publishes.
    :param note: ``note(level, message, *args)``: where log lines go (the
        loop thread must not log itself).
    """

    def __init__(self, host, port, features, on_message=None, note=None):
        self.host, self.port = host, port
        self.features = features
        self.negotiated = {}
        self._on_message = on_message
        self._note = note or (lambda *args: None)
        self._reader = self._writer = None
        self._task = None
        self._waiting = collections.deque()
        self.closed = asyncio.Event()
        self.error = None

    def __repr__(self):
        return f"<nsqd {self.host}:{self.port}>"

    @property
    def is_open(self):
        return self._writer is not None and not self.closed.is_set()

    async def open(self, timeout):
        """Connect, send the magic and IDENTIFY; return once nsqd agreed.

        :raises OSError: the connection failed.
        :raises asyncio.TimeoutError: nsqd did not answer in ``timeout`` s.
        :raises NsqError: nsqd refused IDENTIFY.
        """
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer.write(protocol.MAGIC)
        self._task = asyncio.ensure_future(self._read_frames())
        try:
            answer = await asyncio.wait_for(
                self.request(protocol.identify(self.features)), timeout)
        except BaseException:
            self.close()
            raise
        if answer != protocol.OK:
            self.negotiated = json.loads(answer)

    def send(self, data):
        """Write a command that has no answer (RDY, FIN, REQ, TOUCH, NOP).
        Ignored once the connection ended."""
        if self.is_open:
            self._writer.write(data)

    async def request(self, data):
        """Write a command and return nsqd's response data (``b"OK"``).

        :raises NsqError: nsqd answered with an error, or the connection
            ended first.
        """
        if not self.is_open:
            raise NsqError(f"the connection to nsqd at {self.host}:"
                           f"{self.port} is closed: {self.error}")
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._writer.write(data)
        return await future

    async def _read_frames(self):
        frames = protocol.FrameReader()
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    raise ConnectionResetError("nsqd closed the connection")
                for frame_type, body in frames.feed(data):
                    self._dispatch(frame_type, body)
        except asyncio.CancelledError:
            self._end(ConnectionAbortedError("connection closed"))
            raise
        except (OSError, protocol.ProtocolError, NsqError) as exc:
            self._end(exc)

    def _dispatch(self, frame_type, body):
        if frame_type == protocol.FRAME_MESSAGE:
            if self._on_message is not None:
                self._on_message(self, protocol.parse_message(body))
        elif frame_type == protocol.FRAME_RESPONSE:
            if body == protocol.HEARTBEAT:
                self.send(protocol.nop())
            elif self._waiting:
                _settle(self._waiting.popleft(), body, None)
        elif frame_type == protocol.FRAME_ERROR:
            code = body.split(b" ", 1)[0]
            if code in protocol.NON_FATAL_ERRORS:
                self._note(10, "nsqd at %s:%s: %s", self.host, self.port,
                           body.decode(errors="replace"))
                return
            error = NsqError(f"nsqd at {self.host}:{self.port} answered "
                             f"{body.decode(errors='replace')}", code)
            if self._waiting:
                _settle(self._waiting.popleft(), None, error)
            # nsqd closes the connection after any other error
        else:
            raise protocol.ProtocolError(f"unknown frame type {frame_type}")

    def _end(self, exc):
        if self.closed.is_set():
            return
        self.error = exc
        self.closed.set()
        while self._waiting:
            _settle(self._waiting.popleft(), None, NsqError(
                f"the connection to nsqd at {self.host}:{self.port} ended: "
                f"{exc}"))
        if self._writer is not None:
            self._writer.close()

    def close(self):
        """End the connection now; requests still waiting fail."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._end(ConnectionAbortedError("connection closed"))

    async def stop_messages(self, timeout):
        """CLS: nsqd sends no more messages; those in flight may still be
        finished or requeued. Returns after nsqd's CLOSE_WAIT, or after
        ``timeout`` seconds."""
        if self.is_open:
            try:
                await asyncio.wait_for(self.request(protocol.cls()), timeout)
            except (asyncio.TimeoutError, NsqError, OSError):
                pass


def _settle(future, result, error):
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
