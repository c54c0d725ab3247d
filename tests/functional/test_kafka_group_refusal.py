"""A consumer group that refuses a listener's configuration fails the
listener's start at once, naming the option and the fix, instead of a
warning per poll and a start that waits for the assignment timeout."""

import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

#: the session nodes' group.min.session.timeout.ms is 500
#: (tests/functional/conftest.py): a listener's 200 is below it
TOO_SHORT_MS = 200


def conf():
    found = cfg.ConfigOpts()
    found([])
    return found


class Endpoint:
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        return None


@pytest.mark.parametrize("backend", ["kafka", "rdkafka"])
def test_a_session_timeout_the_brokers_refuse_fails_the_start(
        apache_kafka, backend):
    url = apache_kafka.url(backend, session_timeout_ms=TOO_SHORT_MS,
                           max_poll_interval_ms=10000)
    transport = oslo_messaging.get_notification_transport(conf(), url=url)
    topic = f"refused-{uuid.uuid4().hex[:8]}"
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
        executor="threading", pool=f"pool-{topic}")
    started = time.monotonic()
    try:
        with pytest.raises(oslo_messaging.MessagingException) as caught:
            server.start()
    finally:
        transport.cleanup()
    took = time.monotonic() - started
    message = str(caught.value)
    assert type(caught.value).__name__ == "ListenerStartError"
    assert f"session_timeout_ms={TOO_SHORT_MS}" in message
    assert "group.min.session.timeout.ms" in message
    assert f"[notifbus_{backend}]" in message
    # far below the 30 s assignment timeout the start waited before
    assert took < 15.0
