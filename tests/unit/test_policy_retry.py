import time

import pytest

from notifbus.errors import DeliveryError, RecordTooLarge
from notifbus.policy import RetryPolicy


class Boom(Exception):
    pass


class Flaky:
    """Fails ``failures`` times with a fresh Boom each time, then succeeds."""

    def __init__(self, failures, exc_type=Boom):
        self.failures = failures
        self.exc_type = exc_type
        self.calls = 0
        self.raised = []

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            exc = self.exc_type(f"failure {self.calls}")
            self.raised.append(exc)
            raise exc
        return "done"


class Sleeps(list):
    """A sleep that records its arguments instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


def policy(retry, **kwargs):
    kwargs.setdefault("sleep", Sleeps())
    return RetryPolicy.from_oslo(retry, **kwargs)


def test_zero_means_one_attempt():
    sleeps = Sleeps()
    fn = Flaky(10)
    with pytest.raises(Boom) as info:
        policy(0, sleep=sleeps).call(fn)
    assert fn.calls == 1
    assert info.value is fn.raised[0]
    assert sleeps == []


def test_n_means_n_retries_then_the_original_exception():
    sleeps = Sleeps()
    fn = Flaky(10)
    with pytest.raises(Boom) as info:
        policy(3, sleep=sleeps).call(fn)
    assert fn.calls == 4
    assert info.value is fn.raised[-1]
    assert len(sleeps) == 3


def test_success_within_the_limit_returns_the_result():
    sleeps = Sleeps()
    fn = Flaky(2)
    assert policy(3, sleep=sleeps).call(fn) == "done"
    assert fn.calls == 3
    assert sleeps == [0.1, 0.2]


def test_success_on_first_attempt_does_not_sleep():
    sleeps = Sleeps()
    assert policy(0, sleep=sleeps).call(lambda: 42) == 42
    assert sleeps == []


@pytest.mark.parametrize("retry", [None, -1])
def test_forever_keeps_retrying(retry):
    sleeps = Sleeps()
    fn = Flaky(50)
    p = policy(retry, sleep=sleeps, backoff_ms=1, backoff_max_ms=8)
    assert p.forever
    assert p.retries is None
    assert p.call(fn) == "done"
    assert fn.calls == 51
    assert len(sleeps) == 50
    assert sleeps[:5] == [0.001, 0.002, 0.004, 0.008, 0.008]
    assert set(sleeps[4:]) == {0.008}


def test_non_retriable_is_raised_immediately():
    sleeps = Sleeps()
    fn = Flaky(10)
    p = policy(None, sleep=sleeps)
    with pytest.raises(Boom) as info:
        p.call(fn, is_retriable=lambda exc: False)
    assert fn.calls == 1
    assert info.value is fn.raised[0]
    assert sleeps == []


def test_is_retriable_sees_the_exception():
    seen = []
    fn = Flaky(10, exc_type=RecordTooLarge)

    def is_retriable(exc):
        seen.append(exc)
        return exc.retriable

    with pytest.raises(RecordTooLarge):
        policy(5).call(fn, is_retriable=is_retriable)
    assert fn.calls == 1
    assert seen == fn.raised


def test_retriable_delivery_errors_are_retried():
    fn = Flaky(2, exc_type=DeliveryError)
    assert policy(5).call(fn, is_retriable=lambda e: e.retriable) == "done"
    assert fn.calls == 3


def test_base_exceptions_are_not_retried():
    fn = Flaky(10, exc_type=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        policy(None).call(fn)
    assert fn.calls == 1


def test_on_retry_arguments():
    sleeps = Sleeps()
    calls = []
    fn = Flaky(10)
    p = policy(2, sleep=sleeps, backoff_ms=100, backoff_max_ms=150)
    with pytest.raises(Boom):
        p.call(fn, on_retry=lambda *args: calls.append(args))
    assert calls == [
        (1, fn.raised[0], 0.1),
        (2, fn.raised[1], 0.15),
    ]
    assert sleeps == [0.1, 0.15]


def test_on_retry_not_called_without_retry():
    calls = []
    with pytest.raises(Boom):
        policy(0).call(Flaky(1), on_retry=lambda *a: calls.append(a))
    assert calls == []


def test_backoff_sequence_and_cap():
    p = RetryPolicy(None, backoff_ms=100, backoff_max_ms=1000)
    assert [p.backoff_s(n) for n in range(1, 7)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]
    assert p.backoff_s(10_000) == 1.0


def test_backoff_defaults():
    p = RetryPolicy(3)
    assert p.backoff_s(1) == 0.1
    assert p.backoff_s(100) == 5.0


def test_backoff_needs_a_failed_attempt():
    with pytest.raises(ValueError, match="attempts_made"):
        RetryPolicy(3).backoff_s(0)


def test_allows():
    p = RetryPolicy(2)
    assert p.allows(1)
    assert p.allows(2)
    assert not p.allows(3)
    assert not RetryPolicy(0).allows(1)
    assert RetryPolicy(None).allows(10**9)


def test_from_oslo_mapping():
    assert RetryPolicy.from_oslo(None).forever
    assert RetryPolicy.from_oslo(-1).forever
    assert RetryPolicy.from_oslo(0).retries == 0
    assert not RetryPolicy.from_oslo(0).forever
    assert RetryPolicy.from_oslo(7).retries == 7


@pytest.mark.parametrize("retry", [-2, -100, 1.5, "3", True])
def test_invalid_retry(retry):
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy.from_oslo(retry)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"backoff_ms": -1}, "backoff_ms"),
        ({"backoff_max_ms": -1}, "backoff_max_ms"),
        ({"backoff_ms": "x"}, "backoff_ms"),
    ],
)
def test_invalid_backoff(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RetryPolicy(3, **kwargs)


def test_repr():
    assert repr(RetryPolicy(3)) == (
        "RetryPolicy(retries=3, backoff_ms=100, backoff_max_ms=5000)"
    )
    assert repr(RetryPolicy.from_oslo(-1, backoff_ms=10)) == (
        "RetryPolicy(retries=None, backoff_ms=10, backoff_max_ms=5000)"
    )


def test_default_sleep_is_looked_up_at_call_time(monkeypatch):
    # A patched time.sleep (as eventlet installs) is the one used.
    sleeps = Sleeps()
    p = RetryPolicy(1)
    monkeypatch.setattr(time, "sleep", sleeps)
    assert p.call(Flaky(1)) == "done"
    assert sleeps == [0.1]
