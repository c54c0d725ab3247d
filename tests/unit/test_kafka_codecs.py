"""Compression codecs of the kafka backend."""

import kafka.codec
import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import errors


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_the_kafka_extra_brings_every_codec_librdkafka_writes(codec):
    assert getattr(kafka.codec, f"has_{codec}")()


def test_a_codec_whose_library_is_missing_is_named_at_transport_creation(
        monkeypatch):
    monkeypatch.setattr(kafka.codec, "has_lz4", lambda: False)
    conf = cfg.ConfigOpts()
    conf([])
    with pytest.raises(errors.ConfigError) as info:
        oslo_messaging.get_notification_transport(
            conf, url="notifbus+kafka://127.0.0.1:9/?compression_type=lz4")
    assert "compression_type=lz4" in str(info.value)
    assert "notifbus[kafka]" in str(info.value)
