"""A notifbus backend keeping its log in one SQLite file.

Connection string::

    notifbus+example:///?path=/var/lib/notifbus/log.sqlite

Every process that opens the same file shares its topics, groups and
offsets, so a notifier and its listeners may live in different processes
of one host. It is an example of a third-party backend, small enough to
read in one sitting, and correct: it passes notifbus's conformance kit.

Features:

* topics with a fixed number of partitions, each an append-only table of
  records whose offsets have no gaps; a send returns once the SQLite
  transaction that wrote it is committed (``synchronous=FULL``);
* consumer groups with committed offsets and round-robin assignment of
  partitions to the live members (a member is live while it polls within
  ``session_timeout_ms``); a partition changes hands only once its owner
  released it (after ``on_revoke``, so the bus commits first) or died;
* at least once: a new owner starts at the last offset committed, and a
  commit for a partition this member no longer owns is ignored;
* replay: :meth:`ExampleBackend.end_offsets`,
  :meth:`~ExampleBackend.offsets_for_time` and :meth:`~ExampleBackend.read`.

Options (group ``[notifbus_example]``, or query parameters of the URL):
``path``, ``session_timeout_ms``, ``poll_interval_ms``,
``auto_offset_reset``; see :meth:`ExampleBackend.list_opts`.

Limits: waiting consumers poll the file every ``poll_interval_ms``, and
SQLite serialises writers, so this suits tests, demos and small sites, not
a busy cloud.
"""

import base64
import contextlib
import json
import sqlite3
import threading
import time

from oslo_config import cfg

from notifbus import errors
from notifbus.backends import base
from notifbus.record import Received

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT, partition INTEGER, offset INTEGER, key BLOB, value BLOB,
    headers TEXT, timestamp_ms INTEGER,
    PRIMARY KEY (topic, partition, offset));
