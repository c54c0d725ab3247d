"""Migration from oslo.messaging's own ``kafka://`` driver, on Apache Kafka.

oslo's driver produces and consumes through confluent-kafka (librdkafka).
Here, on both notifbus Kafka backends:

* cross-reading: what ``kafka://`` sends is read by a notifbus listener,
  what notifbus sends (envelope 2.0 and bare 1.0 messages) is read by a
  ``kafka://`` listener, payload, event type, publisher id and context
  unchanged;
* a pool shared during a rolling upgrade: a ``kafka://`` listener and a
  notifbus listener in one consumer group split the partitions, then the
  ``kafka://`` listener stops and the notifbus one takes them all, with
  nothing lost and nothing duplicated;
* oslo's consumer commits before it dispatches: a killed ``kafka://``
  listener's group is past what it fetched and had not dispatched; one
  stopped cleanly dispatches it first;
* a cut-over to a pool of another name, from the old group's offsets
  copied by ``tools/copy_group_offsets.py``.

The ``kafka://`` side is used through oslo's public API only, its options
set in ``[oslo_messaging_kafka]`` of a ``ConfigOpts``. Its consumer starts a
new group at the latest offset, so each test waits until the ``kafka://``
listener has read a probe before it sends what it counts.

Run with ``-s`` to see the measured counts.
"""

import collections
import json
import pathlib
import queue
import runpy
import subprocess
import sys
import threading
import time
import uuid

import confluent_kafka
import confluent_kafka.admin
import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_context import context
from oslo_messaging import opts as oslo_opts

from notifbus import oslo_driver
from tests.functional.conftest import FAST_GROUP

BACKENDS = ("kafka", "rdkafka")
WAIT_S = 30.0


