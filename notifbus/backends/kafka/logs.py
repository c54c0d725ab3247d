"""Logs an operator can read while Kafka brokers are down.

kafka-python logs every failed connection attempt, backoff, failed fetch
and lost coordinator at WARNING or ERROR: dozens of lines for one
notification sent to a broker that is down, more every second a listener
waits for it, and each rebalance at INFO, several lines a member.
:func:`quiet_reconnects` moves the INFO, WARNING and ERROR records of its
connection, coordinator, cluster, fetcher, sender, producer and
subscription loggers to DEBUG (they show when the ``kafka`` logger is at
DEBUG); :func:`connection_state` writes one notifbus line instead when a
backend's brokers stop answering, and one when they answer again, and the
consumer one line per rebalance, naming the partitions it reads.
"""

import logging

from notifbus.backends.connection import ConnectionState

LOG = logging.getLogger("notifbus.backends.kafka")

#: kafka-python's loggers whose info, warnings and errors are reconnect and
#: rebalance chatter: what they report, notifbus reports itself (a send
#: that failed, a commit that will be retried, brokers that do not answer,
#: a rebalance)
CHATTY_LOGGERS = ("kafka.net", "kafka.conn", "kafka.coordinator",
                  "kafka.cluster", "kafka.client_async",
                  "kafka.consumer.fetcher", "kafka.producer.sender",
                  "kafka.consumer.subscription_state", "kafka.producer.kafka")


class DemoteToDebug(logging.Filter):
    """Makes an INFO, WARNING or ERROR record a DEBUG one, kept only when
    its logger logs at DEBUG."""

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


def connection_state(where):
    """The :class:`~notifbus.backends.connection.ConnectionState` of the
    Kafka brokers at ``where``, logged on the ``notifbus.backends.kafka``
    logger."""
    return ConnectionState(
        "Kafka brokers", where, log=LOG.log,
        hint=" (kafka-python's connection messages are at DEBUG on the "
             "'kafka' logger)")