CREATE TABLE IF NOT EXISTS members (
    member_id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL,
    topics TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owners (
    grp TEXT, topic TEXT, partition INTEGER, member_id INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition));
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT, topic TEXT, partition INTEGER, offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition));
"""


def _now_ms():
    return int(time.time() * 1000)


class Database:
    """One SQLite connection, shared by the threads of a backend."""

    def __init__(self, path, busy_timeout_s=10.0):
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, timeout=busy_timeout_s,
                                         isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise errors.DeliveryError(
                f"cannot open the notifbus example log {path!r}: {exc}; "
                f"check the path option") from exc

    @contextlib.contextmanager
    def transaction(self, write=False):
        """A cursor in one transaction; ``write`` takes the write lock
        at once, so that reads and writes in it see one state."""
        with self._lock:
            cursor = self._conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cursor
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(cursor)
                raise errors.DeliveryError(
                    f"notifbus example log {self.path!r}: {exc}") from exc
            except BaseException:
                _rollback(cursor)
                raise

    def close(self):
        with self._lock:
            self._conn.close()


def _rollback(cursor):
    try:
        cursor.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _partition_counts(cursor, topics):
    counts = {}
    for topic in topics:
        row = cursor.execute("SELECT partitions FROM topics WHERE topic=?",
                             (topic,)).fetchone()
        if row:
            counts[topic] = row[0]
    return counts


def _to_received(row):
    topic, partition, offset, key, value, headers, timestamp_ms = row
    return Received(
        topic=topic, partition=partition, offset=offset, value=value,
        key=key, headers=tuple((name, base64.b64decode(data))
                               for name, data in json.loads(headers)),
        timestamp_ms=timestamp_ms)


_COLUMNS = "topic, partition, offset, key, value, headers, timestamp_ms"


class ExampleBackend(base.Backend):
    """Backend over one SQLite file, named by the ``path`` option."""

    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        if self.hosts:
            raise errors.ConfigError(
                "the example backend takes no host: use "
                "notifbus+example:///?path=/path/to/log.sqlite")
        # self.opts: each option of list_opts(), given or its default
        self.path = self.opts.path
        self.session_timeout_ms = self.opts.session_timeout_ms
        self.poll_interval_s = self.opts.poll_interval_s
        self.auto_offset_reset = self.opts.auto_offset_reset
        self._db = None
        self._lock = threading.Lock()

    @classmethod
    def list_opts(cls):
        return [
            cfg.StrOpt("path", default="notifbus-example.sqlite",
                       help="SQLite file holding the log; every process "
                            "naming it shares its topics and groups."),
            cfg.IntOpt("session_timeout_ms", default=10000, min=100,
                       help="A group member that has not polled for this "
                            "long is dead: its partitions go to the "
                            "others."),
            cfg.IntOpt("poll_interval_ms", default=20, min=1,
                       help="How often a waiting consumer looks for new "
                            "records, in milliseconds."),
            cfg.StrOpt("auto_offset_reset", default="earliest",
                       choices=["earliest", "latest"],
                       help="Where a group with no committed offset "
                            "starts reading a partition."),
        ]

    @property
    def db(self):
        """The database, opened on first use (construction does no I/O).
        """
        with self._lock:
            if self._db is None:
                self._db = Database(self.path)
            return self._db

    def ensure_topic(self, topic, partitions, timeout):
        with self.db.transaction(write=True) as cur:
            cur.execute("INSERT OR IGNORE INTO topics VALUES (?, ?)",
                        (topic, partitions))
            return _partition_counts(cur, [topic])[topic]

    def produce(self, records, partitions, timeout):
        try:
            db = self.db
        except errors.DeliveryError as exc:
            return [exc] * len(records)
        results = []
        try:
            with db.transaction(write=True) as cur:
                counts = _partition_counts(cur, {r.topic for r in records})
                for record, partition in zip(records, partitions):
                    results.append(self._append(cur, counts, record,
                                                partition))
        except errors.DeliveryError as exc:  # nothing was committed
            return [exc] * len(records)
        return results

    def _append(self, cur, counts, record, partition):
        if not 0 <= partition < counts.get(record.topic, 0):
            return errors.DeliveryError(
                f"topic {record.topic!r} has no partition {partition} "
                f"(it has {counts.get(record.topic, 0)})", retriable=False)
        offset = cur.execute(
            "SELECT COALESCE(MAX(offset) + 1, 0) FROM records "
            "WHERE topic=? AND partition=?",
            (record.topic, partition)).fetchone()[0]
        headers = json.dumps([[name, base64.b64encode(value).decode()]
                              for name, value in record.headers])
        cur.execute(f"INSERT INTO records ({_COLUMNS}) VALUES "
                    f"(?, ?, ?, ?, ?, ?, ?)",
                    (record.topic, partition, offset, record.key,
                     record.value, headers,
                     record.timestamp_ms or _now_ms()))
        return None

    def subscribe(self, topics, group, on_revoke=None):
        return ExampleConsumer(self, topics, group, on_revoke)

    # replay

    def end_offsets(self, topic, timeout):
        with self.db.transaction() as cur:
            count = _partition_counts(cur, [topic]).get(topic, 0)
            return {p: cur.execute(
                "SELECT COALESCE(MAX(offset) + 1, 0) FROM records "
                "WHERE topic=? AND partition=?", (topic, p)).fetchone()[0]
                for p in range(count)}

    def offsets_for_time(self, topic, timestamp_ms, timeout):
        found = {}
        ends = self.end_offsets(topic, timeout)
        with self.db.transaction() as cur:
            for partition, end in ends.items():
                first = cur.execute(
                    "SELECT MIN(offset) FROM records WHERE topic=? AND "
                    "partition=? AND timestamp_ms>=?",
                    (topic, partition, timestamp_ms)).fetchone()[0]
                found[partition] = end if first is None else first
        return found

    def read(self, topic, partition, offset, max_records, timeout):
        with self.db.transaction() as cur:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM records WHERE topic=? AND "
                f"partition=? AND offset>=? ORDER BY offset LIMIT ?",
                (topic, partition, offset, max_records)).fetchall()
        return [_to_received(row) for row in rows]

    def close(self, timeout=5.0):
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()


class ExampleConsumer(base.Consumer):
    """A member of a group; its row in ``members`` is its membership, its
    rows in ``owners`` the partitions it reads."""

    def __init__(self, backend, topics, group, on_revoke):
        self.topics = sorted(set(topics))
        if not self.topics:
            raise ValueError("subscribe needs at least one topic")
        self.group = group
        self._backend = backend
        self._db = backend.db
        self._on_revoke = on_revoke
        self._positions = {}  # owned partition -> next offset to read
        self._delivered = set()  # owned partitions poll returned from
        self._target = set()
        self._woken = threading.Event()
        self._closed = False
        self._beat_ms = 0
        self._rotation = 0
        with self._db.transaction(write=True) as cur:
            cur.execute("INSERT INTO members (grp, topics, heartbeat_ms) "
                        "VALUES (?, ?, ?)",
                        (group, json.dumps(self.topics), _now_ms()))
            self.member_id = cur.lastrowid

    # membership

    def _live(self, cur, now):
        """``{member_id: topics}`` of the group's live members."""
        horizon = now - self._backend.session_timeout_ms
        return {member: set(json.loads(topics)) for member, topics in
                cur.execute("SELECT member_id, topics FROM members WHERE "
                            "grp=? AND heartbeat_ms>=? ORDER BY member_id",
                            (self.group, horizon))}

    def _assign(self, cur, live):
        """This member's partitions: every partition of the members'
        topics, dealt round-robin to the members reading its topic."""
        members = list(live.items())
        topics = sorted(set().union(*live.values())) if live else []
        counts = _partition_counts(cur, topics)
        mine, cursor = set(), 0
        for topic in topics:
            for partition in range(counts.get(topic, 0)):
                for step in range(len(members)):
                    member, wanted = members[(cursor + step) % len(members)]
                    if topic in wanted:
                        if member == self.member_id:
                            mine.add((topic, partition))
                        cursor = (cursor + step + 1) % len(members)
                        break
        return mine

    def _sync(self, may_revoke):
        """Heartbeat; give up the partitions assigned elsewhere (calling
        ``on_revoke`` first when ``may_revoke``) and take the assigned
        ones that nobody live holds."""
        now = _now_ms()
        beat = now - self._beat_ms >= self._backend.session_timeout_ms / 4
        with self._db.transaction(write=beat) as cur:
            if beat:  # and forget the members that stopped beating
                cur.execute("INSERT OR REPLACE INTO members (member_id, "
                            "grp, topics, heartbeat_ms) VALUES (?, ?, ?, ?)",
                            (self.member_id, self.group,
                             json.dumps(self.topics), now))
                cur.execute("DELETE FROM members WHERE grp=? AND "
                            "heartbeat_ms<?", (self.group, now -
                                               self._backend
                                               .session_timeout_ms))
                self._beat_ms = now
            live = self._live(cur, now)
            self._target = self._assign(cur, live)
            held = {(t, p) for t, p in cur.execute(
                "SELECT topic, partition FROM owners WHERE grp=? AND "
                "member_id=?", (self.group, self.member_id))}
        for tp in set(self._positions) - held:  # taken over meanwhile
            self._forget(tp)
        lost = set(self._positions) - self._target
        if lost & self._delivered and not may_revoke:
            lost -= self._delivered  # poll revokes them, with on_revoke
        if lost:
            if may_revoke and self._on_revoke is not None:
                self._on_revoke(set(lost))
            with self._db.transaction(write=True) as cur:
                cur.executemany(
                    "DELETE FROM owners WHERE grp=? AND topic=? AND "
                    "partition=? AND member_id=?",
                    [(self.group, t, p, self.member_id) for t, p in lost])
            for tp in lost:
                self._forget(tp)
        if self._target - set(self._positions):
            self._take(self._target - set(self._positions))

    def _take(self, wanted):
        with self._db.transaction(write=True) as cur:
            live = self._live(cur, _now_ms())
            for topic, partition in sorted(wanted):
                row = cur.execute(
                    "SELECT member_id FROM owners WHERE grp=? AND topic=? "
                    "AND partition=?", (self.group, topic, partition)
                ).fetchone()
                if row and row[0] != self.member_id and row[0] in live:
                    continue  # its owner has not released it yet
                cur.execute("INSERT OR REPLACE INTO owners VALUES "
                            "(?, ?, ?, ?)", (self.group, topic, partition,
                                             self.member_id))
                self._positions[(topic, partition)] = self._start(
                    cur, topic, partition)

    def _start(self, cur, topic, partition):
        row = cur.execute("SELECT offset FROM offsets WHERE grp=? AND "
                          "topic=? AND partition=?",
                          (self.group, topic, partition)).fetchone()
        if row:
            return row[0]
        if self._backend.auto_offset_reset == "latest":
            return cur.execute(
                "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE "
                "topic=? AND partition=?", (topic, partition)).fetchone()[0]
        return 0

    def _forget(self, tp):
        self._positions.pop(tp, None)
        self._delivered.discard(tp)

    # the Consumer API

    def poll(self, timeout, max_records):
        deadline = time.monotonic() + timeout
        while not self._closed:
            if self._woken.is_set():
                self._woken.clear()
                return []
            try:
                self._sync(may_revoke=True)
                found = self._fetch(max_records)
            except errors.DeliveryError:
                found = []  # retried at the next turn
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._woken.wait(min(left, self._backend.poll_interval_s))
        return []

    def _fetch(self, max_records):
        owned = sorted(self._positions)
        if not owned:
            return []
        start = self._rotation % len(owned)
        self._rotation += 1
        found = []
        with self._db.transaction() as cur:
            for tp in owned[start:] + owned[:start]:
                left = max_records - len(found)
                if left <= 0:
                    break
                rows = cur.execute(
                    f"SELECT {_COLUMNS} FROM records WHERE topic=? AND "
                    f"partition=? AND offset>=? ORDER BY offset LIMIT ?",
                    (*tp, self._positions[tp], left)).fetchall()
                if rows:
                    self._positions[tp] = rows[-1][2] + 1
                    self._delivered.add(tp)
                    found += [_to_received(row) for row in rows]
        return found

    def commit(self, offsets):
        with self._db.transaction(write=True) as cur:
            for (topic, partition), offset in offsets.items():
                owner = cur.execute(
                    "SELECT member_id FROM owners WHERE grp=? AND topic=? "
                    "AND partition=?", (self.group, topic, partition)
                ).fetchone()
                if not owner or owner[0] != self.member_id:
                    continue  # not ours any more: its new owner re-reads
                cur.execute("INSERT OR REPLACE INTO offsets VALUES "
                            "(?, ?, ?, ?)", (self.group, topic, partition,
                                             offset))

    def seek(self, topic, partition, offset):
        if (topic, partition) in self._positions:
            self._positions[(topic, partition)] = offset

    def assignment(self):
        return set(self._positions)

    def assigned(self):
        """Whether this member owns every partition the group assigned it:
        a new assignment is applied here only for partitions nothing was
        read from yet (there is nothing to commit for them); :meth:`poll`
        applies the rest, calling ``on_revoke`` first."""
        if self._closed:
            return False
        try:
            self._sync(may_revoke=False)
        except errors.DeliveryError:
            return False  # asked again after the next poll
        return bool(self._target) and set(self._positions) == self._target

    def wakeup(self):
        self._woken.set()

    def close(self, timeout=5.0):
        """Leave the group: the others take its partitions from the last
        commit. ``on_revoke`` is not called: commit before closing."""
        if self._closed:
            return
        self._closed = True
        self._positions.clear()
        with self._db.transaction(write=True) as cur:
            cur.execute("DELETE FROM owners WHERE grp=? AND member_id=?",
                        (self.group, self.member_id))
            cur.execute("DELETE FROM members WHERE member_id=?",
                        (self.member_id,))
