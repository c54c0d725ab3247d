"""The NATS backend's naming, options, record format and error messages,
and the loop thread it runs nats-py on; no server needed."""

import asyncio
import datetime
import ssl
import time

import pytest

pytest.importorskip("nats", reason="pip install notifbus[nats]")

import nats.errors as nerrors  # noqa: E402
from nats.js import api  # noqa: E402

from notifbus import errors  # noqa: E402
from notifbus.backends.nats import consumer as nats_consumer  # noqa: E402
from notifbus.backends.nats.backend import NatsBackend  # noqa: E402
from notifbus.loop_thread import LoopClosed, LoopThread  # noqa: E402
from notifbus.record import Record  # noqa: E402


def backend(**options):
    return NatsBackend([("nats1", None), ("nats2", 4333)], options,
                       username="alice", password="pw-secret")


def test_construction_does_no_io():
    found = backend()
    assert found._loop._thread is None
    assert found.describe() == "nats1:4222,nats2:4333"


def test_names_of_streams_subjects_and_durables():
    found = backend(stream_prefix="nb")
    assert found.stream_name("notifications.info") == "nb_notifications_info"
    assert found.subject("notifications.info", 3) == \
        "nb.notifications.info.3"
    assert found.durable_name("pool-a_1") == "pool-a_1"
    odd = found.durable_name("my pool.v2")
    assert odd.startswith("my_pool_v2_") and len(odd) == len("my_pool_v2_") + 8
    assert found.durable_name("my pool.v2") != found.durable_name("my pool v2")


def test_partition_count_comes_from_the_subjects():
    found = backend(stream_prefix="nb")
    assert found._partitions_of("t", ["nb.t.1", "nb.t.0"]) == 2
    assert found._partitions_of("t", ["nb.t.0", "nb.t.2"]) is None
    assert found._partitions_of("t", ["nb.other.0"]) is None


@pytest.mark.parametrize("prefix", ["", "a.b", "a b", "a*"])
def test_bad_stream_prefix_is_refused(prefix):
    with pytest.raises(errors.ConfigError):
        backend(stream_prefix=prefix)


def test_where_new_durables_start():
    assert backend().consumer_config("g").deliver_policy == \
        api.DeliverPolicy.ALL
    assert backend(auto_offset_reset="latest").consumer_config(
        "g").deliver_policy == api.DeliverPolicy.NEW
    by_seq = backend(deliver_start_sequence=42).consumer_config("g")
    assert by_seq.deliver_policy == api.DeliverPolicy.BY_START_SEQUENCE
    assert by_seq.opt_start_seq == 42
    by_time = backend(
        deliver_start_time="2024-05-01T14:00:00+02:00").consumer_config("g")
    assert by_time.deliver_policy == api.DeliverPolicy.BY_START_TIME
    assert by_time.opt_start_time == datetime.datetime(
        2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    config = backend(ack_wait_s=7, max_ack_pending=5).consumer_config("g")
    assert (config.ack_wait, config.max_ack_pending) == (7.0, 5)
    assert config.ack_policy == api.AckPolicy.EXPLICIT


@pytest.mark.parametrize("text", ["yesterday", "2024-05-01T12:00:00"])
def test_bad_start_time_is_refused(text):
    with pytest.raises(errors.ConfigError):
        backend(deliver_start_time=text)


def test_credentials_from_the_url_win():
    assert backend(user="bob", password="x")._credentials() == {
        "user": "alice", "password": "pw-secret"}
    plain = NatsBackend([], {"user": "bob", "password": "x",
                             "token": "t"})
    assert plain._credentials() == {"user": "bob", "password": "x",
                                    "token": "t"}


def test_tls_context_follows_the_options(tmp_path):
    assert backend()._ssl_context() is None
    context = backend(tls=True, tls_verify=False)._ssl_context()
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname
    assert backend(tls=True)._ssl_context().verify_mode == \
        ssl.CERT_REQUIRED


def test_connect_errors_are_clear_and_keep_secrets():
    found = backend()
    auth = found._connect_error(
        nerrors.Error("nats: 'Authorization Violation'"), [], {}, None)
    assert not auth.retriable
    assert "nats1:4222,nats2:4333 refused the connection: authorization " \
           "failed (user 'alice')" in str(auth)
    assert "pw-secret" not in str(auth)
    tls = found._connect_error(ssl.SSLCertVerificationError("bad cert"),
                               [], {"tls_required": True}, None)
    assert not tls.retriable and "requires TLS" in str(tls)
    down = found._connect_error(nerrors.NoServersError(),
                                [ConnectionRefusedError(111, "refused")],
                                {}, None)
    assert down.retriable
    assert "no NATS server answered at nats1:4222" in str(down)
    assert "ConnectionRefusedError" in str(down)


class FakeMsg:
    """What the consumer reads of a nats-py message."""

    def __init__(self, subject, data, headers, seq):
        self.subject, self.data, self.headers = subject, data, headers
        self.reply = f"$JS.ACK.s.c.1.{seq}.{seq}.1700000000000000000.0"

    @property
    def metadata(self):
        from nats.aio.msg import Msg

        return Msg.Metadata._from_reply(self.reply)


def test_records_round_trip_through_nats_headers():
    record = Record("t.info", b"value", key=b"\x00key",
                    headers=(("a", b"\xff\x00"), ("a", b"again")),
                    timestamp_ms=1234)
    headers = nats_consumer.encode_headers(record)
    assert all(isinstance(v, str) and "\r" not in v and "\n" not in v
               for v in headers.values())
    received = nats_consumer.to_received(
        "nb", FakeMsg("nb.t.info.1", b"value", headers, 17))
    assert received.position == ("t.info", 1, 17)
    assert (received.key, received.headers, received.timestamp_ms) == (
        record.key, tuple(record.headers), 1234)
    bare = nats_consumer.to_received(
        "nb", FakeMsg("nb.t.0", b"v", None, 3))
    assert bare.key is None and bare.headers == ()
    assert bare.timestamp_ms == 1700000000000
    assert nats_consumer.encode_headers(Record("t", b"v")) is None


# -- the loop thread ------------------------------------------------------


def test_loop_thread_runs_coroutines_and_raises_their_errors():
    runner = LoopThread("test")

    async def double(x):
        await asyncio.sleep(0.01)
        return 2 * x

    async def fail():
        raise ValueError("boom")

    try:
        assert runner.run(double(21), 5) == 42
        with pytest.raises(ValueError, match="boom"):
            runner.run(fail(), 5)
    finally:
        runner.close(2)


def test_loop_thread_times_out_and_cancels():
    runner = LoopThread("test")
    cancelled = []

    async def forever():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            runner.run(forever(), 0.2)
        assert time.monotonic() - started < 2
        deadline = time.monotonic() + 2
        while not cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cancelled
    finally:
        runner.close(2)


def test_closed_loop_refuses_work_and_stops_its_thread():
    runner = LoopThread("test")

    async def nothing():
        return None

    runner.run(nothing(), 5)
    thread = runner._thread
    started = time.monotonic()
    runner.close(2)
    assert time.monotonic() - started < 3
    assert not thread.is_alive()
    with pytest.raises(LoopClosed):
        runner.run(nothing(), 1)


def test_closed_backend_fails_sends_without_retry():
    found = backend()
    found.close(1)
    results = found.produce([Record("t", b"v")], [0], 1)
    assert isinstance(results[0], errors.DeliveryError)
    assert not results[0].retriable
