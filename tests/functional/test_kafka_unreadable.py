"""A record batch a kafka-backend listener cannot read does not stall it.

librdkafka (the rdkafka backend, oslo's own kafka driver) writes batches
compressed with zstd, lz4 or snappy; the kafka extra brings kafka-python
the libraries to read them. Where one is missing (here zstd, made
unavailable in this process), or a batch is corrupt, the records of the
batch are dead-lettered as markers naming the cause and the fix, the
records after it and the other topics keep flowing, nothing spins, and the
listener stops at once.
"""

import time
import uuid

import kafka.codec
import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import settings
from notifbus.record import Record
from notifbus.replay import Replay
from tests.functional.conftest import FAST_GROUP
from tests.functional.faults import Endpoint


def _conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _envelope(seq):
    from notifbus import codec

    return codec.encode({}, {"publisher_id": "p", "event_type": "e",
                             "payload": seq, "priority": "INFO",
                             "message_id": str(uuid.uuid4()),
                             "timestamp": "2026-01-01 00:00:00"})


def test_a_batch_in_a_codec_not_installed_is_dead_lettered(
        kafka_broker, monkeypatch):
    pytest.importorskip("confluent_kafka")
    topic = f"zstd{uuid.uuid4().hex[:8]}"
    other = f"plain{uuid.uuid4().hex[:8]}"
    writer, _ = settings.open_backend(_conf(), kafka_broker.url(
        "rdkafka", compression_type="zstd", num_partitions=1))
    try:
        writer.ensure_topic(f"{topic}.info", 1, 10)
        # three records in one zstd batch, then one uncompressed
        assert writer.produce(
            [Record(topic=f"{topic}.info", value=_envelope(i))
             for i in range(3)], [0, 0, 0], 10) == [None] * 3
    finally:
        writer.close(5)
    plain = oslo_messaging.get_notification_transport(
        _conf(), url=kafka_broker.url("rdkafka", num_partitions=1))
    notifier = oslo_messaging.Notifier(plain, "p", driver="messaging",
                                       topics=[topic, other], retry=0)

    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: False)
    transport = oslo_messaging.get_notification_transport(
        _conf(), url=kafka_broker.url(num_partitions=1, **FAST_GROUP))
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic),
                    oslo_messaging.Target(topic=other)], [endpoint],
        executor="threading", pool=f"unreadable-{uuid.uuid4().hex[:6]}")
    server.start()
    try:
        notifier.info({}, "after", "after")
        got, deadline = [], time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            if not endpoint.seen.empty():
                got.append(endpoint.seen.get())
            time.sleep(0.05)
        assert got == ["after", "after"]
        cpu = time.process_time()
        time.sleep(2)
        assert time.process_time() - cpu < 1.0, "the listener spins"
        started = time.monotonic()
        server.stop()
        server.wait()
        assert time.monotonic() - started < 3
    finally:
        server.stop()
        server.wait()
        plain.cleanup()
    reader, _ = settings.open_backend(_conf(), kafka_broker.url())
    try:
        dead = []
        deadline = time.monotonic() + 15
        while len(dead) < 3 and time.monotonic() < deadline:
            try:
                dead = list(Replay(reader, f"{topic}.info.dead"))
            except Exception:  # noqa: BLE001 - not created yet
                time.sleep(0.2)
    finally:
        reader.close(5)
        transport.cleanup()
    assert len(dead) == 3
    for record, offset in zip(sorted(dead, key=lambda r: r.offset),
                              range(3)):
        headers = dict(record.headers)
        assert record.value == b""
        assert headers["notifbus-origin"] == (
            f"{topic}.info partition 0 offset {offset}".encode())
        assert b"zstandard" in headers["notifbus-error"]
