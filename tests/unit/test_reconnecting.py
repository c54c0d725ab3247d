"""The consumer that joins in the background: starts, retries with backoff,
logs each change once, stops at once."""

import threading
import time

import pytest

from notifbus import errors
from notifbus.backends.connection import ConnectionState
from notifbus.bus import poll_until_assigned
from notifbus.policy.retry import RetryPolicy
from notifbus.reconnecting import JoinInBackground, ReconnectingConsumer

QUICK = RetryPolicy(None, backoff_ms=10, backoff_max_ms=40)


class FakeConsumer:
    def __init__(self):
        self.polled = []
        self.closed = False

    def poll(self, timeout, max_records):
        self.polled.append(max_records)
        return ["record"]

    def commit(self, offsets):
        self.committed = offsets

    def seek(self, topic, partition, offset):
        pass

    def assignment(self):
        return {("t", 0)}

    def assigned(self):
        return True

    def wakeup(self):
        pass

    def close(self, timeout=5.0):
        self.closed = True


class Joins:
    """``join`` for a ReconnectingConsumer: raises the given errors in
    turn, then returns a FakeConsumer."""

    def __init__(self, *failures, gate=None):
        self.failures = list(failures)
        self.attempts = []
        self.gate = gate
        self.made = []

    def __call__(self):
        self.attempts.append(time.monotonic())
        if self.gate is not None:
            self.gate.wait(10)
        if self.failures:
            raise self.failures.pop(0)
        consumer = FakeConsumer()
        self.made.append(consumer)
        return consumer


def down():
    return errors.DeliveryError("no broker answered")


class Lines:
    def __init__(self):
        self.lines = []

    def __call__(self, level, message, *args):
        self.lines.append((level, message % args))


def consumer(join, policy=QUICK):
    lines = Lines()
    state = ConnectionState("brokers", "h:1", log=lines)
    return ReconnectingConsumer(join, "group 'g'", policy, state), lines


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_joins_at_once_when_the_broker_answers():
    member, lines = consumer(Joins())
    assert member.start() is True
    assert member.poll(0.1, 5) == ["record"]
    assert member.assignment() == {("t", 0)}
    assert lines.lines == []
    member.close()


def test_start_returns_after_the_first_failure_and_joins_later():
    join = Joins(down(), down(), down())
    member, lines = consumer(join)
    assert member.start() is False
    assert member.assignment() == set()
    assert member.poll(0.01, 5) == []
    assert poll_until_assigned(member, 5, [].extend) is True
    assert member.poll(0.1, 5) == ["record"]
    assert len(join.attempts) == 4
    # waits 10, 20, 40 ms between attempts: the backoff, capped
    gaps = [b - a for a, b in zip(join.attempts, join.attempts[1:])]
    assert all(gap >= 0.009 for gap in gaps), gaps
    levels = [level for level, _ in lines.lines]
    assert levels == [30, 20], lines.lines  # one WARNING, one INFO
    assert "do not answer: no broker answered" in lines.lines[0][1]
    assert "answer again" in lines.lines[1][1]
    member.close()


def test_a_failure_no_retry_cures_fails_the_start():
    refused = errors.DeliveryError("login refused", retriable=False)
    member, _ = consumer(Joins(refused))
    with pytest.raises(errors.DeliveryError, match="login refused"):
        member.start()
    member.close()


def test_start_timeout_zero_fails_at_the_first_failure():
    member, _ = consumer(Joins(down()))
    with pytest.raises(errors.DeliveryError, match="no broker answered"):
        member.start(timeout=0)
    member.close()


def test_start_timeout_waits_through_failures():
    member, _ = consumer(Joins(down(), down()))
    assert member.start(timeout=5) is True
    member.close()


def test_wakeup_ends_a_poll_before_joining():
    member, _ = consumer(Joins(*[down()] * 1000),
                         RetryPolicy(None, 1000, 1000))
    assert member.start() is False
    threading.Timer(0.1, member.wakeup).start()
    started = time.monotonic()
    assert member.poll(10, 5) == []
    assert time.monotonic() - started < 2
    member.close()


def test_close_does_not_wait_for_an_attempt_in_flight():
    gate = threading.Event()
    join = Joins(gate=gate)
    member, _ = consumer(join)
    wait_for(lambda: join.attempts)
    started = time.monotonic()
    member.close(timeout=0.1)
    assert time.monotonic() - started < 0.5
    gate.set()  # the attempt succeeds once closed: what it made is closed
    wait_for(lambda: join.made and join.made[0].closed)
    assert not member.joined


def test_commit_before_joining_is_a_retriable_error():
    member, _ = consumer(Joins(*[down()] * 1000),
                         RetryPolicy(None, 1000, 1000))
    member.start()
    with pytest.raises(errors.DeliveryError) as info:
        member.commit({("t", 0): 1})
    assert info.value.retriable
    member.close()


def test_join_in_background_creates_topics_before_each_attempt():
    made = []

    class Backend:
        hosts = [("h", 1)]

        def subscribe(self, topics, group, on_revoke=None):
            if len(made) < 3:  # two failed attempts
                raise down()
            return FakeConsumer()

    joiner = JoinInBackground(Backend(), QUICK,
                              prepare=lambda: made.append(1))
    member = joiner.subscribe(["t"], "g")
    assert member is joiner.consumer
    assert poll_until_assigned(member, 5, [].extend)
    assert len(made) == 3
    assert joiner.state.where == "h:1"
    member.close()


def test_a_refusal_after_the_start_is_one_error_per_reason(caplog):
    refused = [errors.DeliveryError("login refused", retriable=False)
               for _ in range(3)]
    join = Joins(down(), *refused)
    member, _ = consumer(join, RetryPolicy(None, 100, 100))
    caplog.set_level("DEBUG", logger="notifbus.reconnecting")
    assert member.start() is False
    assert poll_until_assigned(member, 5, [].extend)
    errors_logged = [r.getMessage() for r in caplog.records
                     if r.levelname == "ERROR"]
    assert len(errors_logged) == 1, errors_logged
    assert "cannot join: login refused" in errors_logged[0]
    member.close()


def test_a_refusal_the_start_raises_is_not_logged_as_error(caplog):
    member, _ = consumer(Joins(errors.DeliveryError("login refused",
                                                    retriable=False)))
    caplog.set_level("DEBUG", logger="notifbus.reconnecting")
    with pytest.raises(errors.DeliveryError):
        member.start()
    member.close()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
