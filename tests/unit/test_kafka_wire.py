"""notifbus's own produce connection, against a scripted peer on a real
socket: version negotiation, answers, and every way a connection breaks
(the broker round trip is in tests/functional/test_kafka_batches.py)."""

import socket
import struct
import threading
import time

import kafka.errors as kerrors
import pytest
from kafka.protocol.metadata.api_versions import ApiVersionsResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from notifbus.backends.kafka import wire as kafka_wire


class ScriptedBroker:
    """Answers ApiVersions with ``max_produce``, then each produce request
    as ``actions`` say, in turn: ``ok``, ``wrong-id``, ``close``, ``hang``.
    """

    def __init__(self, actions, max_produce=11):
        self.actions = list(actions)
        self.max_produce = max_produce
        self.versions = []
        self.connections = 0
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen()
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk_then_close, args=(conn,),
                             daemon=True).start()

    def _talk_then_close(self, conn):
        try:
            self._talk(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _talk(self, conn):
        while True:
            head = _read(conn, 4)
            if head is None:
                return
            payload = _read(conn, struct.unpack(">i", head)[0])
            api_key, version, correlation_id = struct.unpack_from(
                ">hhi", payload)
            if api_key == 18:  # ApiVersions
                body = ApiVersionsResponse(
                    error_code=0, api_keys=[ApiVersionsResponse.ApiVersion(
                        api_key=0, min_version=0,
                        max_version=self.max_produce)]).encode(version=0)
                _answer(conn, correlation_id, body)
                continue
            self.versions.append(version)
            action = self.actions.pop(0) if self.actions else "ok"
            if action == "close":
                return
            if action == "hang":
                time.sleep(3)
                return
            if action == "wrong-id":
                correlation_id += 1
            _answer(conn, correlation_id, _produce_response(version))

    def close(self):
        self._server.close()


def _read(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _answer(conn, correlation_id, body):
    payload = struct.pack(">i", correlation_id) + body
    conn.sendall(struct.pack(">i", len(payload)) + payload)


def _produce_response(version):
    topic = ProduceResponse.TopicProduceResponse
    part = topic.PartitionProduceResponse
    return ProduceResponse(
        responses=[topic(name="t", partition_responses=[
            part(index=0, error_code=0, base_offset=7)])],
        throttle_time_ms=0).encode(version=version)


def _request():
    topic = ProduceRequest.TopicProduceData
    return ProduceRequest(
        transactional_id=None, acks=-1, timeout_ms=1000,
        topic_data=[topic(name="t", partition_data=[
            topic.PartitionProduceData(index=0, records=b"")])])


@pytest.fixture
def broker_factory():
    brokers = []

    def make(actions=(), max_produce=11):
        broker = ScriptedBroker(actions, max_produce)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


def _round_trip(conn, timeout=2.0):
    deadline = time.monotonic() + timeout
    return conn.receive(conn.send(_request(), deadline), deadline)


def test_answers_are_read_on_the_negotiated_version(broker_factory):
    broker = broker_factory(["ok", "ok"])
    conn = kafka_wire.BrokerConnection("127.0.0.1", broker.port)
    for _ in range(2):
        response = _round_trip(conn)
        assert response.responses[0].partition_responses[0].base_offset == 7
    assert conn.produce_version == kafka_wire.MAX_PRODUCE_VERSION
    assert broker.versions == [8, 8]
    assert broker.connections == 1
    conn.close()


def test_an_older_broker_gets_its_newest_version(broker_factory):
    broker = broker_factory(["ok"], max_produce=5)
    conn = kafka_wire.BrokerConnection("127.0.0.1", broker.port)
    _round_trip(conn)
    assert broker.versions == [5]
    conn.close()


def test_a_broker_without_record_batches_is_refused(broker_factory):
    broker = broker_factory(max_produce=2)
    conn = kafka_wire.BrokerConnection("127.0.0.1", broker.port)
    with pytest.raises(kerrors.UnsupportedVersionError, match="3 and 8"):
        conn.send(_request(), time.monotonic() + 2)


@pytest.mark.parametrize("action, error", [
    ("wrong-id", "where"), ("close", "closed the connection")])
def test_a_broken_answer_closes_and_the_next_request_reconnects(
        broker_factory, action, error):
    broker = broker_factory([action, "ok"])
    conn = kafka_wire.BrokerConnection("127.0.0.1", broker.port)
    with pytest.raises(kafka_wire.WireError, match=error):
        _round_trip(conn)
    _round_trip(conn)
    assert broker.connections == 2
    conn.close()


def test_no_answer_in_time_is_a_timeout_and_frees_the_connection(
        broker_factory):
    broker = broker_factory(["hang", "ok"])
    conn = kafka_wire.BrokerConnection("127.0.0.1", broker.port)
    started = time.monotonic()
    with pytest.raises(kafka_wire.WireTimeout):
        _round_trip(conn, timeout=0.3)
    assert time.monotonic() - started < 1.5
    _round_trip(conn)  # not left locked, connects again
    conn.close()


def test_nobody_listening_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = kafka_wire.BrokerConnection("127.0.0.1", port)
    with pytest.raises(kafka_wire.WireError, match=f"127.0.0.1:{port}"):
        conn.send(_request(), time.monotonic() + 1)
    # released: a second attempt fails the same way instead of blocking
    with pytest.raises(kafka_wire.WireError):
        conn.send(_request(), time.monotonic() + 1)


def test_abandon_gives_the_connection_back_closed(broker_factory):
    broker = broker_factory(["ok", "ok"])
    conn = kafka_wire.BrokerConnection("127.0.0.1", broker.port)
    conn.send(_request(), time.monotonic() + 2)
    conn.abandon()
    _round_trip(conn)
    assert broker.connections == 2
    conn.close()
