"""Kafka record batches (magic 2), written once per batch.

The Kafka backend owns its batches: the bus hands it a batch of records,
and this module encodes each partition's share as one or more v2 record
batches, in the format of Kafka's ``DefaultRecordBatch``::

    BaseOffset Int64 | Length Int32 | PartitionLeaderEpoch Int32 | Magic Int8
    | CRC Uint32 | Attributes Int16 | LastOffsetDelta Int32
    | BaseTimestamp Int64 | MaxTimestamp Int64 | ProducerId Int64
    | ProducerEpoch Int16 | BaseSequence Int32 | RecordCount Int32 | Records

    Record: Length Varint | Attributes Int8 | TimestampDelta Varlong
    | OffsetDelta Varint | Key Bytes | Value Bytes | Headers [Key Value]

The CRC is CRC-32C (Castagnoli) of everything from Attributes to the end;
with compression, the Records part (after RecordCount) is compressed as a
whole. Integers inside a record are zig-zag varints; byte strings carry
their varint length first, ``-1`` for null.

A producer id of ``-1`` marks the batch as not idempotent: the broker
neither checks nor stores sequence numbers for it.
"""

import functools
import struct
import time

import crc32c

MAGIC = 2
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

#: bytes of a batch before its first record
HEADER_SIZE = 61
#: most bytes a record's framing adds to its key, value and headers
RECORD_OVERHEAD = 1 + 5 + 10 + 5 + 5 + 5 + 5

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

_HEAD = struct.Struct(">qiibI")   # base offset .. crc
_TAIL = struct.Struct(">hiqqqhii")  # attributes .. record count


def _zigzag_varint(value):
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


#: the varint of a value: offsets, lengths and timestamp deltas repeat
varint = functools.lru_cache(maxsize=1 << 16)(_zigzag_varint)

_NULL = varint(-1)
_NO_HEADERS = varint(0)
_ATTRIBUTES = b"\x00"


def _bytes_field(data):
    if data is None:
        return _NULL
    return varint(len(data)) + data


def _headers_field(headers):
    if not headers:
        return _NO_HEADERS
    parts = [varint(len(headers))]
    for key, value in headers:
        raw_key = key.encode("utf-8") if isinstance(key, str) else key
        parts.append(varint(len(raw_key)))
        parts.append(raw_key)
        parts.append(_bytes_field(value))
    return b"".join(parts)


def compressor(name):
    """``(attributes codec bits, compress(bytes) -> bytes)`` for a
    ``compression_type`` value.

    :raises ValueError: an unknown codec, or one whose library is missing.
    """
    if name in (None, "none"):
        return 0, None
    if name not in CODECS:
        raise ValueError(f"unknown compression_type {name!r}: use one of "
                         f"{', '.join(CODECS)}")
    from kafka import codec

    available = {"gzip": (codec.has_gzip, codec.gzip_encode),
                 "snappy": (codec.has_snappy, codec.snappy_encode),
                 "lz4": (codec.has_lz4, codec.lz4_encode),
                 "zstd": (codec.has_zstd, codec.zstd_encode)}
    has, encode = available[name]
    if not has():
        raise ValueError(f"compression_type {name} needs its library, "
                         f"which is not installed")
    return CODECS[name], encode


def encode_batch(records, codec_bits=0, compress=None, now_ms=None,
                 producer_id=NO_PRODUCER_ID, producer_epoch=NO_PRODUCER_EPOCH,
                 base_sequence=NO_SEQUENCE):
    """One v2 record batch holding ``records``, in order, as ``bytes``.

    ``records`` are :class:`~notifbus.record.Record` objects (their topic
    is not written: a batch belongs to one partition). A record whose
    ``timestamp_ms`` is ``None`` gets ``now_ms`` (the current time by
    default). ``producer_id``, ``producer_epoch`` and ``base_sequence``
    (the sequence number of the first record) make the batch idempotent
    (:mod:`notifbus.backends.kafka.idempotence`).
    """
    if not records:
        raise ValueError("a record batch holds at least one record")
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    stamps = [now_ms if r.timestamp_ms is None else r.timestamp_ms
              for r in records]
    base_ts = min(stamps)
    parts = []
    append = parts.append
    for offset, (record, stamp) in enumerate(zip(records, stamps)):
        value = record.value
        body = b"".join((
            _ATTRIBUTES, varint(stamp - base_ts), varint(offset),
            _bytes_field(record.key),
            _NULL if value is None else varint(len(value)) + value,
            _headers_field(record.headers)))
        append(varint(len(body)))
        append(body)
    payload = b"".join(parts)
    if compress is not None:
        payload = compress(payload)
    after_crc = _TAIL.pack(codec_bits, len(records) - 1, base_ts,
                           max(stamps), producer_id, producer_epoch,
                           base_sequence, len(records)) + payload
    head = _HEAD.pack(0, len(after_crc) + 9, NO_PARTITION_LEADER_EPOCH,
                      MAGIC, crc32c.crc32c(after_crc))
    return head + after_crc


def estimated_size(record):
    """Bytes ``record`` takes in a batch, uncompressed, at most."""
    size = len(record.value or b"") + len(record.key or b"")
    for key, value in record.headers:
        size += len(key) + len(value or b"") + 10
    return size + RECORD_OVERHEAD


def split(records, max_bytes, size=estimated_size):
    """``records`` cut, in order, into runs whose batches stay within
    ``max_bytes`` (a record larger than that alone in its run); ``size``
    gives the bytes of one item of ``records``."""
    runs, run, size_so_far = [], [], HEADER_SIZE
    for record in records:
        cost = size(record)
        if run and size_so_far + cost > max_bytes:
            runs.append(run)
            run, size_so_far = [], HEADER_SIZE
        run.append(record)
        size_so_far += cost
    if run:
        runs.append(run)
    return runs


def encode_records(records, max_batch_bytes, codec_bits=0, compress=None,
                   now_ms=None):
    """The ``records`` of one partition as consecutive record batches of at
    most about ``max_batch_bytes`` each, concatenated: the ``records``
    field of a produce request's partition."""
    return b"".join(encode_batch(run, codec_bits, compress, now_ms)
                    for run in split(records, max_batch_bytes))
