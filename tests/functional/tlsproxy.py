"""A Kafka broker behind TLS, for the TLS tests.

Tansu 0.6's own TLS listener does not complete a handshake, so the tests
put ``stunnel`` in front of a plain Tansu broker: stunnel accepts TLS on a
free loopback port and forwards to the broker's plain port, and the broker
advertises the stunnel port, so that the client comes back through TLS
after reading the metadata.
"""

import socket
import subprocess
import time

import pytest

from notifbus.embedded import EmbeddedBroker, free_port
from tests import services, tlscerts

#: options that make a send to an unusable broker fail fast
FAIL_FAST = {"bootstrap_timeout_ms": 1000, "send_timeout_ms": 2000,
             "request_timeout_ms": 2000}


def stunnel_binary():
    """Path of ``stunnel`` (Debian package ``stunnel4``), or ``None``."""
    return services.find("stunnel")


#: the mark of a test module that needs stunnel: it skips without it,
#: except in CI, where :meth:`TlsProxy.start` fails instead
needs_stunnel = pytest.mark.skipif(
    stunnel_binary() is None and not services.in_ci(),
    reason=services.missing("stunnel"))


def broker_certs(directory):
    """A CA, a server certificate for 127.0.0.1 and localhost, one for
    another name, one for 127.0.0.1 alone (which a client connecting by
    ``localhost`` refuses), and a second CA that signed none of them, in
    ``directory``."""
    ca = tlscerts.make_ca(directory)
    other_ca = tlscerts.make_ca(directory, "other test CA")
    server = tlscerts.issue(ca, directory, "server", ["localhost",
                                                      "127.0.0.1"])
    misnamed = tlscerts.issue(ca, directory, "misnamed",
                              ["broker.other.test"])
    ip_only = tlscerts.issue(ca, directory, "ip-only", ["127.0.0.1"])
    return {"dir": directory, "ca": ca.path, "other_ca": other_ca.path,
            "server": server, "misnamed": misnamed, "ip_only": ip_only}


class TlsProxy:
    """``stunnel`` accepting TLS on ``127.0.0.1:port`` with ``cert`` and
    ``key``, forwarding in the clear to ``127.0.0.1:target_port``."""

    def __init__(self, directory, cert, key, target_port, port=None):
        self.directory = directory
        self.cert = cert
        self.key = key
        self.target_port = target_port
        self.port = port or free_port()
        self.process = None
        self.log_path = directory / f"stunnel-{self.port}.log"

    def start(self, timeout=10.0):
        config = self.directory / f"stunnel-{self.port}.conf"
        config.write_text(
            "foreground = yes\n"
            "pid =\n"
            "syslog = no\n"
            f"output = {self.log_path}\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{self.port}\n"
            f"connect = 127.0.0.1:{self.target_port}\n"
            f"cert = {self.cert}\n"
            f"key = {self.key}\n")
        self.process = subprocess.Popen(
            [services.require("stunnel"), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"stunnel exited with code {self.process.returncode}: "
                    f"{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stunnel did not listen on port {self.port} "
                           f"within {timeout} s: {self.log()}")

    def log(self):
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class TlsBroker:
    """A Tansu broker reachable only through a :class:`TlsProxy`."""

    def __init__(self, directory, cert, key):
        self.port = free_port()
        self.broker = EmbeddedBroker(advertised_port=self.port)
        self.proxy = TlsProxy(directory, cert, key, self.broker.port,
                              port=self.port)

    @property
    def plain_port(self):
        return self.broker.port

    def url(self, backend="kafka", **query):
        """``notifbus+<backend>://127.0.0.1:<TLS port>/`` with ``query``."""
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"notifbus+{backend}://127.0.0.1:{self.port}/" + (
            f"?{params}" if params else "")

    def start(self):
        self.broker.start()
        try:
            self.proxy.start()
        except Exception:
            self.broker.stop()
            raise
        return self

    def stop(self):
        self.proxy.stop()
        self.broker.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
