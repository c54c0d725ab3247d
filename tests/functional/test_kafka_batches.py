"""The Kafka backend's own record batches through a real broker: the broker
stores them, kafka-python and confluent-kafka read them back, compressed
and not; partition errors come back per record."""

import time
import uuid

import kafka
import pytest

from notifbus import errors
from notifbus.backends.kafka import produce as kafka_produce
from notifbus.backends.kafka import records as kafka_records
from notifbus.backends.kafka.backend import KafkaBackend
from notifbus.record import Record

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _backend(broker, **options):
    host, port = broker.address.split(":")
    return KafkaBackend([(host, int(port))], dict(
        options, broker_quirks=broker.broker_quirks))


def _records(topic, count):
    return [Record(topic=topic, value=f"value-{i}".encode() * 5,
                   key=None if i % 2 else f"k{i}".encode(),
                   headers=(("n", str(i).encode()),) if i % 3 == 0 else (),
                   timestamp_ms=1_700_000_000_000 + i)
            for i in range(count)]


def _produce(backend, records, partitions=2):
    topic = records[0].topic
    assert backend.ensure_topic(topic, partitions, 10) == partitions
    results = backend.produce(records, [i % partitions
                                        for i in range(len(records))], 10)
    assert results == [None] * len(records)


def _read_kafka_python(broker, topic, count):
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=[broker.address], group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False,
        consumer_timeout_ms=5000)
    consumer.assign([kafka.TopicPartition(topic, p) for p in (0, 1)])
    consumer.seek_to_beginning()
    got = []
    try:
        for message in consumer:
            got.append((message.partition, message.offset, message.key,
                        message.value, list(message.headers or ()),
                        message.timestamp))
            if len(got) == count:
                break
    finally:
        consumer.close()
    return got


def _read_confluent(broker, topic, count):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": broker.address,
        "group.id": f"reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(topic, p, 0)
                     for p in (0, 1)])
    got = []
    try:
        for _ in range(100):
            if len(got) >= count:
                break
            for message in consumer.consume(count, timeout=0.2):
                if message.error():
                    raise AssertionError(message.error())
                got.append((message.partition(), message.offset(),
                            message.key(), message.value(),
                            list(message.headers() or ()),
                            message.timestamp()[1]))
    finally:
        consumer.close()
    return got


def _expected(records, partitions=2):
    """What a reader finds: per partition, in order, offsets from 0."""
    found, next_offset = [], {}
    for i, record in enumerate(records):
        partition = i % partitions
        offset = next_offset.get(partition, 0)
        next_offset[partition] = offset + 1
        found.append((partition, offset, record.key, record.value,
                      list(record.headers), record.timestamp_ms))
    return sorted(found)


@pytest.mark.parametrize("codec", CODECS)
def test_both_clients_read_what_the_batch_writer_stored(kafka_broker,
                                                        codec):
    try:
        kafka_records.compressor(codec)
    except ValueError as exc:
        pytest.skip(str(exc))
    topic = f"batches-{codec}-{uuid.uuid4().hex[:8]}"
    backend = _backend(kafka_broker, compression_type=codec)
    try:
        records = _records(topic, 60)
        _produce(backend, records)
        # a second produce call appends after the first
        more = _records(topic, 10)
        _produce(backend, more)
    finally:
        backend.close()
    expected = _expected(records + more)
    assert sorted(_read_kafka_python(kafka_broker, topic, 70)) == expected
    assert sorted(_read_confluent(kafka_broker, topic, 70)) == expected


def test_records_over_one_batch_go_in_successive_requests_in_order(
        kafka_broker):
    topic = f"batches-split-{uuid.uuid4().hex[:8]}"
    backend = _backend(kafka_broker, producer_batch_bytes=1024)
    try:
        records = [Record(topic=topic, value=f"{i:04d}".encode() * 50,
                          timestamp_ms=1_700_000_000_000)
                   for i in range(40)]
        _produce(backend, records)
    finally:
        backend.close()
    got = _read_kafka_python(kafka_broker, topic, 40)
    assert sorted(got) == _expected(records)


def test_a_partition_the_topic_lacks_fails_its_records_only(kafka_broker):
    topic = f"batches-missing-{uuid.uuid4().hex[:8]}"
    backend = _backend(kafka_broker)
    try:
        backend.ensure_topic(topic, 1, 10)
        records = _records(topic, 4)
        results = backend.produce(records, [0, 5, 0, 5], 5)
    finally:
        backend.close()
    assert results[0] is None and results[2] is None
    for error in (results[1], results[3]):
        assert isinstance(error, errors.DeliveryError)
        assert topic in str(error)


