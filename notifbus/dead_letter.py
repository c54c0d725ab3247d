"""Where records that are not notifications go.

A listener that reads garbage bytes, JSON that is not an oslo message, an
empty value or a record over ``max_message_bytes`` does not stop, and does
not drop the record silently: it logs it with its topic, partition and
offset, counts it, and writes it to a dead-letter topic (by default
``<topic>.dead``) with headers naming where it came from and why. The
valid notifications around it are delivered as usual.
"""

import logging

from notifbus import errors
from notifbus.record import Record

LOG = logging.getLogger(__name__)

ORIGIN_HEADER = "notifbus-origin"
ERROR_HEADER = "notifbus-error"


class DeadLetters:
    """Sends undeliverable records to their dead-letter topic.

    :param publisher: a :class:`~notifbus.bus.Publisher`.
    :param topic_template: ``str.format`` template with ``{topic}``; empty
        disables dead-lettering (records are then only logged and counted).
    """

    def __init__(self, publisher, topic_template, max_message_bytes,
                 counters):
        self._publisher = publisher
        self._template = topic_template
        self.max_message_bytes = max_message_bytes
        self._counters = counters

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
        self._counters.invalid += 1
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
        record = Record(
            topic=target, value=(received.value or b"") if keep_value
            else b"", key=received.key,
            headers=tuple(received.headers) + (
                (ORIGIN_HEADER, where.encode()),
                (ERROR_HEADER, str(error).encode()[:1024])))
        try:
            self._publisher.send(record, retry=None)
        except errors.DeliveryError as exc:
            LOG.error("notifbus: could not dead-letter the record at %s: "
                      "%s; it stays in %s for replay", where, exc,
                      received.topic)
            return
        self._counters.dead_lettered += 1
