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

With ``idempotent``, the batches carry a producer id and sequence
numbers (:mod:`kafka_idempotence`), and a batch whose answer was lost is
sent again, the same bytes, until the send's time is up; if its outcome
is still unknown then, the send fails but the batch is held
(:class:`~notifbus.backends.kafka.idempotence.Held`): the bus's retry of
the same records sends the same bytes again, which the broker stores
once.
"""

import collections
import logging
import threading
import time

import kafka.errors as kerrors
from kafka.protocol.producer import ProduceRequest
from kafka.structs import TopicPartition

from notifbus.backends.kafka import idempotence as kafka_idempotence
from notifbus.backends.kafka import internals
from notifbus.backends.kafka import records as kafka_records
from notifbus.backends.kafka import wire as kafka_wire

LOG = logging.getLogger(__name__)

class NoLeader(kerrors.LeaderNotAvailableError):
    """No broker leads the partition in the client's metadata."""


class ProduceTimeout(kerrors.KafkaTimeoutError):
    """The broker did not answer within the send's time."""


#: what became of one partition's batch in one exchange: ``error`` is
#: ``None`` once stored, ``code`` the error code of the partition's answer
#: (``None`` without one), ``sent`` whether the request may have reached
#: the broker
Outcome = collections.namedtuple("Outcome", "error code sent")
STORED = Outcome(None, 0, True)

