"""One log line per change of a backend's connection state; the client
libraries' reconnect chatter at DEBUG."""

import logging

import pytest
from confluent_kafka import KafkaError

from notifbus import errors
from notifbus.backends.connection import ConnectionState
from notifbus.backends.kafka_common.logs import partition_list
from notifbus.backends.rdkafka.backend import ClientEvents
from tests.unit.test_bus import SHORT, fill, make_backend, subscribe


class Lines:
    def __init__(self):
        self.lines = []

    def __call__(self, level, message, *args):
        self.lines.append((level, message % args))


def test_each_change_is_one_line():
    lines = Lines()
    state = ConnectionState("NATS servers", "h:4222", log=lines)
    state.up()  # answering already: nothing to say
    state.down("refused")
    state.down("refused again")
    assert state.down_since is not None and state.cause == "refused again"
    state.up()
    state.up()
    assert [level for level, _ in lines.lines] == [logging.WARNING,
                                                   logging.INFO]
    assert lines.lines[0][1] == ("notifbus: NATS servers at h:4222 do not "
                                 "answer: refused")
    assert lines.lines[1][1].startswith("notifbus: NATS servers at h:4222 "
                                        "answer again, after ")
    assert state.down_since is None and state.cause is None


class FakeError:
    def __init__(self, code, text):
        self._code, self._text = code, text

    def code(self):
        return self._code

    def str(self):
        return self._text

    def fatal(self):
        return False


def _logged(events, caplog):
    caplog.set_level(logging.DEBUG, logger="notifbus.backends.rdkafka")
    events.flush()
    return [(r.levelno, r.getMessage()) for r in caplog.records]


def test_librdkafka_connection_failures_are_debug_lines(caplog):
    events = ClientEvents(lambda: "h:9092")
    for attempt in range(3):
        events.log(logging.ERROR, "%s [%s] %s", "FAIL", "producer-1",
                   f"Connect to h:9092 failed (after {attempt}ms)")
    events.log(logging.WARNING, "%s [%s] %s", "MAXPOLL", "consumer-1",
               "max.poll.interval.ms exceeded")
    logged = _logged(events, caplog)
    assert [level for level, _ in logged] == [logging.DEBUG] * 3 + [
        logging.WARNING]


@pytest.mark.parametrize("outages", [1, 2])
def test_all_brokers_down_and_back_is_one_pair_of_lines(caplog, outages):
    events = ClientEvents(lambda: "h:9092")
    for _ in range(outages):
        for _ in range(3):
            events.error(FakeError(KafkaError._ALL_BROKERS_DOWN,
                                   "1/1 brokers are down"))
        events.answered()
    logged = [(level, text) for level, text in _logged(events, caplog)
              if level >= logging.INFO]
    assert [level for level, _ in logged] == [logging.WARNING,
                                              logging.INFO] * outages
    assert logged[0][1].startswith("notifbus: Kafka brokers at h:9092 do "
                                   "not answer: 1/1 brokers are down")


def test_partition_list():
    assert partition_list({("u", 0), ("t", 1), ("t", 0)}) == "t[0,1] u[0]"
    assert partition_list(set()) == "none"


def test_a_streak_of_failed_commits_is_one_warning(caplog):
    backend = make_backend()
    fill(backend, [b"a"])
    subscription = subscribe(backend)
    subscription.ack(subscription.fetch(SHORT, 10)[0])
    consumer = subscription._consumer
    commit = consumer.commit

    def broker_down(offsets):
        raise errors.DeliveryError("no broker answered")

    caplog.set_level(logging.DEBUG, logger="notifbus.bus")
    consumer.commit = broker_down
    for _ in range(3):
        subscription.commit()
    consumer.commit = commit
    subscription.commit()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records
             if r.name == "notifbus.bus"]
    assert [level for level, _ in lines] == [
        logging.WARNING, logging.DEBUG, logging.DEBUG, logging.INFO]
    assert lines[-1][1] == "notifbus: commits of group 'g' work again"
    assert backend.cluster.committed("g") == {(subscription.topics[0], 0): 1}
