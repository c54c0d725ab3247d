"""Fault scenarios on a three-node Apache Kafka cluster, through oslo's
notification transport: one notifier thread sending numbered
notifications, a pool of two notification listeners consuming throughout,
a fault made while they run, then a drain.

Each run gives a :class:`Result`: sent, acknowledged, failed (with the
errors), delivered, lost (acknowledged, never delivered), duplicated
(delivered more than once), and of those, stored twice (the same
notification at two offsets of the log: a retried send) or delivered
twice from one offset (a rebalance before the commit).
"""

import collections
import dataclasses
import json
import threading
import time
import uuid

import confluent_kafka.admin
import kafka
import oslo_messaging
from oslo_config import cfg

from notifbus import oslo_driver

#: the topics and the cluster: replication 3, min ISR 2, no unclean
#: leader election (Kafka's default, stated)
CLUSTER_CONFIG = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
    "transaction.state.log.min.isr": "2",
    "group.min.session.timeout.ms": "500",
    "replica.lag.time.max.ms": "5000",
}
PARTITIONS = 4
#: options of the transports: fast group joins; send_timeout_ms is the
#: default (10 s), longer than a leader election after a crash (the
#: brokers' session timeout, 3 s here, then the election)
QUERY = {"session_timeout_ms": "3000", "num_partitions": str(PARTITIONS),
         "retry_backoff_max_ms": "1000"}


@dataclasses.dataclass
class Result:
    scenario: str
    backend: str
    mode: str
    sent: int = 0
    acked: int = 0
    failed: int = 0
    errors: dict = dataclasses.field(default_factory=dict)
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    stored_twice: int = 0
    redelivered: int = 0
    seconds: float = 0.0
    details: dict = dataclasses.field(default_factory=dict)

    def row(self):
        return (f"{self.scenario:<22} {self.backend:<8} {self.mode:<9} "
                f"{self.sent:>6} {self.acked:>6} {self.failed:>6} "
                f"{self.delivered:>9} {self.lost:>5} {self.duplicated:>5} "
                f"{self.stored_twice:>6} {self.redelivered:>6}")

    @staticmethod
    def header():
        return (f"{'scenario':<22} {'backend':<8} {'mode':<9} "
                f"{'sent':>6} {'acked':>6} {'failed':>6} "
                f"{'delivered':>9} {'lost':>5} {'dup':>5} "
                f"{'stored2':>6} {'redel':>6}")


class Pool:
    """Two notification listeners of one pool, recording what they get."""

    def __init__(self, url, topic, listeners=2):
        self.seen = collections.Counter()
        self._lock = threading.Lock()
        self._transport = oslo_messaging.get_notification_transport(
            _conf(), url=url)
        self._servers = [oslo_messaging.get_notification_listener(
            self._transport, [oslo_messaging.Target(topic=topic)], [self],
            executor="threading", pool=f"pool-{topic}")
            for _ in range(listeners)]

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.seen[payload["n"]] += 1

    def start(self):
        for server in self._servers:
            server.start()

    def delivered(self):
        with self._lock:
            return collections.Counter(self.seen)

    def stop(self):
        for server in self._servers:
            server.stop()
        for server in self._servers:
            server.wait()
        self._transport.cleanup()


