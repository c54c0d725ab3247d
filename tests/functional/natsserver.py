"""NATS for the tests: the run's own server, and private ones.

The session fixture ``nats_server`` (see ``tests/conftest.py``, which
calls :func:`session_server`) starts one ``nats-server -js`` per pytest
run on a free port of 127.0.0.1, with its JetStream store in a temporary
directory, and stops it when the run ends; the server dies with the
pytest process in any case (its own process group, ``PR_SET_PDEATHSIG``).
``NOTIFBUS_NATS_URL`` (``nats://host:port``) points the tests at an
external server with JetStream instead. Tests that share the server use a
stream prefix of their own (:func:`unique_prefix`) and delete its streams
afterwards.

:class:`NatsServer` starts a private server with extra configuration, for
TLS, authentication and fault tests.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import pytest

pytest.importorskip("nats", reason="the NATS client is not installed: "
                    "pip install notifbus[nats]")

from notifbus import loop_thread  # noqa: E402
from notifbus.backends.nats.backend import NatsBackend  # noqa: E402
from notifbus.subprocesses import die_with_parent  # noqa: E402
from tests import services  # noqa: E402

#: environment variable naming an external server for the shared tests
URL_VARIABLE = "NOTIFBUS_NATS_URL"
DEFAULT_PORT = 4222


def unique_prefix(tag="nbtest"):
    """A stream prefix no other test run uses."""
    return f"{tag}{uuid.uuid4().hex[:10]}"


def greeting(address, timeout=1.0):
    """The INFO a NATS server sends on connect, as a dict, or ``None``
    when nothing at ``address`` answers like a NATS server."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)),
                                      timeout=timeout) as sock:
            line = sock.makefile("rb").readline()
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        return json.loads(line[5:])
    except ValueError:
        return None


def url(prefix, address, **query):
    """A ``notifbus+nats://`` URL for ``prefix`` with query options."""
    query = {"stream_prefix": prefix, **query}
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return f"notifbus+nats://{address}/?{text}"


def delete_streams(prefix, address, **options):
    """Delete every stream of ``prefix``; return their names."""
    host, _, port = address.rpartition(":")
    backend = NatsBackend([(host, int(port))],
                          {"stream_prefix": prefix, **options})
    try:
        return backend.delete_streams()
    finally:
        backend.close()


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _on_main_thread():
    # PR_SET_PDEATHSIG fires when the thread that started the child ends,
    # so only children of the main (OS) thread may ask for it
    return (loop_thread.original("threading").get_native_id()
            == os.getpid())


class ExternalNats:
    """A server the tests did not start: ``host:port`` or
    ``nats://host:port`` (port 4222 by default)."""

    def __init__(self, location):
        parsed = urllib.parse.urlsplit(
            location if "//" in location else f"//{location}")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or DEFAULT_PORT

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def check(self):
        """:raises RuntimeError: nothing answers, or without JetStream."""
        info = greeting(self.address, timeout=5.0)
        if info is None:
            raise RuntimeError(f"no NATS server answers at {self.address} "
                               f"(from {URL_VARIABLE})")
        if not info.get("jetstream"):
            raise RuntimeError(f"the NATS server at {self.address} (from "
                               f"{URL_VARIABLE}) has no JetStream: start "
                               f"it with -js")
        return self


class NatsServer:
    """A private ``nats-server`` with JetStream on a free loopback port:
    ``nats-server -js -a 127.0.0.1 -p <port> -sd <dir>``.

    :param config: configuration text (``tls {...}``,
        ``authorization {...}``, ``max_payload: 4096``), given to the
        server as a file besides the command line settings.
    """

    #: fresh starts tried on other ports when the chosen one was taken
    PORT_ATTEMPTS = 3

    def __init__(self, config=""):
        # a missing nats-server fails the test in CI and skips it
        # elsewhere (see tests.services)
        self.binary = services.require("nats-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="notifbus-nats-")
        self.config = config
        self.process = None
        self._log = None
        self._started = False

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self):
        return os.path.join(self.dir, "server.log")

    def command(self):
        command = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
                   "-sd", os.path.join(self.dir, "store")]
        if self.config:
            path = os.path.join(self.dir, "nats.conf")
            with open(path, "w") as conf:
                conf.write(f"{self.config}\n")
            command += ["-c", path]
        return command

    def start(self, timeout=10.0):
        """Start the server and wait until it answers with JetStream.

        :raises RuntimeError: the server exited or did not answer within
            ``timeout`` seconds; the message ends with its log.
        """
        attempts = 1 if self._started else self.PORT_ATTEMPTS
        for attempt in range(attempts):
            if attempt:
                self.port = free_port()
            if self._spawn(timeout):
                self._started = True
                return self
            taken = "address already in use" in self.tail()
            if not taken or attempt == attempts - 1:
                break
        log = self.tail()
        self.stop(keep_store=self._started)
        raise RuntimeError(f"nats-server did not start on {self.address}:"
                           f"\n{log}")

    def _spawn(self, timeout):
        """Start the process; whether it answered with JetStream."""
        os.makedirs(self.dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        # a process group of its own, and killed with the pytest process
        # when the main thread starts it (not a restart from a timer)
        main = _on_main_thread()
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if main else None,
            start_new_session=not main)
        deadline = time.monotonic() + timeout
        while True:
            info = greeting(self.address, 0.5)
            if info is not None and info.get("jetstream"):
                return True
            if self.process.poll() is not None:
                self._reap()
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as log:
                return "\n".join(log.read().splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def _reap(self):
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, keep_store=False, kill=False):
        """Stop the server; ``keep_store`` keeps its JetStream data for a
        :meth:`start` on the same port, ``kill`` stops it abruptly."""
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._reap()
        if not keep_store:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def session_server():
    """The server the shared NATS tests use: the one at
    ``$NOTIFBUS_NATS_URL``, else a :class:`NatsServer` started here and
    stopped on exit."""
    location = os.environ.get(URL_VARIABLE)
    if location:
        yield ExternalNats(location).check()
        return
    with NatsServer() as server:
        yield server
