"""The driver's topic names, worked out once per target and priority."""

import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import errors


@pytest.fixture
def driver():
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(
        conf, url=f"notifbus+memory://topics-{uuid.uuid4().hex[:8]}/")
    yield transport._driver
    transport.cleanup()


def test_a_name_is_worked_out_once(driver, monkeypatch):
    made = []
    topic_name = driver._topic_name
    monkeypatch.setattr(driver, "_topic_name",
                        lambda *args: made.append(args) or topic_name(*args))
    target = oslo_messaging.Target(topic="notif")
    names = [driver.topic_for(target) for _ in range(3)]
    names.append(driver.topic_for(oslo_messaging.Target(topic="notif")))
    assert names == ["notif"] * 4
    assert len(made) == 1
    assert driver.topic_for(target, "info") == "notif.info"
    assert driver.topic_for(oslo_messaging.Target(
        topic="notif", exchange="glance"), "info") == "notif.info"
    assert driver.topic_for(oslo_messaging.Target(topic="other")) == "other"
    assert len(made) == 4


def test_an_invalid_name_fails_every_time(driver):
    for _ in range(2):
        with pytest.raises(errors.ConfigError, match="not a valid topic"):
            driver.topic_for(oslo_messaging.Target(topic="bad topic"))
