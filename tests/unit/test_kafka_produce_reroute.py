"""A batch that did not reach its partition's leader goes to the new
leader within the same send (``BatchProducer._exchange``)."""

import time
import types

import kafka.errors as kerrors
from kafka.future import Future
from kafka.structs import TopicPartition

from notifbus.backends import kafka_produce
from notifbus.backends.kafka_produce import STORED, BatchProducer, Outcome

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
