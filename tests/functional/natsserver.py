"""NATS for the tests: the machine's server, or private ones.

The functional tests use the long-lived nats-server at ``NOTIFBUS_NATS``
(``127.0.0.1:4222`` by default) with a stream prefix unique to the test
run, and delete that prefix's streams afterwards, so reruns never see each
other's records. :class:`NatsServer` starts a private ``nats-server`` on a
free loopback port with a configuration file, for TLS and authentication
tests.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

pytest.importorskip("nats", reason="the NATS client is not installed: "
                    "pip install notifbus[nats]")

from notifbus.backends.nats import NatsBackend  # noqa: E402

ADDRESS = os.environ.get("NOTIFBUS_NATS", "127.0.0.1:4222")
BINARY = os.environ.get("NOTIFBUS_NATS_SERVER",
                        shutil.which("nats-server") or "/usr/sbin/nats-server")


def unique_prefix(tag="nbtest"):
    """A stream prefix no other test run uses."""
    return f"{tag}{uuid.uuid4().hex[:10]}"


def reachable(address=ADDRESS, timeout=1.0):
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(address=ADDRESS):
    """Skip the calling test when no NATS server answers at ``address``."""
    if not reachable(address):
        pytest.skip(f"no NATS server at {address} (set NOTIFBUS_NATS)")


def url(prefix, address=ADDRESS, **query):
    """A ``notifbus+nats://`` URL for ``prefix`` with query options."""
    query = {"stream_prefix": prefix, **query}
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return f"notifbus+nats://{address}/?{text}"


def delete_streams(prefix, address=ADDRESS, **options):
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


class NatsServer:
    """A private ``nats-server`` with JetStream on a free loopback port.

    :param config: extra configuration text (``tls {...}``,
        ``authorization {...}``), appended to the listen and JetStream
        settings.
    """

    def __init__(self, config=""):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="notifbus-nats-")
        self.config = config
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=10.0):
        path = os.path.join(self.dir, "nats.conf")
        store = os.path.join(self.dir, "store").replace("\\", "/")
        with open(path, "w") as conf:
            conf.write(f'listen: "127.0.0.1:{self.port}"\n'
                       f'jetstream {{ store_dir: "{store}" }}\n'
                       f"{self.config}\n")
        os.makedirs(self.dir, exist_ok=True)
        self._log = open(os.path.join(self.dir, "server.log"), "ab")
        self.process = subprocess.Popen([BINARY, "-c", path],
                                        stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not reachable(self.address, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(os.path.join(self.dir, "server.log")) as log:
                    raise RuntimeError(f"nats-server did not start:\n"
                                       f"{log.read()}")
            time.sleep(0.05)
        return self

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
            self.process = None
            self._log.close()
        if not keep_store:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
