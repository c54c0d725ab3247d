"""notifbus.health.check on the memory backend: what it reports before
any traffic, after a failed send, once sends work again, and for
listeners."""

import time

import oslo_messaging
import pytest
from oslo_context import context as oslo_context

from notifbus import health
from tests.unit.test_oslo_driver import (
    Collector,
    make_conf,
    notifier,
    start_listener,
    transport_for,
    wait_for,
)

#: name, stack and fast_executor_shutdown: tests/unit/conftest.py
pytestmark = pytest.mark.usefixtures("fast_executor_shutdown")


def send(transport):
    notifier(transport).info(oslo_context.RequestContext(), "e.t", {})


def test_unused_transport_is_healthy(stack, name):
    report = health.check(transport_for(stack, name))
    assert report.healthy and report.describe() == "healthy"
    assert report.publisher == health.Component(
        role="publisher", backend="memory", connected=None,
        last_error=None, since=None)
    assert report.listeners == ()


def test_failed_send_then_working_send(faults, stack, name):
    transport = transport_for(stack, name)
    faults.set_down(True)
    before = time.time()
    send(transport)  # oslo's notifier logs the failure
    report = health.check(transport)
    assert not report.healthy
    assert report.publisher.connected is False
    assert "is down" in report.publisher.last_error
    assert before <= report.publisher.since <= time.time()
    assert report.describe().startswith(
        "memory publisher: not connected since ")
    faults.set_down(False)
    send(transport)
    report = health.check(transport)
    assert report.healthy
    assert report.publisher.connected is True
    assert report.publisher.since >= before
    assert "is down" in report.publisher.last_error  # the last one seen


def test_listener_connected_once_joined(stack, name):
    transport = transport_for(stack, name)
    start_listener(stack, transport, [Collector()], pool="audit")
    [listener] = health.check(transport).listeners
    assert (listener.role, listener.pool, listener.topics,
            listener.connected) == ("listener", "audit", ("notif.info",),
                                    True)


def test_listener_started_while_down_not_connected_until_it_joins(
        faults, stack, name):
    conf = make_conf(retry_backoff_ms=10, retry_backoff_max_ms=50)
    transport = transport_for(stack, name, conf=conf)
    faults.set_down(True)
    start_listener(stack, transport, [Collector()], pool="late")
    report = health.check(transport)
    [listener] = report.listeners
    assert not report.healthy and listener.connected is False
    assert "is down" in listener.last_error
    faults.set_down(False)
    assert wait_for(lambda: health.check(transport).healthy, 5)


def test_not_a_notifbus_transport():
    transport = oslo_messaging.get_notification_transport(
        make_conf(), url="fake:/")
    with pytest.raises(TypeError, match="notifbus\\+<backend>://"):
        health.check(transport)
