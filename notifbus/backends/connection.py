"""Whether a backend's brokers answer, logged once per change.

A broker that is down makes the client libraries log every failed
attempt; notifbus logs one line instead when a backend's brokers stop
answering (WARNING) and one when they answer again (INFO), with how long
they were gone. Every in-tree network backend keeps one
:class:`ConnectionState` as its ``connection`` attribute; a listener
waiting for the broker reports to the same one, so a listener and a
publisher of one transport make one pair of lines per outage.
"""

import logging
import time

LOG = logging.getLogger(__name__)


class ConnectionState:
    """Whether the brokers of one backend answer, logged on each change.

    :param what: what answers, plural, for the messages (``"Kafka
        brokers"``, ``"NATS servers"``).
    :param where: their addresses, as the transport URL names them (never
        with credentials).
    :param log: ``log(level, message, *args)``; a logger's ``log`` by
        default. Backends whose callbacks run on threads where a logging
        lock must not be taken (a native thread under eventlet) pass one
        that queues the line for the caller to log.
    :param hint: appended to the WARNING, e.g. where the client library's
        own messages went.

    No lock: callbacks of native threads call it too. Two threads noting
    the same change at the same instant may log it twice, never miss it.
    """

    def __init__(self, what, where, log=None, hint=""):
        self.what = what
        self.where = where
        self._log = log or LOG.log
        self._hint = hint
        self._down_since = None
        #: what the last failure said while they do not answer, else None
        self.cause = None

    @property
    def down_since(self):
        """``time.monotonic()`` of the last change to unreachable, or
        ``None`` while the brokers answer."""
        return self._down_since

    def down(self, cause):
        """The brokers did not answer (``cause``, a short text); logs a
        WARNING if they answered until now."""
        self.cause = cause
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._log(logging.WARNING, "notifbus: %s at %s do not answer: "
                  "%s%s", self.what, self.where, cause, self._hint)

    def up(self):
        """The brokers answered; logs an INFO if they did not until now."""
        since = self._down_since
        if since is None:
            return
        self._down_since = None
        self.cause = None
        self._log(logging.INFO, "notifbus: %s at %s answer again, after "
                  "%.1f s", self.what, self.where, time.monotonic() - since)