class Recorder:
    """Endpoint keeping every notification as
    ``(ctxt, publisher_id, event_type, payload)``; probes apart."""

    def __init__(self):
        self.seen = queue.Queue()
        self.probes = queue.Queue()

    def _record(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type == "migration.probe":
            self.probes.put(payload)
        else:
            self.seen.put((ctxt, publisher_id, event_type, payload))

    info = _record

    def drain(self, into):
        while True:
            try:
                into.append(self.seen.get_nowait())
            except queue.Empty:
                return into


def oslo_conf(**kafka_opts):
    """A parsed ConfigOpts with oslo's options, ``[oslo_messaging_kafka]``
    set to ``kafka_opts``."""
    conf = cfg.ConfigOpts()
    for group, opts in oslo_opts.list_opts():
        conf.register_opts(opts, group=group)
    conf([])
    for name, value in kafka_opts.items():
        conf.set_override(name, value, group="oslo_messaging_kafka")
    return conf


def oslo_url(broker):
    return f"kafka://{broker.bootstrap_servers}/"


def transport(url, **kafka_opts):
    return oslo_messaging.get_notification_transport(
        oslo_conf(**kafka_opts), url=url)


def listener(transport_, topic, pool, endpoint=None):
    endpoint = endpoint or Recorder()
    server = oslo_messaging.get_notification_listener(
        transport_, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool=pool)
    server.start()
    return server, endpoint


def notifier(transport_, topic, publisher_id, version="2.0"):
    driver = "messagingv2" if version == "2.0" else "messaging"
    return oslo_messaging.Notifier(transport_, publisher_id=publisher_id,
                                   driver=driver, topics=[topic], retry=3)


def wait_for(condition, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


class Prober(threading.Thread):
    """Sends rounds of ``size`` probes (``migration.probe``) every 0.3 s
    until :meth:`wait_read` saw each endpoint read a whole round: the
    endpoints' groups have resolved their offsets. ``kafka://`` listeners
    start at the latest offset, and their start returns early once they
    read something."""

    def __init__(self, send, size=1):
        super().__init__(daemon=True)
        self._send, self._size = send, size
        self._done = threading.Event()

    def run(self):
        round_ = 0
        while not self._done.is_set():
            for i in range(self._size):
                self._send(f"{round_}-{i}")
            round_ += 1
            self._done.wait(0.3)

    def wait_read(self, *endpoints):
        seen = [set() for _ in endpoints]

        def whole_round():
            for got, endpoint in zip(seen, endpoints):
                while not endpoint.probes.empty():
                    got.add(endpoint.probes.get())
            rounds = set.intersection(*[
                {p.split("-")[0] for p in got} for got in seen])
            return any(all({f"{r}-{i}" for i in range(self._size)} <= got
                           for got in seen) for r in rounds)

        try:
            wait_for(whole_round, "probes read")
        finally:
            self._done.set()
            self.join()


def stop(*things):
    for thing in things:
        if isinstance(thing, oslo_messaging.MessageHandlingServer):
            thing.stop()
            thing.wait()
        else:
            thing.cleanup()


def send_set(notifier_, ctxt, event_type, count, prefix):
    """Send ``count`` notifications; return what a listener must read."""
    sent = []
    # the Notifier sends a redacted copy of a RequestContext (a dict, none)
    expected_ctxt = ctxt.redacted_copy().to_dict()
    for seq in range(count):
        payload = {"id": f"{prefix}-{seq}", "seq": seq, "text": "é \u2603"}
        notifier_.info(ctxt, event_type, payload)
        sent.append((expected_ctxt, notifier_.publisher_id, event_type,
                     payload))
    return sent


def as_keys(notifications):
    return [n[3]["id"] for n in notifications]


@pytest.mark.parametrize("backend", BACKENDS)
def test_kafka_and_notifbus_read_each_other(apache_kafka, backend):
    tag = uuid.uuid4().hex[:8]
    topic = f"migrate{tag}"
    ours = transport(apache_kafka.url(backend, num_partitions=1))
    theirs = transport(oslo_url(apache_kafka))
    servers = []
    try:
        probe = notifier(theirs, topic, "probe")
        prober = Prober(lambda p: probe.info({}, "migration.probe", p))
        prober.start()
        for tr, pool in ((ours, f"nb-{tag}"), (theirs, f"os-{tag}")):
            servers.append(listener(tr, topic, pool))
        (_, our_reader), (_, their_reader) = servers
        prober.wait_read(our_reader, their_reader)
        ctxt = context.RequestContext(
            request_id=f"req-{tag}", user_id="alice", project_id="demo",
            roles=["admin"], auth_token="secret")
        sent = []
        for side, tr in (("oslo", theirs), ("notifbus", ours)):
            for version in ("2.0", "1.0"):
                sent += send_set(
                    notifier(tr, topic, f"{side}-{version}.host", version),
                    ctxt, f"migration.{side}.v{version}", 3,
                    f"{side}-{version}")
        for name, reader in (("notifbus", our_reader),
                             ("kafka://", their_reader)):
            got = read_all(reader, len(sent), f"the {name} listener")
            print(f"\n{backend}: the {name} listener read {len(got)} of "
                  f"{len(sent)}")
            assert by_id(got) == by_id(sent), name
    finally:
        stop(*[server for server, _ in servers], theirs, ours)
    assert_wire_format(apache_kafka, f"{topic}.info")


def by_id(notifications):
    return sorted(notifications, key=lambda n: n[3]["id"])


def read_all(reader, count, what, got=None):
    """What ``reader`` read once it read ``count`` (and anything that comes
    within 0.3 s after: a duplicate)."""
    got = [] if got is None else got
    wait_for(lambda: len(reader.drain(got)) >= count,
             f"{count} read by {what}")
    time.sleep(0.3)
    return reader.drain(got)


def assert_wire_format(broker, topic):
    """oslo's kafka:// driver writes the 2.0 envelope whatever the
    Notifier's version; notifbus writes a bare message for 1.0."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": f"raw-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    kinds = ("oslo-2.0", "oslo-1.0", "notifbus-2.0", "notifbus-1.0")
    enveloped = {}
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0)])
        deadline = time.monotonic() + WAIT_S
        while len(enveloped) < len(kinds) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            for kind in kinds:
                if f"{kind}.host".encode() in message.value():
                    enveloped[kind] = message.value().startswith(
                        b'{"oslo.version"')
    finally:
        consumer.close()
    assert enveloped == {"oslo-2.0": True, "oslo-1.0": True,
                         "notifbus-2.0": True, "notifbus-1.0": False}


def group_description(broker, group):
    """``(assignor, [partition count of each member])`` of a group."""
    admin = confluent_kafka.admin.AdminClient(
        {"bootstrap.servers": broker.bootstrap_servers})
    found = admin.describe_consumer_groups([group])[group].result(10)
    return found.partition_assignor, sorted(
        len(m.assignment.topic_partitions) for m in found.members)


def partitions_of(transport_):
    (subscription,) = oslo_driver.driver_of(transport_).subscriptions()
    return subscription.assignment()


@pytest.mark.parametrize("backend,naming", [("kafka", "pool"),
                                            ("rdkafka", "consumer_group")])
def test_a_pool_shared_during_a_rolling_upgrade(apache_kafka, backend,
                                                naming):
    """Old kafka:// listener and new notifbus listener in one group (a pool,
    or the group of listeners without a pool, named alike on both sides):
    they split the partitions; the old one stops; everything is read once.
    """
    tag = uuid.uuid4().hex[:8]
    topic, group = f"upgrade{tag}", f"group-{tag}"
    partitions = 4
    query, kafka_opts, pool = {}, {}, group
    if naming == "consumer_group":
        query, kafka_opts, pool = {"consumer_group": group}, {
            "consumer_group": group}, None
    ours = transport(apache_kafka.url(backend, num_partitions=partitions,
                                      **FAST_GROUP, **query))
    theirs = transport(oslo_url(apache_kafka), **kafka_opts)
    their_server = our_server = None
    try:
        # the old service's listener, alone in the group, reads everything
        our_notifier = notifier(ours, topic, "nb.host")
        their_notifier = notifier(theirs, topic, "oslo.host")
        our_notifier.info({}, "migration.probe", "create")  # the topic
        prober = Prober(lambda p: our_notifier.info({}, "migration.probe", p),
                        size=partitions)  # round robin: one per partition
        prober.start()
        their_server, their_reader = listener(theirs, topic, pool)
        prober.wait_read(their_reader)
        # the first upgraded listener joins the same group
        our_server, our_reader = listener(ours, topic, pool)
        wait_for(lambda: 0 < len(partitions_of(ours)) < partitions,
                 "partitions shared")
        assignor, shares = group_description(apache_kafka, group)
        ctxt = context.RequestContext(request_id=f"req-{tag}")
        sent = []
        for seq in range(10):  # both kinds of senders, interleaved
            sent += send_set(their_notifier, ctxt, "migration.shared", 1,
                             f"oslo-{seq}")
            sent += send_set(our_notifier, ctxt, "migration.shared", 1,
                             f"nb-{seq}")
        shared = len(sent)
        ours_got, theirs_got = [], []
        wait_for(lambda: len(our_reader.drain(ours_got)) + len(
            their_reader.drain(theirs_got)) >= shared,
            "notifications read by the shared group")
        # the old listener stops: the new one takes its partitions
        stop(their_server)
        their_server = None
        wait_for(lambda: len(partitions_of(ours)) == partitions,
                 "all partitions at the notifbus listener")
        sent += send_set(our_notifier, ctxt, "migration.shared", 20,
                         "after")
        read_all(our_reader, len(sent) - len(theirs_got), "notifbus",
                 got=ours_got)
        their_reader.drain(theirs_got)
    finally:
        stop(*[s for s in (their_server, our_server) if s], theirs, ours)
    read = collections.Counter(as_keys(ours_got) + as_keys(theirs_got))
    lost = set(as_keys(sent)) - set(read)
    duplicated = sum(n - 1 for n in read.values())
    print(f"\n{backend} ({naming}): assignor {assignor}, partitions per "
          f"member {shares}; sent {len(sent)} ({shared} while shared), "
          f"read by kafka:// {len(theirs_got)}, by notifbus "
          f"{len(ours_got)}, lost {len(lost)}, duplicated {duplicated}")
    assert shares == [partitions // 2] * 2, shares
    assert theirs_got and ours_got
    assert not lost and not duplicated
    assert by_id(ours_got + theirs_got) == by_id(sent)


class ListenerProcess:
    """:mod:`tests.functional.oslo_kafka_listener` in a child process; what
    it prints fills a :class:`Recorder` (payloads with their ``id``
    alone)."""

    def __init__(self, broker, topic, pool):
        self.recorder = Recorder()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.functional.oslo_kafka_listener",
             broker.bootstrap_servers, topic, pool],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=pathlib.Path(__file__).parents[2])
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            kind, _, value = line.strip().partition(" ")
            if kind == "probe":
                self.recorder.probes.put(value)
            elif kind == "read":
                self.recorder.seen.put((None, None, None, {"id": value}))

    def kill(self):
        self.process.kill()
        self.process.wait()


def committed_ids(broker, group, topic):
    """Payload ids of the records of partition 0 of ``topic`` before the
    offset that ``group`` committed, where any new member of the group
    starts."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": broker.bootstrap_servers, "group.id": group,
        "enable.auto.commit": False})
    try:
        (position,) = consumer.committed(
            [confluent_kafka.TopicPartition(topic, 0)], timeout=10)
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        ids = []
        while position.offset > 0:
            message = consumer.poll(5)
            assert message is not None and not message.error(), message
            if message.offset() >= position.offset:
                break
            body = json.loads(json.loads(message.value())["oslo.message"])
            if body["event_type"] != "migration.probe":
                ids.append(body["payload"]["id"])
            if message.offset() == position.offset - 1:
                break
        return ids
    finally:
        consumer.close()


