"""What the kafka backend logs while its brokers are down: one notifbus
line per change, kafka-python's reconnect messages at DEBUG."""

import logging
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.embedded import EmbeddedBroker, free_port

STATE_LOGGER = "notifbus.backends.kafka"


def _notifier(url, retry):
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    notifier = oslo_messaging.Notifier(
        transport, "logs.test", driver="messaging",
        topics=[f"logs{uuid.uuid4().hex[:8]}"], retry=retry)
    return transport, notifier


def _kafka_records(caplog, level):
    return [r for r in caplog.records
            if r.name.split(".")[0] == "kafka" and r.levelno >= level]


def _state_lines(caplog):
    """The connection state lines (other lines of the logger, such as a
    broker quirk's notice, are not state lines)."""
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == STATE_LOGGER
            and r.getMessage().startswith("notifbus: Kafka brokers at ")]


def test_a_send_to_a_broker_that_is_down_logs_one_state_line(caplog):
    caplog.set_level(logging.WARNING)
    transport, notifier = _notifier(
        "notifbus+kafka://127.0.0.1:1/?bootstrap_timeout_ms=300", retry=3)
    try:
        notifier.info({}, "logs.event", {})  # oslo logs the failure
    finally:
        transport.cleanup()
    assert _kafka_records(caplog, logging.WARNING) == []
    lines = _state_lines(caplog)
    assert len(lines) == 1, lines
    level, message = lines[0]
    assert level == "WARNING"
    assert message.startswith("notifbus: Kafka brokers at 127.0.0.1:1 do "
                              "not answer")
    # with the retry lines of the bus and oslo's own error: a handful
    assert len(caplog.records) <= 6, [r.getMessage() for r in caplog.records]


def test_the_brokers_answering_again_is_one_info_line(caplog):
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.INFO, logger=STATE_LOGGER)
    port = free_port()
    transport, notifier = _notifier(
        f"notifbus+kafka://127.0.0.1:{port}/?broker_quirks=tansu"
        f"&bootstrap_timeout_ms=500", retry=0)
    try:
        notifier.info({}, "logs.event", {"seq": 1})
        with EmbeddedBroker(port=port):
            notifier.info({}, "logs.event", {"seq": 2})
            notifier.info({}, "logs.event", {"seq": 3})
    finally:
        transport.cleanup()
    lines = _state_lines(caplog)
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert lines[1][1].startswith(
        f"notifbus: Kafka brokers at 127.0.0.1:{port} answer again, after ")
    assert _kafka_records(caplog, logging.WARNING) == []


def test_kafka_python_messages_show_at_debug(caplog):
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="kafka")
    transport, notifier = _notifier(
        "notifbus+kafka://127.0.0.1:1/?bootstrap_timeout_ms=500", retry=0)
    try:
        notifier.info({}, "logs.event", {})
    finally:
        transport.cleanup()
    assert _kafka_records(caplog, logging.WARNING) == []
    refused = [r for r in _kafka_records(caplog, logging.DEBUG)
               if "ECONNREFUSED" in r.getMessage()]
    assert refused
    assert all(r.levelname == "DEBUG" for r in refused)


@pytest.mark.parametrize("level", [logging.CRITICAL])
def test_critical_records_are_left_alone(level):
    from notifbus.backends.kafka import logs as kafka_logging

    record = logging.LogRecord("kafka.conn", level, __file__, 1, "m", (),
                               None)
    assert kafka_logging.DEMOTE_TO_DEBUG.filter(record)
    assert record.levelno == level


class _Endpoint:
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        pass


def test_a_listener_whose_broker_stops_logs_one_state_line(caplog):
    caplog.set_level(logging.WARNING)
    broker = EmbeddedBroker().start()
    try:
        conf = cfg.ConfigOpts()
        conf([])
        transport = oslo_messaging.get_notification_transport(
            conf, url=broker.url(session_timeout_ms=1000,
                                 heartbeat_interval_ms=200,
                                 bootstrap_timeout_ms=500))
        server = oslo_messaging.get_notification_listener(
            transport,
            [oslo_messaging.Target(topic=f"logs{uuid.uuid4().hex[:8]}")],
            [_Endpoint()], executor="threading", pool="logs-pool")
        server.start()
        broker.stop(kill=True)
        time.sleep(4)
        server.stop()
        server.wait()
        transport.cleanup()
    finally:
        broker.stop()
    assert _kafka_records(caplog, logging.WARNING) == []
    lines = _state_lines(caplog)
    assert [level for level, _ in lines] == ["WARNING"], lines
    assert "has no coordinator" in lines[0][1]
