"""A local file of records that could not be sent.

The buffered delivery mode writes here what exhausted its retries, or what
was still buffered when the process shut down, instead of dropping it. Each
line is one record as JSON (value, key and headers in base64), appended and
flushed with ``fsync``. Spool files are re-sent at the next start of a
buffered publisher, or by ``notifbus spool flush``.
"""

import base64
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
import uuid

from notifbus.record import Record

LOG = logging.getLogger(__name__)

SUFFIX = ".spool"


def default_spool_dir():
    """``notifbus-spool`` in the system's temporary directory."""
    return os.path.join(tempfile.gettempdir(), "notifbus-spool")


def _b64(data):
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text):
    return None if text is None else base64.b64decode(text)


def encode(record):
    return json.dumps({
        "topic": record.topic, "value": _b64(record.value),
        "key": _b64(record.key),
        "headers": [[k, _b64(v)] for k, v in record.headers],
        "timestamp_ms": record.timestamp_ms}, sort_keys=True)


def decode(line):
    data = json.loads(line)
    return Record(topic=data["topic"], value=_unb64(data["value"]),
                  key=_unb64(data["key"]),
                  headers=tuple((k, _unb64(v)) for k, v in data["headers"]),
                  timestamp_ms=data["timestamp_ms"])


class Spool:
    """Spool files in ``directory``; this process appends to its own.

    The file a process writes is locked (``flock``) while the process
    lives, so that another process sharing the directory does not take it
    for re-sending.
    """

    def __init__(self, directory):
        self.directory = directory
        self._lock = threading.Lock()
        self._path = os.path.join(
            directory, f"{int(time.time())}-{os.getpid()}-"
                       f"{uuid.uuid4().hex[:8]}{SUFFIX}")
        self._file = None
        self.written = 0

    def write(self, records):
        """Append ``records`` durably (flushed and fsynced)."""
        if not records:
            return
        lines = "".join(encode(record) + "\n" for record in records)
        with self._lock:
            if self._file is None:
                os.makedirs(self.directory, exist_ok=True)
                self._file = open(self._path, "a", encoding="utf-8")
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file.write(lines)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.written += len(records)
        LOG.error("notifbus: spooled %d undelivered notification(s) to %s; "
                  "they are re-sent at the next start or by 'notifbus "
                  "spool flush'", len(records), self._path)

    def pending_files(self):
        """Spool files no live process is writing (not this one's)."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        paths = [os.path.join(self.directory, name) for name in names
                 if name.endswith(SUFFIX)]
        return [path for path in paths
                if path != self._path and not _locked(path)]

    def close(self):
        with self._lock:
            if self._file is not None:
                self._file.close()  # releases the lock
                self._file = None


def _locked(path):
    try:
        with open(path, encoding="utf-8") as spool:
            try:
                fcntl.flock(spool, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(spool, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return True


def read(path):
    """Records of a spool file; a torn last line (a crash mid-write) is
    skipped with a warning."""
    records = []
    with open(path, encoding="utf-8") as spool:
        for number, line in enumerate(spool, 1):
            if not line.strip():
                continue
            try:
                records.append(decode(line))
            except (ValueError, KeyError, TypeError) as exc:
                LOG.warning("notifbus: skipping unreadable line %d of %s: "
                            "%s", number, path, exc)
    return records
