"""Where records that are not notifications go.

A listener that reads garbage bytes, JSON that is not an oslo message, an
empty value or a record over ``max_message_bytes`` does not stop, and does
not drop the record silently: it logs it with its topic, partition and
offset, counts it, and writes it to a dead-letter topic (by default
``<topic>.dead``) with headers naming where it came from and why. The
valid notifications around it are delivered as usual. Several pools
reading the topic each write their own copy: the ``notifbus-pool`` header
names the pool (the consumer group) that wrote it.

A notification that its endpoint requeued once more after its last
redelivery (``max_redeliveries``) goes to the same topic, with the pool,
the number of attempts and the last reason in its headers.
"""

import logging

from notifbus import errors
from notifbus.record import Record

LOG = logging.getLogger(__name__)

ORIGIN_HEADER = "notifbus-origin"
ERROR_HEADER = "notifbus-error"
POOL_HEADER = "notifbus-pool"
ATTEMPTS_HEADER = "notifbus-attempts"


class DeadLetters:
    """Sends undeliverable records to their dead-letter topic.

    :param publisher: a :class:`~notifbus.bus.Publisher`.
    :param topic_template: ``str.format`` template with ``{topic}``; empty
        disables dead-lettering (records are then only logged and counted).
    :param pool: the listener's pool (its consumer group): the ``pool``
        label of the counts, and the ``notifbus-pool`` header of the
        records it dead-letters.
    """

    def __init__(self, publisher, topic_template, max_message_bytes,
                 counters, pool=None):
        self._publisher = publisher
        self._template = topic_template
        self.max_message_bytes = max_message_bytes
        self._counters = counters
        self._pool = pool

    def topic_for(self, topic):
        return self._template.format(topic=topic) if self._template else None

    def oversized(self, received):
        """A :class:`~notifbus.errors.DecodeError` when the record is over
        ``max_message_bytes``, else ``None``."""
        size = len(received.value or b"")
        if size > self.max_message_bytes:
            return errors.DecodeError(
                f"{size} bytes, over the max_message_bytes limit of "
                f"{self.max_message_bytes}")
        return None

    def handle(self, received, error):
        """Log, count and dead-letter ``received``; returns when the
        dead-letter topic acknowledged it (or dead-lettering is off)."""
        self._counters.count("invalid", received.topic, pool=self._pool)
        where = (f"{received.topic} partition {received.partition} offset "
                 f"{received.offset}")
        target = self.topic_for(received.topic)
        LOG.error("notifbus: record at %s is not a notification (%s); %s",
                  where, error,
                  f"sending it to {target}" if target else "skipping it")
        if not target:
            return
        keep_value = isinstance(error, errors.DecodeError) and \
            self.oversized(received) is None
        headers = ((ERROR_HEADER, str(error).encode()[:1024]),)
        if self._pool is not None:
            headers += ((POOL_HEADER, _header_value(self._pool)),)
        self._send(received, target, where, keep_value, headers)

    def give_up(self, received, group, attempts, reason=None):
        """A notification pool ``group`` requeued ``attempts`` times, the
        last one after its last redelivery: log, count and dead-letter it,
        with its value, and headers naming the pool, the attempts and the
        last reason. Returns when the dead-letter topic acknowledged it
        (or dead-lettering is off)."""
        where = (f"{received.topic} partition {received.partition} offset "
                 f"{received.offset}")
        reason = reason or "requeued by the endpoint"
        target = self.topic_for(received.topic)
        LOG.error("notifbus: pool %r requeued the notification at %s %d "
                  "times (max_redeliveries is %d), last because %s; %s",
                  group, where, attempts, attempts - 1, reason,
                  f"sending it to {target}" if target else "skipping it")
        if not target:
            return
        self._send(received, target, where, True, (
            (ERROR_HEADER, reason.encode("utf-8", "replace")[:1024]),
            (POOL_HEADER, _header_value(group)),
            (ATTEMPTS_HEADER, str(attempts).encode())))

    def _send(self, received, target, where, keep_value, headers):
        record = Record(
            topic=target, value=(received.value or b"") if keep_value
            else b"", key=received.key,
            headers=tuple(received.headers) + (
                (ORIGIN_HEADER, where.encode()),) + headers)
        try:
            self._publisher.send(record, retry=None)
        except errors.DeliveryError as exc:
            LOG.error("notifbus: could not dead-letter the record at %s: "
                      "%s; it stays in %s for replay", where, exc,
                      received.topic)
            return
        self._counters.count("dead_lettered", received.topic,
                             pool=self._pool)


def _header_value(text):
    return str(text).encode("utf-8", "replace")
