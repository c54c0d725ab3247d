"""Tests of the record that travels over the bus."""

import dataclasses

import pytest

from notifbus.record import Record


@pytest.mark.parametrize("record, size", [
    (Record("t", b"12345"), 5),
    (Record("t", b"12345", b"key"), 8),
    (Record("t", b"12345", b""), 5),
    (Record(topic="t", value=b"", key=b"k",
            headers=[("trace", b"abc"), ("h", b"")]), 1 + 8 + 1),
])
def test_size_counts_value_key_and_headers(record, size):
    assert record.__dict__["size"] == size  # computed when made
    assert record.size == size


def test_a_record_is_a_frozen_dataclass():
    record = Record("t", b"v", b"k", timestamp_ms=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.value = b"other"  # type: ignore[misc]
    assert record == Record(topic="t", value=b"v", key=b"k",
                            timestamp_ms=5)
    assert hash(record) == hash(Record("t", b"v", b"k", (), 5))
    assert record != Record("t", b"v", b"k")
    assert [f.name for f in dataclasses.fields(record)] == [
        "topic", "value", "key", "headers", "timestamp_ms"]
    assert repr(record) == ("Record(topic='t', value=b'v', key=b'k', "
                            "headers=(), timestamp_ms=5)")


def test_replace_computes_the_new_size():
    record = dataclasses.replace(Record("t", b"v", b"key"), key=None)
    assert (record.key, record.size) == (None, 1)