#: first and longest wait before a batch whose answer was lost is sent
#: again, in seconds
RESEND_BACKOFF_S, RESEND_BACKOFF_MAX_S = 0.1, 1.0
#: longest wait, in seconds, for metadata naming another leader of a
#: partition whose batch could not be sent to the leader the metadata named
#: (a broker stopped, its partitions led elsewhere since)
REROUTE_WAIT_S = 1.0
#: pause between metadata requests while waiting for a new leader
_REROUTE_POLL_S = 0.05
#: errors of a batch that did not reach a leader: it goes to the new one
_UNREACHED = (kerrors.KafkaConnectionError, kerrors.NodeNotReadyError,
              NoLeader)


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
                 connections=None, idempotent=False):
        """``connections``: ``None`` to send over the producer's
        connections, else ``{"client_id", "ssl_context",
        "connect_timeout"}`` for connections of notifbus's own.
        ``idempotent``: write batches with a producer id and sequence
        numbers (KIP-98)."""
        self._producer = producer
        self._own = connections
        self._connections = {}
        self._connections_lock = threading.Lock()
        self._client = internals.producer_client(producer)
        self._net = internals.client_network(self._client)
        self._metadata = internals.producer_metadata(producer)
        self._acks = acks
        self._max_batch_bytes = max_batch_bytes
        self._codec, self._compress = kafka_records.compressor(
            compression_type)
        self._request_timeout_ms = request_timeout_ms
        self._state = (kafka_idempotence.ProducerState() if idempotent
                       else None)

    @property
    def idempotent(self):
        """Whether the batches carry a producer id (``False`` also once
        the broker turned out to give none)."""
        return self._state is not None

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
        state = self._state
        if state is None:
            return self._send(records, partitions, deadline)
        with state.lock:  # one batch per partition in flight
            if state.stale:
                error = self._renew(state, deadline)
                if error is not None:
                    return [error] * len(records)
            return self._send(records, partitions, deadline)

    def _send(self, records, partitions, deadline):
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
            if self._state is None:
                self._send_batches(batches, records, deadline, results)
            else:
                self._send_idempotent(batches, records, deadline, results)
        return results

    def _send_batches(self, by_tp, records, deadline, results):
        """One attempt: a request per leader, with the batch of
        ``by_tp[tp]`` records for each partition ``tp``."""
        encoded = {tp: self._encode([records[i] for i in indexes])
                   for tp, indexes in by_tp.items()}
        for tp, outcome in self._exchange(encoded, deadline).items():
            if outcome.error is not None:
                _fail(results, by_tp[tp], outcome.error)

    def _send_idempotent(self, by_tp, records, deadline, results):
        """Like :meth:`_send_batches`, with a producer id and sequence
        numbers, sending again the batches whose answer was lost."""
        state = self._state
        first, encoded = {}, {}
        maybe_stored = set()
        for tp, indexes in by_tp.items():
            batch = [records[i] for i in indexes]
            held = state.held.pop(tp, None)
            if held is not None and held.matches(batch):
                # the same records again: the same bytes, which the broker
                # takes for a duplicate if it stored them
                first[tp], encoded[tp] = held.first, held.encoded
                maybe_stored.add(tp)
                continue
            first[tp] = state.reserve(tp, len(indexes))
            encoded[tp] = self._encode(
                batch, producer_id=state.producer_id,
                producer_epoch=state.epoch, base_sequence=first[tp])
        backoff = RESEND_BACKOFF_S
        while True:
            lost = {}
            for tp, outcome in self._exchange(encoded, deadline).items():
                if (outcome.error is None or outcome.code
                        == kafka_idempotence.DUPLICATE_SEQUENCE_NUMBER):
                    continue
                if outcome.code in kafka_idempotence.FENCED:
                    state.stale = True
                    _fail(results, by_tp[tp], outcome.error)
                elif tp not in maybe_stored and (
                        not outcome.sent
                        or outcome.code in kafka_idempotence.NOT_WRITTEN):
                    state.give_back(tp, first[tp])
                    _fail(results, by_tp[tp], outcome.error)
                else:
                    maybe_stored.add(tp)
                    lost[tp] = outcome.error
            if not lost:
                return
            if deadline - time.monotonic() <= backoff:
                # the sequence numbers of a batch that may be stored go to
                # no other records: a retry of its records sends it again
                for tp, error in lost.items():
                    state.held[tp] = kafka_idempotence.Held(
                        tuple(records[i] for i in by_tp[tp]), encoded[tp],
                        first[tp])
                    _fail(results, by_tp[tp], error)
                return
            LOG.debug("notifbus: sending %d record batches again in %.1f s "
                      "(same producer id and sequence numbers): %r",
                      len(lost), backoff, next(iter(lost.values())))
            time.sleep(backoff)
            backoff = min(backoff * 2, RESEND_BACKOFF_MAX_S)
            self._metadata.request_update()
            encoded = {tp: encoded[tp] for tp in lost}

    def _encode(self, batch, **producer):
        return kafka_records.encode_batch(batch, self._codec, self._compress,
                                          **producer)

    def _renew(self, state, deadline):
        """Ask the broker for a producer id, again after a retriable error
        (a coordinator still loading) while time is left; the last error,
        or ``None``."""
        backoff = RESEND_BACKOFF_S
        while True:
            error = self._ask_producer_id(state, deadline)
            if (not isinstance(error, kerrors.RetriableError)
                    or deadline - time.monotonic() <= backoff):
                return error
            time.sleep(backoff)
            backoff = min(backoff * 2, RESEND_BACKOFF_MAX_S)

    def _ask_producer_id(self, state, deadline):
        waiter = self._submit_to_client(
            None, kafka_idempotence.init_producer_id_request(), deadline)
        waiter.wait(max(deadline - time.monotonic(), 0))
        if not waiter.finished:
            return ProduceTimeout("no answer to InitProducerId in time")
        try:
            if waiter.error is not None:
                raise waiter.error
            state.renew(*kafka_idempotence.producer_id_from(waiter.response))
        except Exception as exc:  # noqa: BLE001 - sorted below
            if not kafka_idempotence.unsupported(exc):
                return exc
            self._state = None
            LOG.warning("notifbus: the Kafka broker gives no producer ids "
                        "(InitProducerId: %r): record batches go without "
                        "idempotence, and a batch sent again may be stored "
                        "twice", exc)
            return None
        LOG.debug("notifbus: idempotent producer id %d, epoch %d",
                  state.producer_id, state.epoch)
        return None

    def _exchange(self, encoded, deadline):
        """Send the record batch ``encoded[tp]`` of each partition ``tp``
        to its leader, a request per leader; ``{tp: Outcome}``.

        A batch that did not reach its leader (no connection, no leader
        known) goes once more, within the send's time, to the partition's
        new leader if metadata names one within ``REROUTE_WAIT_S``: a
        stopped broker's partitions are led elsewhere at once, and the
        send then gets that leader's answer (``NOT_ENOUGH_REPLICAS`` when
        too few replicas are left) rather than the stale leader's
        connection error. Unsent, the batch is safe to send again, with
        its sequence numbers."""
        outcomes = self._exchange_once(encoded, deadline)
        unreached = [tp for tp, outcome in outcomes.items()
                     if not outcome.sent
                     and isinstance(outcome.error, _UNREACHED)]
        if not unreached:
            return outcomes
        moved = self._new_leaders(
            unreached, min(deadline, time.monotonic() + REROUTE_WAIT_S))
        if moved and deadline > time.monotonic():
            LOG.debug("notifbus: sending %d record batches to the new "
                      "leaders of their partitions", len(moved))
            outcomes.update(self._exchange_once(
                {tp: encoded[tp] for tp in moved}, deadline))
        return outcomes

    def _new_leaders(self, tps, until):
        """The partitions of ``tps`` whose leader in the metadata changed
        (or became known) before ``until``, asking for metadata meanwhile.
        """
        before = {tp: self._metadata.leader_for_partition(tp) for tp in tps}
        while True:
            updated = threading.Event()
            future = self._metadata.request_update()
            future.add_both(lambda event, _: event.set(), updated)
            internals.wake_sender(self._producer)
            updated.wait(max(until - time.monotonic(), 0))
            moved = []
            for tp in tps:
                leader = self._metadata.leader_for_partition(tp)
                if leader is not None and leader >= 0 \
                        and leader != before[tp]:
                    moved.append(tp)
            if moved or time.monotonic() + _REROUTE_POLL_S >= until:
                return moved
            time.sleep(_REROUTE_POLL_S)

    def _exchange_once(self, encoded, deadline):
        """One :meth:`_exchange`, without a second try."""
        outcomes = {}
        by_node = self._route(encoded, deadline, outcomes)
        submit = self._submit_own if self._own is not None else \
            self._submit_to_client
        pending = []
        try:
            for node, tps in by_node.items():
                request = self._request(tps, encoded, deadline)
                pending.append((tps, submit(node, request, deadline)))
            for tps, waiter in pending:
                waiter.wait(max(deadline - time.monotonic(), 0))
                self._settle(tps, waiter, outcomes)
        finally:
            for _, waiter in pending:
                waiter.abandon()  # a no-op once read
        return outcomes

    def _route(self, tps, deadline, outcomes):
        """``{leader node: [partitions]}``; partitions without a known
        leader fail (retriably, unsent) and ask for new metadata."""
        by_node = {}
        for topic in {tp.topic for tp in tps}:
            left_ms = max((deadline - time.monotonic()) * 1000, 1)
            try:
                internals.wait_on_metadata(self._producer, topic, left_ms)
            except kerrors.KafkaError as exc:
                for tp in tps:
                    if tp.topic == topic:
                        outcomes[tp] = Outcome(exc, None, False)
        for tp in tps:
            if tp in outcomes:
                continue
            leader = self._metadata.leader_for_partition(tp)
            if leader is None or leader < 0:
                self._metadata.request_update()
                outcomes[tp] = Outcome(NoLeader(
                    f"no leader known for {tp.topic}[{tp.partition}]"),
                    None, False)
                continue
            by_node.setdefault(leader, []).append(tp)
        return by_node

    def _request(self, tps, encoded, deadline):
        topics = {}
        for tp in tps:
            topics.setdefault(tp.topic, []).append(
                ProduceRequest.TopicProduceData.PartitionProduceData(
                    index=tp.partition, records=encoded[tp]))
        left_ms = int((deadline - time.monotonic()) * 1000)
        return ProduceRequest(
            transactional_id=None, acks=self._acks,
            timeout_ms=max(min(left_ms, self._request_timeout_ms), 1),
            topic_data=[ProduceRequest.TopicProduceData(
                name=topic, partition_data=parts)
                for topic, parts in topics.items()],
            min_version=kafka_wire.MIN_PRODUCE_VERSION,
            max_version=kafka_wire.MAX_CLIENT_PRODUCE_VERSION)

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
            # a node that is not ready fails the future at once, unsent
            waiter.sent = not (future.is_done and isinstance(
                future.exception, kerrors.NodeNotReadyError))
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

    def _settle(self, tps, waiter, outcomes):
        """The outcome of each partition ``tp`` of a request, into
        ``outcomes``."""
        if not waiter.finished:
            for tp in tps:
                outcomes[tp] = Outcome(ProduceTimeout(
                    "no answer to the produce request in time"), None,
                    waiter.sent)
            return
        if waiter.error is not None:
            error = waiter.error
            if isinstance(error, (kerrors.KafkaConnectionError,
                                  kerrors.KafkaTimeoutError,
                                  kerrors.NodeNotReadyError,
                                  kerrors.RequestTimedOutError)):
                self._metadata.request_update()
            for tp in tps:
                outcomes[tp] = Outcome(error, None, waiter.sent)
            return
        for topic in waiter.response.responses:
            for part in topic.partition_responses:
                tp = TopicPartition(topic.name, part.index)
                if tp not in tps:
                    continue
                if part.error_code == 0:
                    outcomes[tp] = STORED
                    continue
                error_cls = kerrors.for_code(part.error_code)
                if issubclass(error_cls, kerrors.InvalidMetadataError):
                    self._metadata.request_update()
                message = getattr(part, "error_message", None)
                outcomes[tp] = Outcome(
                    error_cls(message) if message else error_cls(),
                    part.error_code, True)
        for tp in tps:
            if tp not in outcomes:
                outcomes[tp] = Outcome(kerrors.KafkaError(
                    f"the broker did not answer for {tp.topic}"
                    f"[{tp.partition}]"), None, True)


def _fail(results, indexes, exc):
    for index in indexes:
        results[index] = exc


class _Waiter:
    """The answer to one request, set from the client's IO thread."""

    __slots__ = ("_event", "finished", "response", "error", "sent")

    def __init__(self):
        self._event = threading.Event()
        self.sent = False
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

    __slots__ = ("finished", "response", "error", "sent", "_conn",
                 "_correlation_id", "_deadline")

    def __init__(self):
        self.sent = False
        self.finished = False
        self.response = None
        self.error = None
        self._conn = None

    def done(self, response, error=None):
        self.response, self.error = response, error
        self.finished = True

    def reading(self, conn, correlation_id, deadline):
        self.sent = True
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