def test_a_killed_kafka_listener_loses_what_it_fetched(apache_kafka):
    """oslo's kafka:// consumer commits what it fetched before it
    dispatches it: what a killed kafka:// listener fetched and had not
    dispatched is behind its group's committed offset, where a notifbus
    listener taking over the group starts."""
    tag = uuid.uuid4().hex[:8]
    topic, group = f"killed{tag}", f"group-{tag}"
    ours = transport(apache_kafka.url("rdkafka", num_partitions=1))
    theirs = ListenerProcess(apache_kafka, topic, group)
    try:
        our_notifier = notifier(ours, topic, "nb.host")
        prober = Prober(lambda p: our_notifier.info({}, "migration.probe", p))
        prober.start()
        prober.wait_read(theirs.recorder)
        ctxt = context.RequestContext(request_id=f"req-{tag}")
        sent = as_keys(send_set(our_notifier, ctxt, "migration.kill", 20,
                                "kill"))
        theirs_got = []
        wait_for(lambda: len(theirs.recorder.drain(theirs_got)) >= 3,
                 "notifications read by the kafka:// listener")
        theirs.kill()
        theirs.recorder.drain(theirs_got)
    finally:
        theirs.kill()
        ours.cleanup()
    dispatched = as_keys(theirs_got)
    behind = committed_ids(apache_kafka, group, f"{topic}.info")
    lost = [key for key in behind if key not in dispatched]
    print(f"\nkafka:// listener killed mid-stream: sent {len(sent)}, "
          f"dispatched {len(dispatched)}, committed {len(behind)}, lost for "
          f"the group {len(lost)}")
    assert dispatched == sent[:len(dispatched)]
    assert lost and lost == sent[len(dispatched):len(behind)]


