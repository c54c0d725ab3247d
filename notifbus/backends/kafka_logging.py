"""Logs an operator can read while Kafka brokers are down.

kafka-python logs every failed connection attempt, backoff, failed fetch
and lost coordinator at WARNING or ERROR: dozens of lines for one
notification sent to a broker that is down, more every second a listener
waits for it. :func:`quiet_reconnects` moves those records of its
connection, coordinator, cluster, fetcher and sender loggers to DEBUG
(they show when the ``kafka`` logger is at DEBUG), and
:class:`ConnectionState` writes one notifbus line instead when a backend's
brokers stop answering, and one when they answer again.
"""

import logging
import threading
import time

LOG = logging.getLogger("notifbus.backends.kafka")

#: kafka-python's loggers whose warnings and errors are reconnect chatter:
#: what they report, notifbus reports itself (a send that failed, a commit
#: that will be retried, brokers that do not answer)
CHATTY_LOGGERS = ("kafka.net", "kafka.conn", "kafka.coordinator",
                  "kafka.cluster", "kafka.client_async",
                  "kafka.consumer.fetcher", "kafka.producer.sender")


class DemoteToDebug(logging.Filter):
    """Makes a WARNING or ERROR record a DEBUG one, kept only when its
    logger logs at DEBUG."""

    def filter(self, record):
        if logging.DEBUG < record.levelno < logging.CRITICAL:
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(
                logging.DEBUG)
        return True


DEMOTE_TO_DEBUG = DemoteToDebug()


def _chatty(name):
    return any(name == prefix or name.startswith(prefix + ".")
               for prefix in CHATTY_LOGGERS)


def quiet_reconnects():
    """Put :data:`DEMOTE_TO_DEBUG` on kafka-python's chatty loggers (the
    ones its imported modules created; again for later ones)."""
    for name in list(logging.Logger.manager.loggerDict):
        if _chatty(name):
            logger = logging.getLogger(name)
            if DEMOTE_TO_DEBUG not in logger.filters:
                logger.addFilter(DEMOTE_TO_DEBUG)


class ConnectionState:
    """Whether the brokers of one backend answer, logged on each change:
    a WARNING when they stop, an INFO when they answer again."""

    def __init__(self, where):
        self.where = where
        self._down_since = None
        self._lock = threading.Lock()

    @property
    def down_since(self):
        """``time.monotonic()`` of the last change to unreachable, or
        ``None`` while the brokers answer."""
        return self._down_since

    def down(self, cause):
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        LOG.warning("notifbus: Kafka brokers at %s do not answer: %s; "
                    "retrying (kafka-python's connection messages are at "
                    "DEBUG on the 'kafka' logger)", self.where, cause)

    def up(self):
        with self._lock:
            if self._down_since is None:
                return
            down_s = time.monotonic() - self._down_since
            self._down_since = None
        LOG.info("notifbus: Kafka brokers at %s answer again, after %.1f s",
                 self.where, down_s)
