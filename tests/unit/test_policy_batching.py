import dataclasses

import pytest

from notifbus.policy import BatchPolicy


def test_defaults():
    policy = BatchPolicy()
    assert policy.max_records == 500
    assert policy.max_bytes == 1048576
    assert policy.linger_ms == 0.0
    assert policy.linger_s == 0.0


def test_is_frozen():
    policy = BatchPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_records = 3


def test_linger_s():
    assert BatchPolicy(linger_ms=250).linger_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_records": 0}, "max_records"),
        ({"max_records": -5}, "max_records"),
        ({"max_records": 1.5}, "max_records"),
        ({"max_records": True}, "max_records"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": "10"}, "max_bytes"),
        ({"linger_ms": -0.1}, "linger_ms"),
        ({"linger_ms": float("nan")}, "linger_ms"),
        ({"linger_ms": None}, "linger_ms"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BatchPolicy(**kwargs)


def test_minimal_values_are_valid():
    policy = BatchPolicy(max_records=1, max_bytes=1, linger_ms=0)
    assert policy.take([1, 1]) == 1


def test_take_empty():
    assert BatchPolicy().take([]) == 0


def test_take_everything_when_it_fits():
    assert BatchPolicy(max_records=10, max_bytes=100).take([10] * 5) == 5


def test_take_limited_by_records():
    assert BatchPolicy(max_records=3, max_bytes=100).take([1] * 10) == 3


def test_take_limited_by_bytes():
    policy = BatchPolicy(max_records=10, max_bytes=100)
    assert policy.take([40, 40, 40]) == 2


def test_take_exactly_max_bytes_fits():
    policy = BatchPolicy(max_records=10, max_bytes=100)
    assert policy.take([50, 50, 1]) == 2


def test_take_oversized_record_travels_alone():
    policy = BatchPolicy(max_records=10, max_bytes=100)
    assert policy.take([500, 1, 1]) == 1
    assert policy.take([500]) == 1


def test_take_stops_before_oversized_record():
    policy = BatchPolicy(max_records=10, max_bytes=100)
    assert policy.take([10, 500, 1]) == 1


def test_take_is_a_prefix():
    # A later small record does not jump over a larger one that does not
    # fit.
    policy = BatchPolicy(max_records=10, max_bytes=100)
    assert policy.take([60, 60, 1]) == 1


def test_take_accepts_any_sequence():
    policy = BatchPolicy(max_records=2, max_bytes=100)
    assert policy.take((1, 2, 3)) == 2
    assert policy.take(iter([1, 2, 3])) == 2


def test_is_full():
    policy = BatchPolicy(max_records=3, max_bytes=100)
    assert not policy.is_full(0, 0)
    assert not policy.is_full(2, 99)
    assert policy.is_full(3, 0)
    assert policy.is_full(1, 100)
    assert policy.is_full(1, 500)


def test_should_wait_without_linger():
    policy = BatchPolicy(linger_ms=0)
    assert not policy.should_wait(1, 10, 0.0)


def test_should_wait_with_linger():
    policy = BatchPolicy(max_records=3, max_bytes=100, linger_ms=50)
    assert policy.should_wait(1, 10, 0.0)
    assert policy.should_wait(1, 10, 0.049)
    assert not policy.should_wait(1, 10, 0.05)
    assert not policy.should_wait(1, 10, 1.0)


def test_should_not_wait_when_full():
    policy = BatchPolicy(max_records=3, max_bytes=100, linger_ms=50)
    assert not policy.should_wait(3, 10, 0.0)
    assert not policy.should_wait(1, 100, 0.0)
