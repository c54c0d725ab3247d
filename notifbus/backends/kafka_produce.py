"""Produce requests of notifbus's own record batches.

The bus already batches (group commit in confirmed mode, the background
sender in buffered mode), so the Kafka backend does not hand records one by
one to kafka-python's producer, which would batch them a second time: it
encodes each partition's records once with :mod:`kafka_records` and sends
one ``ProduceRequest`` per broker. The leaders of the partitions come from
a kafka-python producer's metadata; its own accumulator stays empty.

The requests go one of two ways:

- over connections of notifbus's own (:mod:`kafka_wire`), written and read
  by the sending thread itself: requests to several brokers are all
  written before the first answer is read. The default, without SASL;
- with SASL, over the kafka-python producer's connections: a request is
  handed to the client's IO thread, and the caller waits on an event (a
  greenthread's event when eventlet patched the process).

Each partition's answer settles its records: an error code fails them
with the error kafka-python names for it, and asks for new metadata where
the leader may have moved.

Not used with ``enable_idempotence``: sequence numbers are kafka-python's.
"""

import threading
import time

import kafka.errors as kerrors
from kafka.protocol.producer import ProduceRequest
from kafka.structs import TopicPartition

from notifbus.backends import kafka_records, kafka_wire

#: oldest produce request that carries v2 record batches; newest that
#: kafka-python's sender uses
MIN_VERSION, MAX_VERSION = 3, 9


class NoLeader(kerrors.LeaderNotAvailableError):
    """No broker leads the partition in the client's metadata."""


class ProduceTimeout(kerrors.KafkaTimeoutError):
    """The broker did not answer within the send's time."""


