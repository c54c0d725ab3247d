"""Capture every log record, for tests that check what gets logged.

pytest's ``caplog`` does the same, but is missing when pytest runs with
``-p no:logging``.
"""

import contextlib
import logging


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def text(self):
        """Every record's message and traceback, one after another."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(formatter.format(r) for r in self.records)


@contextlib.contextmanager
def capture():
    """Every record at DEBUG and above, from every logger, while inside."""
    handler = ListHandler()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
