"""A produce connection of notifbus's own to one Kafka broker.

The bus sends one batch at a time (one leader per group commit), and
waits for its answer: a blocking socket that writes the request and reads
the response, in the leader's own thread, does that with a fraction of the
work of a client built around an event loop (measured in
``doc/source/architecture.rst``, "The fast paths"). Requests and
responses are encoded by kafka-python's protocol classes.

A connection asks the broker which produce versions it speaks
(ApiVersions) once, right after connecting, and uses the newest it shares
with notifbus, from 3 (the first that carries v2 record batches) to 8 (the
last before the flexible encoding). TLS wraps the socket with the
backend's SSL context; SASL is not spoken here: with a SASL protocol the
backend sends through kafka-python's connections instead.

Any socket error, short read, timeout or mismatched correlation id closes
the connection: the stream can no longer be trusted, and the next request
connects again.
"""

import socket
import struct
import threading
import time

import kafka.errors as kerrors
from kafka.protocol.metadata.api_versions import (
    ApiVersionsRequest,
    ApiVersionsResponse,
)
from kafka.protocol.producer import ProduceResponse

PRODUCE_API_KEY = 0
#: The produce request versions notifbus sends, in one place: from
#: ``MIN_PRODUCE_VERSION``, the first that carries v2 record batches
#: (KIP-98), to ``MAX_PRODUCE_VERSION`` on connections of notifbus's own,
#: the last before the flexible encoding (KIP-482, v9) that this module
#: does not write, and to ``MAX_CLIENT_PRODUCE_VERSION`` through
#: kafka-python's connections (with SASL), whose sender writes v9.
MIN_PRODUCE_VERSION, MAX_PRODUCE_VERSION = 3, 8
MAX_CLIENT_PRODUCE_VERSION = 9
_SIZE = struct.Struct(">i")


class WireError(kerrors.KafkaConnectionError):
    """The connection failed; it is closed."""


class WireTimeout(kerrors.KafkaTimeoutError):
    """The broker did not answer in time; the connection is closed."""


class BrokerConnection:
    """One TCP (or TLS) connection to ``host:port``, used by one caller at
    a time: :meth:`send` takes the connection's lock, the matching
    :meth:`receive` (or :meth:`abandon`) gives it back.
    """

    def __init__(self, host, port, client_id="notifbus", ssl_context=None,
                 server_hostname=None, connect_timeout=5.0):
        self.host = host
        self.port = port
        self._client_id = client_id
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._sock = None
        self._correlation_id = 0
        self.produce_version = None

    def __repr__(self):
        return f"BrokerConnection({self.host}:{self.port})"

    # -- one request at a time ------------------------------------------

    def send(self, request, deadline):
        """Write ``request`` (a produce request); return its correlation
        id. Holds the connection until :meth:`receive` or
        :meth:`abandon`.

        :raises WireError: could not connect or write; released.
        """
        self._lock.acquire()
        try:
            if self._sock is None:
                self._connect(deadline)
            request.API_VERSION = self.produce_version
            correlation_id = self._next_id()
            request.with_header(correlation_id=correlation_id,
                                client_id=self._client_id)
            self._sock.settimeout(_left(deadline))
            self._sock.sendall(request.encode(header=True, framed=True))
            return correlation_id
        except BaseException as exc:
            self._fail()
            self._lock.release()
            if isinstance(exc, socket.timeout):
                raise WireTimeout(
                    f"could not send to {self.host}:{self.port} in time"
                ) from exc
            if isinstance(exc, (OSError, ValueError)):
                raise _wire_error(self, "send to", exc) from exc
            raise

    def receive(self, correlation_id, deadline):
        """The decoded answer to the request :meth:`send` wrote; releases
        the connection.

        :raises WireError: or :class:`WireTimeout`; the connection is
            closed.
        """
        try:
            payload = read_frame(self._sock, deadline)
            found = _SIZE.unpack_from(payload)[0]
            if found != correlation_id:
                raise WireError(
                    f"{self.host}:{self.port} answered request "
                    f"{found} where {correlation_id} was expected")
            return ProduceResponse.decode(memoryview(payload)[4:],
                                          version=self.produce_version)
        except BaseException as exc:
            self._fail()
            if isinstance(exc, socket.timeout):
                raise WireTimeout(
                    f"{self.host}:{self.port} did not answer in time"
                ) from exc
            if isinstance(exc, (OSError, ValueError, struct.error)):
                raise _wire_error(self, "read from", exc) from exc
            raise
        finally:
            self._lock.release()

    def abandon(self):
        """Give the connection back without reading the answer (the
        caller's time ran out first): it is closed."""
        self._fail()
        self._lock.release()

    def close(self):
        with self._lock:
            self._fail()

    # -- internals ------------------------------------------------------

    def _next_id(self):
        self._correlation_id = (self._correlation_id + 1) & 0x7FFFFFFF
        return self._correlation_id

    def _connect(self, deadline):
        timeout = min(_left(deadline), self._connect_timeout)
        sock = socket.create_connection((self.host, self.port),
                                        timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(
                    sock, server_hostname=self._server_hostname)
            self._sock = sock
            self.produce_version = self._negotiate(deadline)
        except BaseException:
            self._sock = None
            sock.close()
            raise

    def _negotiate(self, deadline):
        request = ApiVersionsRequest()
        request.API_VERSION = 0
        response = exchange(self._sock, request, ApiVersionsResponse,
                            self._next_id(), self._client_id, deadline)
        for key in response.api_keys:
            if key.api_key == PRODUCE_API_KEY:
                version = min(key.max_version, MAX_PRODUCE_VERSION)
                if version >= MIN_PRODUCE_VERSION:
                    return version
        raise kerrors.UnsupportedVersionError(
            f"{self.host}:{self.port} speaks no produce version between "
            f"{MIN_PRODUCE_VERSION} and {MAX_PRODUCE_VERSION}")

    def _fail(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def exchange(sock, request, response_class, correlation_id, client_id,
             deadline):
    """Write ``request`` on the blocking socket ``sock`` and read its
    answer, decoded as ``response_class`` at the request's version (one
    whose response header has no tagged fields).

    :raises OSError: the socket failed or timed out (``socket.timeout``),
        or the broker closed the connection (``ConnectionError``).
    :raises ValueError: the answer is not the request's.
    """
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    sock.settimeout(_left(deadline))
    sock.sendall(request.encode(header=True, framed=True))
    payload = read_frame(sock, deadline)
    if _SIZE.unpack_from(payload)[0] != correlation_id:
        raise ValueError(f"answer to request {correlation_id} with another "
                         f"correlation id")
    return response_class.decode(memoryview(payload)[4:],
                                 version=request.API_VERSION)


def read_frame(sock, deadline):
    """One size-prefixed frame from ``sock``, without its size."""
    size = _SIZE.unpack(_read_exactly(sock, 4, deadline))[0]
    if size < 4:
        raise ValueError(f"frame of {size} bytes")
    return _read_exactly(sock, size, deadline)


def _read_exactly(sock, count, deadline):
    chunks, missing = [], count
    while missing:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(min(missing, 1 << 20))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks.append(chunk)
        missing -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _left(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("deadline passed")
    return left


def _wire_error(conn, what, exc):
    return WireError(f"could not {what} {conn.host}:{conn.port}: {exc!r}")