class BatchProducer:
    """Sends records as ``{node: ProduceRequest}`` through ``producer``'s
    client (a ``kafka.KafkaProducer``).

    :param acks: ``-1`` (all in-sync replicas) or ``1``.
    :param max_batch_bytes: most bytes of one record batch.
    :param compression_type: ``none``, ``gzip``, ``snappy``, ``lz4`` or
        ``zstd``.
    """

    def __init__(self, producer, acks, max_batch_bytes,
                 compression_type="none", request_timeout_ms=30000,
                 connections=None):
        """``connections``: ``None`` to send over the producer's
        connections, else ``{"client_id", "ssl_context",
        "connect_timeout"}`` for connections of notifbus's own."""
        self._producer = producer
        self._own = connections
        self._connections = {}
        self._connections_lock = threading.Lock()
        self._client = producer._sender._client
        self._net = self._client._net
        self._metadata = producer._metadata
        self._acks = acks
        self._max_batch_bytes = max_batch_bytes
        self._codec, self._compress = kafka_records.compressor(
            compression_type)
        self._request_timeout_ms = request_timeout_ms

    def owns(self, producer):
        """Whether this writer sends through ``producer``."""
        return producer is self._producer

    def send(self, records, partitions, timeout):
        """Write ``records[i]`` to partition ``partitions[i]``; return one
        kafka-python exception or ``None`` per record, once every broker
        answered or ``timeout`` seconds passed.

        A produce request carries one record batch per partition (Kafka
        refuses more with ``InvalidRecordError`` from produce v3 on, KIP-98):
        a partition whose records take several batches has them sent in
        successive requests, each once the previous one was answered, and
        a failed batch fails the batches behind it, which keeps the order.
        """
        deadline = time.monotonic() + timeout
        results = [None] * len(records)
        by_tp = {}
        for index, (record, partition) in enumerate(zip(records,
                                                        partitions)):
            by_tp.setdefault(TopicPartition(record.topic, partition),
                             []).append(index)
        rounds = []
        for tp, indexes in by_tp.items():
            runs = kafka_records.split(
                indexes, self._max_batch_bytes,
                lambda i: kafka_records.estimated_size(records[i]))
            for number, run in enumerate(runs):
                if len(rounds) <= number:
                    rounds.append({})
                rounds[number][tp] = run
        for number, batches in enumerate(rounds):
            if number:
                for tp, indexes in list(batches.items()):
                    failed = results[rounds[number - 1][tp][0]]
                    if failed is not None:
                        _fail(results, indexes, failed)
                        del batches[tp]
            self._send_batches(batches, records, deadline, results)
        return results

    def _send_batches(self, by_tp, records, deadline, results):
        """One request per leader, with the batch of ``by_tp[tp]`` records
        for each partition ``tp``."""
        by_node = self._route(by_tp, deadline, results)
        submit = self._submit_own if self._own is not None else \
            self._submit_to_client
        pending = []
        try:
            for node, tps in by_node.items():
                request = self._request(tps, by_tp, records, deadline)
                pending.append((tps, submit(node, request, deadline)))
            for tps, waiter in pending:
                waiter.wait(max(deadline - time.monotonic(), 0))
                self._settle(tps, by_tp, waiter, results)
        finally:
            for _, waiter in pending:
                waiter.abandon()  # a no-op once read

    def _route(self, by_tp, deadline, results):
        """``{leader node: [partitions]}``; records of partitions without a
        known leader fail (retriably) and ask for new metadata."""
        by_node = {}
        for topic in {tp.topic for tp in by_tp}:
            left_ms = max((deadline - time.monotonic()) * 1000, 1)
            try:
                self._producer._wait_on_metadata(topic, left_ms)
            except kerrors.KafkaError as exc:
                for tp, indexes in by_tp.items():
                    if tp.topic == topic:
                        _fail(results, indexes, exc)
        for tp, indexes in by_tp.items():
            if results[indexes[0]] is not None:
                continue
            leader = self._metadata.leader_for_partition(tp)
            if leader is None or leader < 0:
                self._metadata.request_update()
                _fail(results, indexes, NoLeader(
                    f"no leader known for {tp.topic}[{tp.partition}]"))
                continue
            by_node.setdefault(leader, []).append(tp)
        return by_node

    def _request(self, tps, by_tp, records, deadline):
        topics = {}
        for tp in tps:
            data = kafka_records.encode_batch(
                [records[i] for i in by_tp[tp]], self._codec,
                self._compress)
            topics.setdefault(tp.topic, []).append(
                ProduceRequest.TopicProduceData.PartitionProduceData(
                    index=tp.partition, records=data))
        left_ms = int((deadline - time.monotonic()) * 1000)
        return ProduceRequest(
            transactional_id=None, acks=self._acks,
            timeout_ms=max(min(left_ms, self._request_timeout_ms), 1),
            topic_data=[ProduceRequest.TopicProduceData(
                name=topic, partition_data=parts)
                for topic, parts in topics.items()],
            min_version=MIN_VERSION, max_version=MAX_VERSION)

    def _submit_own(self, node, request, deadline):
        """Write ``request`` on this producer's connection to ``node``; the
        waiter reads the answer."""
        waiter = _OwnWaiter()
        broker = self._metadata.broker_metadata(node)
        if broker is None:
            self._metadata.request_update()
            waiter.done(None, NoLeader(f"no address known for broker "
                                       f"{node}"))
            return waiter
        conn = self._connection(broker.host, broker.port)
        try:
            correlation_id = conn.send(request, deadline)
        except kerrors.KafkaError as exc:
            waiter.done(None, exc)
            return waiter
        waiter.reading(conn, correlation_id, deadline)
        return waiter

    def _connection(self, host, port):
        with self._connections_lock:
            conn = self._connections.get((host, port))
            if conn is None:
                conn = self._connections[(host, port)] = \
                    kafka_wire.BrokerConnection(
                        host, port, client_id=self._own["client_id"],
                        ssl_context=self._own.get("ssl_context"),
                        server_hostname=host,
                        connect_timeout=self._own["connect_timeout"])
            return conn

    def _submit_to_client(self, node, request, deadline):
        """Hand ``request`` to the kafka-python client's IO thread."""
        waiter = _Waiter()

        def send_on_io_thread():
            try:
                future = self._client.send(node, request)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                waiter.done(None, exc)
                return
            future.add_callback(waiter.done)
            future.add_errback(lambda exc: waiter.done(None, exc))

        try:
            self._net.call_soon_threadsafe(send_on_io_thread)
        except Exception as exc:  # noqa: BLE001 - the client is closed
            waiter.done(None, kerrors.KafkaConnectionError(repr(exc)))
        return waiter

    def close(self):
        """Close the connections of notifbus's own."""
        with self._connections_lock:
            connections, self._connections = self._connections, {}
        for conn in connections.values():
            conn.close()

    def _settle(self, tps, by_tp, waiter, results):
        if not waiter.finished:
            for tp in tps:
                _fail(results, by_tp[tp], ProduceTimeout(
                    "no answer to the produce request in time"))
            return
        if waiter.error is not None:
            error = waiter.error
            if isinstance(error, (kerrors.KafkaConnectionError,
                                  kerrors.KafkaTimeoutError,
                                  kerrors.NodeNotReadyError,
                                  kerrors.RequestTimedOutError)):
                self._metadata.request_update()
            for tp in tps:
                _fail(results, by_tp[tp], error)
            return
        answered = set()
        for topic in waiter.response.responses:
            for part in topic.partition_responses:
                tp = TopicPartition(topic.name, part.index)
                answered.add(tp)
                if part.error_code == 0 or tp not in by_tp:
                    continue
                error_cls = kerrors.for_code(part.error_code)
                if issubclass(error_cls, kerrors.InvalidMetadataError):
                    self._metadata.request_update()
                message = getattr(part, "error_message", None)
                _fail(results, by_tp[tp], error_cls(message) if message
                      else error_cls())
        for tp in tps:
            if tp not in answered:
                _fail(results, by_tp[tp], kerrors.KafkaError(
                    f"the broker did not answer for {tp.topic}"
                    f"[{tp.partition}]"))


def _fail(results, indexes, exc):
    for index in indexes:
        results[index] = exc


class _Waiter:
    """The answer to one request, set from the client's IO thread."""

    __slots__ = ("_event", "finished", "response", "error")

    def __init__(self):
        self._event = threading.Event()
        self.finished = False
        self.response = None
        self.error = None

    def done(self, response, error=None):
        self.response, self.error = response, error
        self.finished = True
        self._event.set()

    def wait(self, timeout):
        return self._event.wait(timeout)

    def abandon(self):
        """Nothing to give back: the IO thread owns the connection."""


class _OwnWaiter:
    """The answer to a request on a connection of notifbus's own: read by
    the waiting thread itself."""

    __slots__ = ("finished", "response", "error", "_conn",
                 "_correlation_id", "_deadline")

    def __init__(self):
        self.finished = False
        self.response = None
        self.error = None
        self._conn = None

    def done(self, response, error=None):
        self.response, self.error = response, error
        self.finished = True

    def reading(self, conn, correlation_id, deadline):
        self._conn, self._correlation_id = conn, correlation_id
        self._deadline = deadline

    def wait(self, timeout):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                self.done(conn.receive(self._correlation_id,
                                       self._deadline))
            except kerrors.KafkaError as exc:
                self.done(None, exc)
        return self.finished

    def abandon(self):
        """Never read: give the connection back (closed)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abandon()
