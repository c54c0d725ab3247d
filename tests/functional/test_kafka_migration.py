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
  nothing lost and nothing duplicated.

The ``kafka://`` side is used through oslo's public API only, its options
set in ``[oslo_messaging_kafka]`` of a ``ConfigOpts``. Its consumer starts a
new group at the latest offset, so each test waits until the ``kafka://``
listener has read a probe before it sends what it counts.

Run with ``-s`` to see the measured counts.
"""

import collections
import queue
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


def listener(transport_, topic, pool):
    endpoint = Recorder()
    server = oslo_messaging.get_notification_listener(
        transport_, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool=pool)
    server.start()
    return server, endpoint


def notifier(transport_, topic, publisher_id, version="2.0"):
    driver = "messagingv2" if version == "2.0" else "messaging"
    return oslo_messaging.Notifier(transport_, publisher_id=publisher_id,
                                   driver=driver, topics=[topic], retry=-1)


def wait_for(condition, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def probe_until_read(send, endpoints, rounds_of=1):
    """Send probes (``rounds_of`` per round, numbered) until each endpoint
    read a whole round: its group's offsets are resolved."""
    seen = [set() for _ in endpoints]
    deadline = time.monotonic() + WAIT_S
    round_ = 0
    while True:
        batch = [f"{round_}-{i}" for i in range(rounds_of)]
        for payload in batch:
            send(payload)
        pause = time.monotonic() + 0.5
        while time.monotonic() < pause:
            for got, endpoint in zip(seen, endpoints):
                while not endpoint.probes.empty():
                    got.add(endpoint.probes.get())
            if all(set(batch) <= got for got in seen):
                return
            time.sleep(0.05)
        assert time.monotonic() < deadline, "probes were not read"
        round_ += 1


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
    our_server, our_reader = listener(ours, topic, f"nb-{tag}")
    their_server, their_reader = listener(theirs, topic, f"os-{tag}")
    try:
        probe = notifier(theirs, topic, "probe")
        probe_until_read(lambda p: probe.info({}, "migration.probe", p),
                         [their_reader, our_reader])
        ctxt = context.RequestContext(
            request_id=f"req-{tag}", user_id="alice", project_id="demo",
            roles=["admin"], auth_token="secret")
        sent = []
        for side, tr in (("oslo", theirs), ("notifbus", ours)):
            for version in ("2.0", "1.0"):
                sent += send_set(
                    notifier(tr, topic, f"{side}-{version}.host", version),
                    ctxt,
                    f"migration.{side}.v{version}", 3, f"{side}-{version}")
        expected = sorted(sent, key=lambda n: n[3]["id"])
        for name, reader in (("notifbus", our_reader),
                             ("kafka://", their_reader)):
            got = []
            wait_for(lambda: len(reader.drain(got)) >= len(sent),
                     f"notifications at the {name} listener")
            time.sleep(0.2)
            reader.drain(got)
            print(f"\n{backend}: the {name} listener read {len(got)} of "
                  f"{len(sent)}")
            assert sorted(got, key=lambda n: n[3]["id"]) == expected, name
    finally:
        stop(their_server, our_server, theirs, ours)
    assert_wire_format(apache_kafka, f"{topic}.info")


