"""Log records made where logging must not happen, logged later.

A client library's own threads (librdkafka's callbacks) and an asyncio
loop thread must not call :mod:`logging` in an eventlet-patched process:
its handlers take green locks, which a native thread cannot wait on. Such
threads :meth:`~DeferredLog.note` their records here; the next caller on a
thread that may log :meth:`~DeferredLog.flush`\\ es them.
"""

import collections
import logging


class DeferredLog:
    """A bounded queue of log records.

    :param maxlen: most records kept; older ones are dropped first.
    """

    def __init__(self, maxlen=200):
        self._records = collections.deque(maxlen=maxlen)

    def note(self, level, message, *args):
        """Keep a record: ``logging.Logger.log``'s arguments. Safe from any
        thread (``deque.append`` is atomic)."""
        self._records.append((level, message, args))

    def flush(self, logger: logging.Logger) -> None:
        """Log every kept record on ``logger``, oldest first."""
        while True:
            try:
                level, message, args = self._records.popleft()
            except IndexError:
                return
            logger.log(level, message, *args)
