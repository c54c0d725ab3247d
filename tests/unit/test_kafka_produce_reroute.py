"""A batch that did not reach its partition's leader goes to the new
leader within the same send (``BatchProducer._exchange``)."""

import time
import types

import kafka.errors as kerrors
from kafka.future import Future
from kafka.structs import TopicPartition

from notifbus.backends.kafka import produce as kafka_produce
from notifbus.backends.kafka.produce import STORED, BatchProducer, Outcome

TP = TopicPartition("t", 0)


class Metadata:
    """Leaders that change at the ``moves_after``-th metadata update."""

    def __init__(self, leaders, moves_after=1):
        self.leaders = dict(leaders)
        self.moved = {}
        self.updates = 0
        self.moves_after = moves_after

    def leader_for_partition(self, tp):
        return self.leaders.get(tp)

    def request_update(self):
        self.updates += 1
        if self.updates >= self.moves_after:
            self.leaders.update(self.moved)
        future = Future()
        future.success(None)
        return future


def _producer(metadata):
    client = types.SimpleNamespace(_net=None)
    sender = types.SimpleNamespace(_client=client, wakeup=lambda: None)
    return types.SimpleNamespace(_sender=sender, _metadata=metadata)


def _writer(metadata, answers):
    """A BatchProducer whose exchanges answer from ``answers`` (a list of
    ``{tp: Outcome}``, one per exchange) and record what they sent."""
    writer = BatchProducer(_producer(metadata), acks=-1,
                           max_batch_bytes=1 << 20)
    sent = []

    def exchange_once(encoded, deadline):
        sent.append((sorted(encoded), {
            tp: metadata.leader_for_partition(tp) for tp in encoded}))
        return answers.pop(0)

    writer._exchange_once = exchange_once
    return writer, sent


def test_an_unreached_leader_makes_the_batch_go_to_the_new_one():
    metadata = Metadata({TP: 2})
    metadata.moved = {TP: 1}
    refused = Outcome(kerrors.KafkaConnectionError("refused"), None, False)
    writer, sent = _writer(metadata, [{TP: refused}, {TP: STORED}])
    outcomes = writer._exchange({TP: b"batch"}, deadline=_in(5))
    assert outcomes == {TP: STORED}
    assert sent == [([TP], {TP: 2}), ([TP], {TP: 1})]


def test_a_batch_that_may_have_reached_the_leader_is_not_rerouted():
    metadata = Metadata({TP: 2})
    metadata.moved = {TP: 1}
    timeout = Outcome(kerrors.KafkaConnectionError("reset"), None, True)
    writer, sent = _writer(metadata, [{TP: timeout}])
    assert writer._exchange({TP: b"batch"}, deadline=_in(5)) == {
        TP: timeout}
    assert len(sent) == 1 and metadata.updates == 0


def test_without_a_new_leader_the_error_stays_after_the_wait(monkeypatch):
    monkeypatch.setattr(kafka_produce, "REROUTE_WAIT_S", 0.2)
    metadata = Metadata({TP: 2})
    refused = Outcome(kerrors.KafkaConnectionError("refused"), None, False)
    writer, sent = _writer(metadata, [{TP: refused}])
    started = _in(0)
    assert writer._exchange({TP: b"batch"}, deadline=_in(5)) == {
        TP: refused}
    assert len(sent) == 1 and metadata.updates >= 2
    assert _in(0) - started < 1.0


def _in(seconds):
    return time.monotonic() + seconds


# A batch whose outcome stays unknown until the send's time is up is held
# for the bus's retry of the same records (kafka_idempotence.Held).

UNKNOWN = Outcome(kerrors.NotEnoughReplicasError(), 19, True)


def _idempotent_writer(answer):
    """A writer with a producer id whose exchanges answer ``answer(tp)``
    and record the bytes they sent."""
    writer = BatchProducer(_producer(Metadata({TP: 1})), acks=-1,
                           max_batch_bytes=1 << 20, idempotent=True)
    writer._state.renew(7, 0)
    sent = []

    def exchange(encoded, deadline):
        sent.append(dict(encoded))
        return {tp: answer(tp) for tp in encoded}

    writer._exchange = exchange
    return writer, sent


def _records(*values):
    from notifbus.record import Record

    return [Record(topic=TP.topic, value=v) for v in values]


def test_a_batch_left_unknown_goes_again_as_it_was_when_retried(
        monkeypatch):
    monkeypatch.setattr(kafka_produce, "RESEND_BACKOFF_S", 0.01)
    answers = [Outcome(kerrors.KafkaConnectionError("reset"), None, True)]
    writer, sent = _idempotent_writer(
        lambda tp: answers[0] if answers else UNKNOWN)
    records = _records(b"a", b"b")
    results = writer.send(records, [0, 0], timeout=0.05)
    assert all(isinstance(r, kerrors.KafkaError) for r in results)
    first_bytes = sent[0][TP]
    assert not writer._state.stale
    answers[:] = [STORED]
    sent.clear()
    assert writer.send(records, [0, 0], timeout=1) == [None, None]
    assert sent == [{TP: first_bytes}]
    # the sequence numbers after it go to the next records
    fresh = _records(b"c")
    assert writer.send(fresh, [0], timeout=1) == [None]
    assert sent[-1][TP] != first_bytes
    assert writer._state.reserve(TP, 1) == 3


def test_other_records_do_not_take_a_held_batch(monkeypatch):
    monkeypatch.setattr(kafka_produce, "RESEND_BACKOFF_S", 0.01)
    answers = [Outcome(kerrors.KafkaConnectionError("reset"), None, True)]
    writer, sent = _idempotent_writer(
        lambda tp: answers[0] if answers else UNKNOWN)
    writer.send(_records(b"a", b"b"), [0, 0], timeout=0.05)
    held_bytes = sent[0][TP]
    assert TP in writer._state.held
    answers[:] = [STORED]
    sent.clear()
    # equal records, other objects: a new batch with new sequence numbers
    assert writer.send(_records(b"a", b"b"), [0, 0], timeout=1) == [
        None, None]
    assert sent[0][TP] != held_bytes
    assert TP not in writer._state.held
    assert writer._state.reserve(TP, 1) == 4  # 0-1 held, 2-3 these