def assert_wire_format(broker, topic):
    """oslo's kafka:// driver writes the 2.0 envelope whatever the
    Notifier's version; notifbus writes a bare message for 1.0."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": f"raw-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest"})
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0)])
        enveloped = {}
        deadline = time.monotonic() + WAIT_S
        while len(enveloped) < 4 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            value = message.value()
            if b'"migration.probe' in value.replace(b'\\"', b'"'):
                continue
            for kind in ("oslo-2.0", "oslo-1.0", "notifbus-2.0",
                         "notifbus-1.0"):
                if f"{kind}.host".encode() in value:
                    enveloped[kind] = value.startswith(b'{"oslo.version"')
    finally:
        consumer.close()
    assert enveloped == {"oslo-2.0": True, "oslo-1.0": True,
                         "notifbus-2.0": True, "notifbus-1.0": False}


def group_description(broker, group):
    """``(assignor, {client id: partition count})`` of a consumer group."""
    admin = confluent_kafka.admin.AdminClient(
        {"bootstrap.servers": broker.bootstrap_servers})
    found = admin.describe_consumer_groups([group])[group].result(10)
    return found.partition_assignor, {
        m.client_id: len(m.assignment.topic_partitions)
        for m in found.members}


def partitions_of(transport_):
    (subscription,) = oslo_driver.driver_of(transport_).subscriptions()
    return subscription.assignment()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pool_shared_during_a_rolling_upgrade(apache_kafka, backend):
    """Old kafka:// listener and new notifbus listener in one pool: they
    split the partitions; the old one stops; everything is read once."""
    tag = uuid.uuid4().hex[:8]
    topic, pool = f"upgrade{tag}", f"pool-{tag}"
    partitions = 4
    ours = transport(apache_kafka.url(backend, num_partitions=partitions,
                                      **FAST_GROUP))
    theirs = transport(oslo_url(apache_kafka))
    their_server = our_server = None
    try:
        # the old service's pool, alone, reading every partition
        our_notifier = notifier(ours, topic, "nb.host")
        their_notifier = notifier(theirs, topic, "oslo.host")
        our_notifier.info({}, "migration.probe", "create")  # the topic
        their_server, their_reader = listener(theirs, topic, pool)
        probe_until_read(
            lambda p: our_notifier.info({}, "migration.probe", p),
            [their_reader], rounds_of=partitions)
        # the first upgraded listener joins the same pool
        our_server, our_reader = listener(ours, topic, pool)
        wait_for(lambda: 0 < len(partitions_of(ours)) < partitions,
                 "partitions shared")
        assignor, shares = group_description(apache_kafka, pool)
        ctxt = context.RequestContext(request_id=f"req-{tag}")
        sent = []
        for seq in range(10):  # both kinds of senders, interleaved
            sent += send_set(their_notifier, ctxt, "migration.shared", 1,
                             f"oslo-{seq}")
            sent += send_set(our_notifier, ctxt, "migration.shared", 1,
                             f"nb-{seq}")
        while_shared = len(sent)
        ours_got, theirs_got = [], []
        wait_for(lambda: len(our_reader.drain(ours_got)) + len(
            their_reader.drain(theirs_got)) >= while_shared,
            "notifications read by the shared pool")
        # the old listener stops: the new one takes its partitions
        stop(their_server)
        their_server = None
        wait_for(lambda: len(partitions_of(ours)) == partitions,
                 "all partitions at the notifbus listener")
        sent += send_set(our_notifier, ctxt, "migration.shared", 20,
                         "after")
        wait_for(lambda: len(our_reader.drain(ours_got)) + len(
            their_reader.drain(theirs_got)) >= len(sent),
            "notifications read after the upgrade")
        time.sleep(0.5)  # anything read twice comes now
        our_reader.drain(ours_got)
        their_reader.drain(theirs_got)
    finally:
        stop(*[s for s in (their_server, our_server) if s], theirs, ours)
    read = collections.Counter(as_keys(ours_got) + as_keys(theirs_got))
    lost = set(as_keys(sent)) - set(read)
    duplicated = sum(n - 1 for n in read.values())
    print(f"\n{backend}: assignor {assignor}, partitions per member "
          f"{sorted(shares.values())}; sent {len(sent)} ({while_shared} "
          f"while shared), read by kafka:// {len(theirs_got)}, by notifbus "
          f"{len(ours_got)}, lost {len(lost)}, duplicated {duplicated}")
    assert sorted(shares.values()) == [partitions // 2] * 2, shares
    assert theirs_got and ours_got
    assert not lost and not duplicated
    assert sorted(ours_got + theirs_got, key=lambda n: n[3]["id"]) == sorted(
        sent, key=lambda n: n[3]["id"])
