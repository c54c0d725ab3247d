"""An nsqd for tests: started on free ports of 127.0.0.1, killed, restarted.

``$NOTIFBUS_NSQD`` names the nsqd binary (``make nsq`` builds it into
``.cache/nsq/<version>/nsqd`` and the Makefile exports the variable); else
``nsqd`` on ``PATH``. :func:`find_nsqd` returns ``None`` when there is
none; the tests then skip, or fail under ``CI``.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

INSTALL_HINT = ("nsqd was not found: run 'make nsq' (which builds it with "
                "Go into .cache/nsq/ and exports NOTIFBUS_NSQD for make "
                "test), or set NOTIFBUS_NSQD to an nsqd binary")


def find_nsqd():
    """Path of the nsqd binary, or ``None``."""
    named = os.environ.get("NOTIFBUS_NSQD")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("nsqd")


def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Nsqd:
    """One nsqd process.

    :param binary: path of nsqd.
    :param data_path: its ``--data-path`` (kept across :meth:`restart`).
    :param mem_queue_size: ``--mem-queue-size``; ``0`` writes every message
        to the disk queue before nsqd answers OK.
    :param sync_every: ``--sync-every``: how many messages nsqd writes to a
        disk queue before it syncs the queue's file and its metadata (the
        read and write positions); ``1`` for every message.
    """

    def __init__(self, binary, data_path, mem_queue_size=None,
                 sync_every=None):
        self.binary = binary
        self.data_path = str(data_path)
        self.mem_queue_size = mem_queue_size
        self.sync_every = sync_every
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.process = None
        self._log = None

    @property
    def address(self):
        return f"127.0.0.1:{self.tcp_port}"

    def url(self, **query):
        """``notifbus+nsq://127.0.0.1:<port>/`` with ``query`` options."""
        extra = urllib.parse.urlencode(query)
        return f"notifbus+nsq://{self.address}/" + (f"?{extra}" if extra
                                                     else "")

    def start(self, timeout=10.0):
        """Start nsqd; return once its TCP port accepts connections.

        :raises RuntimeError: it exited or did not listen within
            ``timeout`` seconds; the message has its log.
        """
        command = [self.binary, f"--data-path={self.data_path}",
                   f"--tcp-address=127.0.0.1:{self.tcp_port}",
                   f"--http-address=127.0.0.1:{self.http_port}",
                   "--log-level=warn"]
        if self.mem_queue_size is not None:
            command.append(f"--mem-queue-size={self.mem_queue_size}")
        if self.sync_every is not None:
            command.append(f"--sync-every={self.sync_every}")
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=self._log,
                                        stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.tcp_port),
                                         0.2).close()
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nsqd did not start on {self.address}: "
                           f"{self.log()}")

    def log(self):
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def kill(self):
        """SIGKILL: no flush of what nsqd holds in memory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self):
        """Start again on the same ports and data path (after
        :meth:`kill` or :meth:`stop`)."""
        self.stop()
        return self.start()

    def http(self, path, method="POST"):
        """Call nsqd's HTTP API; the response body."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def delete_topics(self):
        """Delete every topic (and its channels)."""
        import json

        stats = json.loads(self.http("/stats?format=json", method="GET"))
        for topic in stats.get("topics", []):
            name = urllib.parse.quote(topic["topic_name"])
            self.http(f"/topic/delete?topic={name}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def nsqd(mem_queue_size=None, binary=None):
    """An :class:`Nsqd` in a temporary data directory, stopped and removed
    on exit."""
    binary = binary or find_nsqd()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="notifbus-nsqd-") as data:
        with Nsqd(binary, data, mem_queue_size) as server:
            yield server
