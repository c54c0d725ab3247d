"""The NATS backend when things go wrong: clear errors, nothing hangs,
nothing acknowledged is lost. Private nats-servers, so they can be
stopped and restarted."""

import time
import uuid

import oslo_messaging
import pytest

from notifbus import errors
from notifbus.oslo_driver import ListenerStartError
from notifbus.record import Record
from tests.functional import natsserver
from tests.functional.faults import (
    Endpoint,
    conf,
    message,
    send_through_a_restart,
    target,
)


def _url(server, **query):
    query = {"connect_timeout_s": 1, "reconnect_time_wait_s": 0.2, **query}
    return natsserver.url("faults", server.address, **query)


@pytest.fixture
def server():
    with natsserver.NatsServer() as found:
        yield found


def test_listener_on_unreachable_server_fails_clearly():
    """With listener_start_timeout_ms=0; by default the listener waits
    (tests/functional/test_listener_waits.py)."""
    url = (f"notifbus+nats://127.0.0.1:{natsserver.free_port()}/"
           f"?connect_timeout_s=1&listener_start_timeout_ms=0")
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="nowhere")], [Endpoint()],
        executor="threading")
    started = time.monotonic()
    with pytest.raises(ListenerStartError) as info:
        listener.start()
    assert time.monotonic() - started < 10
    assert "could not subscribe" in str(info.value)
    assert "no NATS server answered at 127.0.0.1:" in str(info.value)
    transport.cleanup()


def test_oversized_record_names_the_server_max_payload():
    with natsserver.NatsServer("max_payload: 4096") as small:
        transport = oslo_messaging.get_notification_transport(
            conf(), url=_url(small))
        try:
            with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
                transport._send_notification(
                    target("big"), {}, message("x" * 8000), version=2.0,
                    retry=None)
        finally:
            transport.cleanup()
    assert "max_payload of 4096 bytes" in str(info.value)


def test_produce_reports_too_large_per_record(server):
    backend = natsserver.NatsBackend([("127.0.0.1", server.port)],
                          {"stream_prefix": "sizes"})
    try:
        backend.ensure_topic("t", 1, 5)
        limit = 1048576
        results = backend.produce(
            [Record("t", b"small"), Record("t", b"x" * (limit + 1)),
             Record("t", b"small too")], [0, 0, 0], 5)
    finally:
        backend.close()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], errors.RecordTooLarge)
    assert not results[1].retriable


def test_cleanup_is_bounded_when_the_server_is_gone(server):
    topic = f"gone{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(
        conf(), url=_url(server, close_timeout_ms=2000))
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
        executor="threading", pool="gone")
    listener.start()
    transport._send_notification(target(topic), {}, message(1),
                                 version=2.0, retry=0)
    server.stop(kill=True)
    started = time.monotonic()
    listener.stop()
    listener.wait()
    transport.cleanup()
    assert time.monotonic() - started < 10


def test_send_while_server_down_raises_then_recovers(server):
    """retry=0 fails while the server is down; a send retried forever
    returns once the server is back, and the listener, which kept polling
    through the outage, gets everything acknowledged."""
    send_through_a_restart(
        _url(server, send_timeout_ms=1000, retry_backoff_ms=100,
             retry_backoff_max_ms=200),
        lambda: server.stop(keep_store=True), server.start, listen=True)


def test_deleted_stream_is_recreated_by_the_next_send(server):
    topic = f"del{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(
        conf(), url=_url(server, retry_backoff_ms=50))
    backend = natsserver.NatsBackend([("127.0.0.1", server.port)],
                          {"stream_prefix": "faults"})
    try:
        transport._send_notification(target(topic), {}, message(1),
                                     version=2.0, retry=0)
        assert backend.delete_streams()
        transport._send_notification(target(topic), {}, message(2),
                                     version=2.0, retry=2)
        ends = backend.end_offsets(f"{topic}.info", 5)
    finally:
        backend.close()
        transport.cleanup()
    assert sum(1 for end in ends.values() if end) == 1


def test_records_of_a_dead_listener_are_redelivered_after_ack_wait(server):
    """A member that vanishes without closing (its connection dropped)
    leaves what it held to the group once ack_wait_s passed."""
    options = {"stream_prefix": "dead", "ack_wait_s": 1}
    first = natsserver.NatsBackend([("127.0.0.1", server.port)], options)
    second = natsserver.NatsBackend([("127.0.0.1", server.port)], options)
    try:
        first.ensure_topic("t", 2, 5)
        assert first.produce([Record("t", b"a"), Record("t", b"b")],
                             [0, 1], 5) == [None, None]
        dying = first.subscribe(["t"], "g")
        held = []
        deadline = time.monotonic() + 5
        while len(held) < 2 and time.monotonic() < deadline:
            held += dying.poll(0.2, 10)
        assert sorted(r.value for r in held) == [b"a", b"b"]
        first.close(1.0)  # no consumer close: as if the process died
        survivor = second.subscribe(["t"], "g")
        again = []
        deadline = time.monotonic() + 10
        while len(again) < 2 and time.monotonic() < deadline:
            again += survivor.poll(0.2, 10)
        survivor.commit({r.position[:2]: r.offset + 1 for r in again})
        survivor.close()
    finally:
        second.close()
        first.close()
    assert sorted(r.value for r in again) == [b"a", b"b"]