@pytest.mark.parametrize("options", [
    {"batch_writer": False, "enable_idempotence": False},
    {"batch_writer": False, "enable_idempotence": True}])
def test_the_one_by_one_path_still_works(kafka_broker, options):
    """Without the batch writer, kafka-python's producer batches, with its
    idempotent producer (whose sequence numbers it keeps) or without."""
    topic = f"batches-off-{uuid.uuid4().hex[:8]}"
    backend = _backend(kafka_broker, **options)
    try:
        records = _records(topic, 20)
        _produce(backend, records)
        assert backend._batches is None
    finally:
        backend.close()
    assert sorted(_read_kafka_python(kafka_broker, topic, 20)) == \
        _expected(records)


def test_batches_over_kafka_pythons_connections(kafka_broker):
    """With SASL, which notifbus's own connections do not speak, the
    batches go over the kafka-python producer's connections."""
    topic = f"batches-client-{uuid.uuid4().hex[:8]}"
    backend = _backend(kafka_broker)
    try:
        backend.ensure_topic(topic, 2, 10)
        writer = kafka_produce.BatchProducer(
            backend._get_producer(), acks=-1, max_batch_bytes=1 << 20,
            connections=None)
        records = _records(topic, 30)
        raw = writer.send(records, [i % 2 for i in range(30)], 10)
        assert raw == [None] * 30
        assert writer._connections == {}
    finally:
        backend.close()
    assert sorted(_read_kafka_python(kafka_broker, topic, 30)) == \
        _expected(records)


def test_own_connections_follow_a_broker_restart(restartable_broker):
    """A broker that went away and came back on the same address: the
    send in between fails retriably, the next one connects again."""
    broker = restartable_broker
    backend = _backend(broker, bootstrap_timeout_ms=1000)
    topic = f"batches-restart-{uuid.uuid4().hex[:8]}"
    try:
        _produce(backend, _records(topic, 4))
        broker.kill()
        down = backend.produce(_records(topic, 2), [0, 1], 2)
        assert all(isinstance(e, errors.DeliveryError) and e.retriable
                   for e in down)
        broker.start_again()
        deadline = time.monotonic() + 20
        while True:
            # the admin client may still be backing off its old connection
            try:
                backend.ensure_topic(topic, 2, 5)
                again = backend.produce(_records(topic, 2), [0, 1], 5)
            except errors.DeliveryError as exc:
                assert exc.retriable, exc
                again = exc
            if again == [None, None] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert again == [None, None]
    finally:
        backend.close()


def test_replay_reads_every_record_of_the_last_batch(kafka_broker):
    """Tansu reports the base offset of a partition's last batch, plus one,
    as its end: the backend reads that batch to end after it."""
    from notifbus.replay import Replay

    topic = f"batches-replay-{uuid.uuid4().hex[:8]}"
    backend = _backend(kafka_broker)
    try:
        backend.ensure_topic(topic, 1, 10)
        records = [Record(topic=topic, value=b"r%d" % i) for i in range(10)]
        assert backend.produce(records, [0] * 10, 10) == [None] * 10
        assert backend.end_offsets(topic, 10) == {0: 10}
        replay = Replay(backend, topic, from_offset=0)
        assert replay.total == 10
        assert [r.value for r in replay] == [r.value for r in records]
    finally:
        backend.close()


def test_rdkafka_replay_reads_every_record_of_the_last_batch(kafka_broker):
    pytest.importorskip("confluent_kafka")
    from notifbus.backends.rdkafka.backend import RdkafkaBackend

    topic = f"batches-rdreplay-{uuid.uuid4().hex[:8]}"
    writer = _backend(kafka_broker)
    host, port = kafka_broker.address.split(":")
    reader = RdkafkaBackend([(host, int(port))],
                            {"broker_quirks": kafka_broker.broker_quirks})
    try:
        writer.ensure_topic(topic, 1, 10)
        records = [Record(topic=topic, value=b"r%d" % i) for i in range(10)]
        assert writer.produce(records, [0] * 10, 10) == [None] * 10
        assert reader.end_offsets(topic, 10) == {0: 10}
    finally:
        writer.close()
        reader.close()
