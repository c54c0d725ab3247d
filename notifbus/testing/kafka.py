"""Apache Kafka brokers (KRaft) for tests and benchmarks.

:class:`KafkaCluster` starts one combined broker+controller node, or a
cluster of ``nodes`` of them, from the jars of ``org.apache.kafka:kafka_2.13``
(``make kafka`` copies them from Maven Central into
``.cache/kafka/<version>/libs``), each node on free loopback ports in a
directory of its own. It waits until each node logs ``Kafka Server
started``, stops nodes with SIGTERM then SIGKILL after a bound, kills and
restarts single nodes for fault tests, and never outlives the process that
started it: each node gets ``PR_SET_PDEATHSIG`` (Linux) and a process group
of its own, killed at interpreter exit.

Where the jars are: ``$NOTIFBUS_KAFKA_LIBS`` (a directory of jars), else
``.cache/kafka/<KAFKA_VERSION>/libs`` under the current directory or one of
its parents. Listeners:

- ``PLAINTEXT`` always (inter-broker traffic too);
- ``SSL`` when ``tls`` is given, and ``SASL_SSL`` when ``users`` is given
  too, with the PLAIN and SCRAM-SHA-512 mechanisms; users are the PLAIN
  users of the listener's JAAS configuration and SCRAM-SHA-512 credentials
  written at format time (``kafka-storage format --add-scram``).

A cluster reached by an operator instead (``$NOTIFBUS_KAFKA_BOOTSTRAP``,
comma-separated ``host:port``) is :class:`ExternalKafka`: same addresses
and URLs, no process control.
"""

import base64
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

from notifbus import errors, subprocesses

#: Kafka version the project's tools/kafka/pom.xml fetches.
KAFKA_VERSION = "4.4.0"
READY_LINE = b"Kafka Server started"

_LOG4J2 = """\
status = warn
name = notifbus-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
"""

_JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
              "-XX:-UsePerfData", "-Djava.awt.headless=true",
              "-Djava.net.preferIPv4Stack=true"]

# settings of every node: small footprint, fast group joins
_COMMON_CONFIG = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.num.partitions": "5",
    "share.coordinator.state.topic.num.partitions": "5",
    "auto.create.topics.enable": "true",
    "delete.topic.enable": "true",
    "log.cleaner.dedupe.buffer.size": "8388608",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
}


def kafka_libs():
    """Directory holding the broker's jars.

    :raises NotifbusError: none is found; the message says how to fetch
        them.
    """
    found = os.environ.get("NOTIFBUS_KAFKA_LIBS")
    if found:
        candidates = [pathlib.Path(found)]
    else:
        here = pathlib.Path.cwd().resolve()
        candidates = [d / ".cache" / "kafka" / KAFKA_VERSION / "libs"
                      for d in (here, *here.parents)]
    for path in candidates:
        if any(path.glob("kafka_2.13-*.jar")):
            return path
    raise errors.NotifbusError(
        f"no Apache Kafka jars in {', '.join(map(str, candidates[:1]))}: "
        f"run 'make kafka' (Maven fetches kafka_2.13 {KAFKA_VERSION}) or "
        f"set NOTIFBUS_KAFKA_LIBS to a directory of the broker's jars")


