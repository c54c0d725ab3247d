"""notifbus's own Kafka record batches, read back by kafka-python's parser
(the broker round trip, and confluent-kafka reading them, are in
tests/functional/test_kafka_batches.py)."""

import struct

import crc32c
import pytest
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords

from notifbus.backends.kafka import records as kafka_records
from notifbus.record import Record

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _records(count=50):
    records = []
    for i in range(count):
        records.append(Record(
            topic="t", value=b"v" * (i * 7 % 300) + str(i).encode(),
            key=None if i % 2 else f"key-{i}".encode(),
            headers=(("origin", f"o{i}".encode()), ("e", b""))
            if i % 3 == 0 else (),
            timestamp_ms=1_700_000_000_000 + (i * 37) % 1000))
    return records


def _read(data):
    memory = MemoryRecords(data)
    batches = []
    while memory.has_next():
        batch = memory.next_batch()
        assert batch.validate_crc()
        batches.append(batch)
    return batches


def _codec(name):
    try:
        return kafka_records.compressor(name)
    except ValueError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", CODECS)
def test_kafka_python_reads_every_field_back(name):
    bits, compress = _codec(name)
    records = _records()
    batches = _read(kafka_records.encode_records(records, 1 << 20, bits,
                                                 compress))
    assert len(batches) == 1
    assert batches[0].compression_type == bits
    got = list(batches[0])
    assert [r.offset for r in got] == list(range(len(records)))
    assert [r.value for r in got] == [r.value for r in records]
    assert [r.key for r in got] == [r.key for r in records]
    assert [r.timestamp for r in got] == [r.timestamp_ms for r in records]
    assert [list(r.headers) for r in got] == [list(r.headers)
                                              for r in records]


def test_batch_header_fields():
    records = _records(3)
    data = kafka_records.encode_batch(records)
    batch = DefaultRecordBatch(data)
    assert batch.magic == 2
    assert batch.producer_id == -1
    assert batch.base_sequence == -1
    assert batch.last_offset_delta == 2
    assert batch.first_timestamp == min(r.timestamp_ms for r in records)
    assert batch.max_timestamp == max(r.timestamp_ms for r in records)
    length = struct.unpack(">i", data[8:12])[0]
    assert length == len(data) - 12
    assert struct.unpack(">I", data[17:21])[0] == crc32c.crc32c(data[21:])


def test_a_flipped_byte_fails_the_crc():
    data = bytearray(kafka_records.encode_batch(_records(5)))
    data[-3] ^= 0xFF
    assert not DefaultRecordBatch(bytes(data)).validate_crc()


def test_records_without_timestamp_get_now():
    records = [Record(topic="t", value=b"a"), Record(topic="t", value=b"b")]
    batch = _read(kafka_records.encode_batch(records, now_ms=1234))[0]
    assert [r.timestamp for r in batch] == [1234, 1234]


def test_null_value_is_written_as_null():
    batch = _read(kafka_records.encode_batch(
        [Record(topic="t", value=None)]))[0]
    assert [r.value for r in batch] == [None]


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 300, -300,
                                   2 ** 31 - 1, -2 ** 31, 2 ** 62])
def test_varint_is_kafkas_zigzag(value):
    from kafka.record.util import decode_varint

    encoded = kafka_records.varint(value)
    assert decode_varint(bytearray(encoded), 0) == (value, len(encoded))


def test_large_partitions_are_cut_into_bounded_batches():
    records = [Record(topic="t", value=b"x" * 1000) for _ in range(100)]
    data = kafka_records.encode_records(records, 10_000)
    batches = _read(data)
    assert len(batches) > 5
    assert all(len(b._buffer) <= 10_000 for b in batches)
    read = [list(b) for b in batches]
    assert [r.value for b in read for r in b] == [r.value for r in records]
    # offsets restart in each batch; the broker renumbers them
    assert all(b[0].offset == 0 for b in read)


def test_a_record_over_the_batch_limit_travels_alone():
    big = Record(topic="t", value=b"x" * 5000)
    small = Record(topic="t", value=b"y")
    runs = kafka_records.split([small, big, small], 1000)
    assert [len(run) for run in runs] == [1, 1, 1]


def test_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="unknown compression_type"):
        kafka_records.compressor("brotli")


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError):
        kafka_records.encode_batch([])
