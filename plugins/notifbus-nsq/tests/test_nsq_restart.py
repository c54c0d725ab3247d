"""An nsqd killed with SIGKILL and started again on its data path, with
``--mem-queue-size=0``: every notification it answered OK for is
delivered, and publishers and listeners reconnect by themselves."""

import time
import uuid

import oslo_messaging
import pytest
from notifbus_nsq import testing
from notifbus_nsq.backend import NsqBackend
from oslo_config import cfg

from notifbus.bus import poll_until_assigned
from notifbus.record import Record
from notifbus.testing.conformance import Recorder


@pytest.fixture
def disk_nsqd(nsqd_binary, tmp_path):
    server = testing.Nsqd(nsqd_binary, tmp_path, mem_queue_size=0,
                          sync_every=1)
    with server:
        yield server


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _listen(transport, topic, pool, recorder):
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [recorder],
        executor="threading", pool=pool)
    server.start()
    return server


def _stop(server):
    server.stop()
    server.wait()


def test_sigkill_loses_nothing_acknowledged(disk_nsqd):
    topic, count = f"durable{uuid.uuid4().hex[:8]}", 200
    conf = _conf()
    transport = oslo_messaging.get_notification_transport(
        conf, url=disk_nsqd.url())
    try:
        # the pool's channel exists, with no listener: messages wait in it
        server = _listen(transport, topic, "keeper", Recorder())
        _stop(server)
        # a listener of another pool stays connected through the restart
        idle = Recorder()
        idle_server = _listen(transport, topic, "idle", idle)
        notifier = oslo_messaging.Notifier(
            transport, "durable", driver="messaging", topics=[topic],
            retry=0)
        for seq in range(count):
            notifier.info({}, "durable", seq)  # returns after nsqd's OK
        assert len(idle.get(count, 10.0)) == count

        disk_nsqd.kill()
        disk_nsqd.start()

        # the publisher's connection reconnects (oslo's retry: -1)
        forever = oslo_messaging.Notifier(
            transport, "durable", driver="messaging", topics=[topic])
        forever.info({}, "durable", count)
        assert [p for _, _, p in idle.get(1, 15.0)] == [count]
        _stop(idle_server)

        keeper = Recorder()
        server = _listen(transport, topic, "keeper", keeper)
        got = keeper.get(count + 1, 15.0) + keeper.drain(0.5)
        _stop(server)
        assert set(p for _, _, p in got) == set(range(count + 1))
    finally:
        transport.cleanup()


def test_what_a_dead_listener_held_is_delivered_again(nsqd):
    """What a listener received but did not finish comes again, to
    another listener of its pool, once msg_timeout_ms passed without a
    FIN, TOUCH or REQ (its connections ended as in a crash). nsqd looks
    at a new channel's timeouts within its 5 s queue scan refresh."""
    topic = f"redeliver{uuid.uuid4().hex[:8]}"
    options = {"msg_timeout_ms": 1000}
    backend = NsqBackend([("127.0.0.1", nsqd.tcp_port)], options)
    try:
        assert backend.produce([Record(topic=topic, value=b"once")], [0],
                               5.0) == [None]
        first = backend.subscribe([topic], "pool")
        kept = []
        assert poll_until_assigned(first, 5.0, kept.extend)
        [received] = kept or first.poll(5.0, 10)
        # the listener dies without a word: its connections drop
        backend.loop.run(_drop_connections(first), 5.0)
        second = backend.subscribe([topic], "pool")
        again = []
        assert poll_until_assigned(second, 5.0, again.extend)
        started = time.monotonic()
        while not again and time.monotonic() - started < 10.0:
            again = second.poll(0.5, 10)
        assert [r.value for r in again] == [b"once"]
        second.commit({(topic, again[0].partition): again[0].offset + 1})
        second.close()
        first.close()
    finally:
        backend.close()


async def _drop_connections(consumer):
    consumer._closing = True  # no reconnect, no REQ: as a crash
    for feed in consumer._feeds:
        feed.conn.close()