def cluster_id():
    """A KRaft cluster id: URL-safe base64 of a random UUID, no padding
    (what ``kafka-storage random-uuid`` prints)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(
            b"=").decode()
        if not found.startswith("-"):
            return found


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct free TCP ports of ``host``."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class KafkaNode:
    """One combined broker+controller of a :class:`KafkaCluster`."""

    def __init__(self, cluster, node_id, ports):
        self.cluster = cluster
        self.node_id = node_id
        self.port, self.controller_port, self.ssl_port, self.sasl_port = ports
        self.directory = cluster.directory / f"node{node_id}"
        self.config_path = self.directory / "server.properties"
        self.log_path = self.directory / "server.log"
        self.process = None
        self._log = None

    @property
    def address(self):
        return f"{self.cluster.host}:{self.port}"

    def config(self):
        host = self.cluster.host
        listeners = [("PLAINTEXT", self.port)]
        if self.cluster.tls:
            listeners.append(("SSL", self.ssl_port))
            if self.cluster.users:
                listeners.append(("SASL_SSL", self.sasl_port))
        replicas = str(min(3, len(self.cluster.nodes_ports)))
        config = dict(_COMMON_CONFIG)
        config.update({
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.cluster.voters,
            "listeners": ",".join(
                [f"{name}://{host}:{port}" for name, port in listeners]
                + [f"CONTROLLER://{host}:{self.controller_port}"]),
            "advertised.listeners": ",".join(
                f"{name}://{host}:{port}" for name, port in listeners),
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT"]
                + [f"{name}:{name}" for name, _ in listeners]),
            "log.dirs": str(self.directory / "data"),
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "share.coordinator.state.topic.replication.factor": replicas,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.min.isr": "1",
        })
        if self.cluster.tls:
            config.update({
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.cluster.keystore),
                "ssl.client.auth": "none",
            })
        if self.cluster.tls and self.cluster.users:
            plain_users = " ".join(
                f'user_{name}="{password}"'
                for name, password in self.cluster.users.items())
            config.update({
                "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                "listener.name.sasl_ssl.plain.sasl.jaas.config":
                    "org.apache.kafka.common.security.plain.PlainLoginModule"
                    f" required {plain_users};",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule"
                    " required;",
            })
        config.update(self.cluster.broker_config)
        return config

    def format(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("".join(
            f"{key}={value}\n" for key, value in self.config().items()))
        scram = []
        for name, password in self.cluster.users.items():
            scram += ["--add-scram",
                      f"SCRAM-SHA-512=[name={name},password={password}]"]
        done = subprocess.run(
            self.cluster.java_command(
                ["-Xmx128m"], "kafka.tools.StorageTool", "format",
                "-t", self.cluster.cluster_id, "-c", str(self.config_path),
                *scram),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
            check=False)
        if done.returncode:
            raise errors.NotifbusError(
                f"formatting Kafka node {self.node_id} failed "
                f"({done.returncode}): {done.stdout.decode()[-2000:]}")

    def start(self):
        """Start the JVM (the node must be formatted); returns at once."""
        if self.running:
            return
        self._log = open(self.log_path, "ab")
        self._log_start = self.log_path.stat().st_size
        self.process = subprocesses.spawn(
            self.cluster.java_command(
                [f"-Xms{self.cluster.heap_mb}m",
                 f"-Xmx{self.cluster.heap_mb}m"],
                "kafka.Kafka", str(self.config_path)),
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout):
        """Wait until this start of the node logged that it is started.

        :raises NotifbusError: the JVM exited, or ``timeout`` seconds
            passed; the message ends with the node's last log lines.
        """
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                if READY_LINE in log.read():
                    return
            if self.process.poll() is not None:
                raise errors.NotifbusError(
                    f"Kafka node {self.node_id} exited with code "
                    f"{self.process.returncode} at start:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise errors.NotifbusError(
                    f"Kafka node {self.node_id} did not start within "
                    f"{timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines=30):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, kill=False, timeout=15.0):
        """SIGTERM (a controlled shutdown), SIGKILL after ``timeout``
        seconds; SIGKILL at once with ``kill=True``."""
        process = self.process
        if process is not None and process.poll() is None:
            if kill:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if process is not None:
            subprocesses.forget(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self):
        self.stop(kill=True)

    def restart(self, timeout=60.0):
        self.stop()
        self.start()
        self.wait_ready(timeout)


class KafkaCluster:
    """``nodes`` Apache Kafka KRaft nodes on ``127.0.0.1``.

    ``broker_quirks`` is ``"none"``: the Kafka backends work around
    nothing (:mod:`notifbus.backends.kafka_common.quirks`).

    :param nodes: how many combined broker+controller nodes (1 or 3
        typically); internal topics get ``min(3, nodes)`` replicas.
    :param tls: ``(certfile, keyfile)`` of the brokers' certificate (PEM,
        the key PKCS#8 unencrypted): adds an ``SSL`` listener.
    :param users: ``{name: password}``: with ``tls``, adds a ``SASL_SSL``
        listener where they log in with PLAIN or SCRAM-SHA-512.
    :param broker_config: server properties added to or replacing the
        defaults of every node.
    :param heap_mb: heap of each JVM, in MiB.
    :param directory: where the nodes keep their data; a temporary
        directory removed by :meth:`stop` when not given.
    """

    broker_quirks = "none"

    def __init__(self, nodes=1, tls=None, users=None, broker_config=None,
                 heap_mb=256, directory=None, host="127.0.0.1", libs=None):
        self.host = host
        self.tls = tls
        self.users = dict(users or {})
        self.broker_config = {k: str(v) for k, v in
                              (broker_config or {}).items()}
        self.heap_mb = heap_mb
        self.libs = pathlib.Path(libs) if libs else kafka_libs()
        self._own_directory = directory is None
        self.directory = pathlib.Path(directory or tempfile.mkdtemp(
            prefix="notifbus-kafka-"))
        self.cluster_id = cluster_id()
        ports = free_ports(4 * nodes, host)
        self.nodes_ports = [tuple(ports[4 * i:4 * i + 4])
                            for i in range(nodes)]
        self.voters = ",".join(
            f"{i + 1}@{host}:{p[1]}" for i, p in enumerate(self.nodes_ports))
        self.nodes = [KafkaNode(self, i + 1, p)
                      for i, p in enumerate(self.nodes_ports)]
        self.keystore = None
        self.java = shutil.which("java") or "java"
        (self.directory / "log4j2.properties").write_text(_LOG4J2)

    def java_command(self, heap, main, *args):
        return [self.java, *heap, *_JVM_FLAGS,
                f"-Dlog4j2.configurationFile="
                f"{self.directory / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.directory}",
                "-cp", f"{self.libs}/*", main, *args]

    @property
    def bootstrap_servers(self):
        """``host:port,...`` of the PLAINTEXT listeners."""
        return ",".join(node.address for node in self.nodes)

    @property
    def address(self):
        return self.bootstrap_servers

    @property
    def ssl_servers(self):
        return ",".join(f"{self.host}:{n.ssl_port}" for n in self.nodes)

    @property
    def sasl_ssl_servers(self):
        return ",".join(f"{self.host}:{n.sasl_port}" for n in self.nodes)

    def url(self, backend="kafka", **query):
        """``notifbus+<backend>://<PLAINTEXT listeners>/`` with ``query``."""
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return (f"notifbus+{backend}://{self.bootstrap_servers}/"
                + (f"?{params}" if params else ""))

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def start(self, timeout=90.0):
        """Format and start every node, and wait until all are started.

        :raises NotifbusError: a node failed to format or start; the nodes
            already started are stopped.
        """
        if self.tls:
            certfile, keyfile = self.tls
            self.keystore = self.directory / "broker-keystore.pem"
            self.keystore.write_text(
                pathlib.Path(keyfile).read_text()
                + pathlib.Path(certfile).read_text())
        try:
            formatters = [threading.Thread(target=_capture, args=(n.format,))
                          for n in self.nodes]
            for thread in formatters:
                thread.start()
            for thread in formatters:
                thread.join()
            for thread in formatters:
                if thread.error:
                    raise thread.error
            # all at once: a node alone cannot form the quorum
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, kill=False):
        """Stop every node (SIGTERM, then SIGKILL after a bound), and remove
        the data of a temporary directory."""
        nodes = [n for n in self.nodes if n.running]
        for node in nodes:
            if kill:
                node.kill()
            else:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop(timeout=15.0)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _capture(function):
    thread = threading.current_thread()
    thread.error = None
    try:
        function()
    except BaseException as exc:  # noqa: BLE001 - handed to the starter
        thread.error = exc


class ExternalKafka:
    """A Kafka cluster that runs elsewhere, named by
    ``$NOTIFBUS_KAFKA_BOOTSTRAP`` (``host:port,...``): the addresses and
    URLs of :class:`KafkaCluster`, without process control."""

    broker_quirks = "none"

    def __init__(self, bootstrap_servers):
        self.bootstrap_servers = bootstrap_servers
        self.nodes = []

    @property
    def address(self):
        return self.bootstrap_servers

    def url(self, backend="kafka", **query):
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return (f"notifbus+{backend}://{self.bootstrap_servers}/"
                + (f"?{params}" if params else ""))

    def start(self):
        return self

    def stop(self, kill=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def broker_from_environment(**cluster_args):
    """:class:`ExternalKafka` when ``$NOTIFBUS_KAFKA_BOOTSTRAP`` is set, else
    a :class:`KafkaCluster` built with ``cluster_args`` (not started)."""
    bootstrap = os.environ.get("NOTIFBUS_KAFKA_BOOTSTRAP")
    if bootstrap:
        return ExternalKafka(bootstrap)
    return KafkaCluster(**cluster_args)