class Sender:
    """Sends notifications ``0, 1, ...`` to ``<topic>.info`` from one
    thread, as oslo's Notifier does, with ``retry``, until stopped."""

    def __init__(self, url, topic, retry=None, interval_s=0.01):
        self.topic = topic
        self.retry = retry
        self.interval_s = interval_s
        self.acked = set()
        self.failed = collections.Counter()
        self.sent = 0
        self._stop = threading.Event()
        self.transport = oslo_messaging.get_notification_transport(
            _conf(), url=url)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def send(self, n, retry):
        """One notification; the error, or ``None``."""
        message = {"publisher_id": "faults", "event_type": "fault.cluster",
                   "payload": {"n": n}, "priority": "INFO",
                   "message_id": str(uuid.uuid4()),
                   "timestamp": "2026-11-30 00:00:00"}
        try:
            self.transport._send_notification(
                oslo_messaging.Target(topic=f"{self.topic}.info"), {},
                message, version=2.0, retry=retry)
        except oslo_messaging.MessageDeliveryFailure as exc:
            return exc
        return None

    def _run(self):
        while not self._stop.is_set():
            n = self.sent
            self.sent += 1
            error = self.send(n, self.retry)
            if error is None:
                self.acked.add(n)
            else:
                self.failed[_reason(error)] += 1
            self._stop.wait(self.interval_s)

    def stop(self):
        self._stop.set()
        if self._thread.ident is None:  # never started
            return
        self._thread.join(120)
        assert not self._thread.is_alive(), "the sender is stuck"

    def close(self):
        """Clean the transport up (a buffered one sends or spools what it
        holds); its counters."""
        counters = oslo_driver.counters(self.transport)
        self.transport.cleanup()
        counters.update(oslo_driver.counters(self.transport))
        return counters


def _reason(error):
    text = str(error)
    for name in ("NotEnoughReplicas", "NOT_ENOUGH_REPLICAS",
                 "RequestTimedOut", "REQUEST_TIMED_OUT", "NotLeader",
                 "LeaderNotAvailable", "KafkaTimeout", "timed out",
                 "did not acknowledge"):
        if name in text:
            return name
    return text[:80]


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def stored(address, topic):
    """``Counter`` of notification numbers stored in ``topic`` (all
    partitions, read from the start outside any group)."""
    consumer = kafka.KafkaConsumer(
        topic, bootstrap_servers=address, group_id=None,
        auto_offset_reset="earliest", consumer_timeout_ms=3000)
    found = collections.Counter()
    try:
        for record in consumer:
            envelope = json.loads(record.value)
            message = json.loads(envelope["oslo.message"])
            found[message["payload"]["n"]] += 1
    finally:
        consumer.close()
    return found


def leaders(address, topic):
    """``{partition: leader node id}`` of ``topic``."""
    admin = kafka.KafkaAdminClient(bootstrap_servers=address)
    try:
        (described,) = admin.describe_topics([topic])
        return {p["partition_index"]: p["leader_id"]
                for p in described["partitions"]}
    finally:
        admin.close()


def coordinator(address, group):
    """Node id of the group coordinator of ``group`` (confluent-kafka's
    admin client names it)."""
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": address})
    (future,) = admin.describe_consumer_groups([group]).values()
    return future.result(timeout=30).coordinator.id


def wait_for(condition, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def settle(result, sender, pool, address, topic, counters, drain_s=60):
    """Fill ``result`` in once the pool delivered every acknowledged
    notification (or ``drain_s`` passed)."""
    wait_for(lambda: sender.acked <= set(pool.delivered()), drain_s)
    time.sleep(1.0)  # late duplicates
    seen = +collections.Counter(
        {n: c for n, c in pool.delivered().items() if n >= 0})
    log = stored(address, f"{topic}.info")
    result.sent = sender.sent
    result.failed = sum(sender.failed.values())
    result.errors.update(sender.failed)
    if result.mode == "buffered":
        # a buffered send is acknowledged in the background: what the
        # broker stored is what counts, and what was spooled is not lost
        result.acked = counters.get("acked", 0)
        missing = set(range(sender.sent)) - set(seen)
        result.lost = max(0, len(missing) - counters.get("spooled", 0))
    else:
        result.acked = len(sender.acked)
        result.lost = len(sender.acked - set(seen))
    result.delivered = len(seen)
    result.duplicated = sum(1 for count in seen.values() if count > 1)
    result.stored_twice = sum(1 for count in log.values() if count > 1)
    result.redelivered = sum(
        1 for n, count in seen.items() if count > log.get(n, 0))
    acked = sender.acked if result.mode == "confirmed" else set(
        range(sender.sent))
    result.details.update({
        "lost (stored in the log)": sorted(
            n for n in acked - set(seen) if log.get(n))[:10],
        "lost (not in the log)": sorted(
            n for n in acked - set(seen) if not log.get(n))[:10],
        "stored twice": sorted(n for n, c in log.items() if c > 1)[:10],
    })
    return result
