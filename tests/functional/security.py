"""What the security tests of the Kafka backends share: a round trip
through oslo.messaging, a send or a listener start that must fail within
a bound, and secrets that must show in no error and no log record.

Sends are made as oslo's Notifier makes them (``_send_notification``),
since the Notifier logs and drops errors.
"""

import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus.oslo_driver import ListenerStartError
from tests.functional.faults import Endpoint, message, target

#: a connection that cannot work must say so within this many seconds
QUICK_S = 5.0


def conf(*config_files):
    """A fresh configuration, parsed from ``config_files``."""
    found = cfg.ConfigOpts()
    found([f"--config-file={path}" for path in config_files])
    return found


def round_trip(url, payload=None, config=None, topic=None):
    """Notifier -> broker -> notification listener through the oslo
    transport at ``url``, on ``topic`` (a fresh one by default); returns
    what the listener received (``payload``, else a fresh one, if all went
    well)."""
    topic = topic or f"sec{uuid.uuid4().hex[:8]}"
    payload = payload or {"id": uuid.uuid4().hex}
    transport = oslo_messaging.get_notification_transport(
        config or conf(), url=url)
    endpoint = Endpoint()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool=f"pool-{topic}")
    try:
        server.start()
        notifier = oslo_messaging.Notifier(transport, publisher_id="security",
                                           driver="messaging",
                                           topics=[topic])
        notifier.info({}, "security.test", payload)
        return endpoint.seen.get(timeout=30)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def _within(started, within, error):
    took = time.monotonic() - started
    if within is not None:
        assert took < within, f"failed only after {took:.1f} s: {error}"


def send_fails(url, retry=0, config=None, within=QUICK_S):
    """One send with ``retry`` through the transport at ``url``, which must
    fail with MessageDeliveryFailure within ``within`` seconds (unless
    ``None``); returns the failure."""
    transport = oslo_messaging.get_notification_transport(
        config or conf(), url=url)
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessageDeliveryFailure) as info:
            transport._send_notification(target("security"), {}, message(1),
                                         version=2.0, retry=retry)
    finally:
        transport.cleanup()
    _within(started, within, info.value)
    return info.value


def listener_fails(url, config=None, within=QUICK_S):
    """A notification listener start through the transport at ``url``,
    which must fail with ListenerStartError within ``within`` seconds
    (unless ``None``); returns the failure."""
    transport = oslo_messaging.get_notification_transport(
        config or conf(), url=url)
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="security")], [Endpoint()],
        executor="threading")
    started = time.monotonic()
    try:
        with pytest.raises(ListenerStartError) as info:
            server.start()
    finally:
        transport.cleanup()
    _within(started, within, info.value)
    return info.value


def assert_hidden(error, logs, *secrets):
    """None of ``secrets`` in ``error``, its causes, or the records that
    ``logs`` (a :mod:`tests.logcapture` handler) captured."""
    assert logs.records, "no log record was captured"
    texts = [str(error), repr(error), logs.text()]
    cause = error.__cause__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__
    for secret in secrets:
        for text in texts:
            assert secret not in text