class SlowRecorder(Recorder):
    """A Recorder taking 0.1 s per notification."""

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type != "migration.probe":
            time.sleep(0.1)
        self._record(ctxt, publisher_id, event_type, payload, metadata)


def copy_offsets(*args):
    """``copy_offsets`` of tools/copy_group_offsets.py, the upgrade step of
    doc/source/migration.rst."""
    path = pathlib.Path(__file__).parents[2] / "tools/copy_group_offsets.py"
    return runpy.run_path(str(path))["copy_offsets"](*args)


def test_a_new_pool_starts_from_the_old_groups_offsets(apache_kafka):
    """Cut-over to a pool of another name: the kafka:// listener stops
    (cleanly, with notifications fetched and not yet dispatched: it
    dispatches them first), its group's offsets are copied to the new pool,
    whose notifbus listener reads what came since, and nothing before."""
    tag = uuid.uuid4().hex[:8]
    topic, old, new = f"cutover{tag}", f"old-{tag}", f"new-{tag}"
    ours = transport(apache_kafka.url("kafka", num_partitions=2))
    conf = oslo_conf()
    conf.set_override("executor_thread_pool_size", 1)  # one at a time
    theirs = oslo_messaging.get_notification_transport(
        conf, url=oslo_url(apache_kafka))
    their_server = our_server = None
    try:
        our_notifier = notifier(ours, topic, "nb.host")
        prober = Prober(lambda p: our_notifier.info({}, "migration.probe", p),
                        size=2)
        prober.start()
        their_server, their_reader = listener(theirs, topic, old,
                                              SlowRecorder())
        prober.wait_read(their_reader)
        ctxt = context.RequestContext(request_id=f"req-{tag}")
        before = send_set(our_notifier, ctxt, "migration.cut", 10, "before")
        theirs_got = read_all(their_reader, 3, "kafka://")
        stop(their_server)
        their_server = None
        their_reader.drain(theirs_got)
        during = send_set(our_notifier, ctxt, "migration.cut", 10, "during")
        with pytest.raises(ValueError, match="no committed offset"):
            copy_offsets(apache_kafka.bootstrap_servers, f"none-{tag}", new)
        copied = copy_offsets(apache_kafka.bootstrap_servers, old, new)
        our_server, our_reader = listener(ours, topic, new)
        ours_got = read_all(our_reader, len(during), "notifbus")
    finally:
        stop(*[s for s in (their_server, our_server) if s], theirs, ours)
    print(f"\ncut-over to a new pool: {len(copied)} offsets copied; read by "
          f"kafka:// {len(theirs_got)} of {len(before)} before, by notifbus "
          f"{len(ours_got)} of {len(during)} sent in between")
    assert by_id(theirs_got) == by_id(before)
    assert by_id(ours_got) == by_id(during)
    assert our_reader.probes.empty()
