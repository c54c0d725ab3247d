"""``notifbus bench --producers 1,2,4 --consumers 1,2,4``: how the rate
grows with producer processes, and with consumers in one pool.

Producers: for each row kind (``--rows``) and each count N of
``--producers``, N child processes (mode ``produce`` of
:mod:`notifbus.bench.worker`) publish to one topic of ``--partitions``
partitions, each ``count / N`` notifications (contiguous blocks of
sequence numbers). Each opens its client and sends its warm-up
notification, says it is ready, and waits for ``go`` on its stdin: the
bench tells every one at once. The group's rate is the notifications
acknowledged over the seconds from the earliest start to the last
acknowledgement of any process (wall clock, one machine).

Consumers: a child publishes ``count`` notifications once (notifbus
buffered); then for each count N of ``--consumers``, N child processes
(mode ``consume``) each start an oslo notification listener (batch, or
plain with ``--listener plain``) in one pool, that is one consumer group
sharing the topic's partitions, on ``go``; the bench tells them ``stop``
once together they received every notification, or nothing new came for
``--consume-wait`` seconds. Each reports the sequence numbers it
received: the group's rate is the distinct notifications received over
the seconds from the first listener started to the last notification;
lost and duplicates count over the union.

Speed-up is each group's rate over the rate with one process, of the
same kind, in the same run.
"""

import sys
import threading
import time
import traceback

from notifbus.bench import clients, listeners, runner, senders, stats
from notifbus.bench.results import (
    ConsumerMember,
    ConsumerPool,
    ProducerGroup,
    ProducerMember,
)

FILL_KIND = "notifbus-buffered"
#: how often the bench looks at the children's progress
POLL_S = 0.05
#: once a pool received every notification, how long it must stay quiet
#: before it is stopped (late duplicates are counted too)
SETTLE_S = 1.0
#: a consumer counts what it receives in buckets of this many seconds
BUCKET_S = 0.05


def parse_counts(text, what="--producers"):
    """Process counts from ``"1,2,4"``: sorted, unique, positive.

    :raises ValueError: not a comma-separated list of positive integers.
    """
    counts = set()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{what}: {part!r} is not a number") from None
        if value < 1:
            raise ValueError(f"{what}: {value} is not a positive count")
        counts.add(value)
    if not counts:
        raise ValueError(f"{what} names no count")
    return sorted(counts)


def shares(count, processes):
    """``(first, count)`` of each process: contiguous blocks covering
    ``range(count)``."""
    return [(block.start, len(block))
            for block in senders.blocks(count, processes)]


def to_ranges(seqs):
    """Sorted ``[[first, last], ...]`` of the integers in ``seqs``."""
    ranges = []
    for seq in sorted(seqs):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def union_size(range_lists):
    """How many distinct integers lists of ``[first, last]`` ranges
    cover."""
    merged = sorted((first, last) for ranges in range_lists
                    for first, last in ranges)
    total, end = 0, None
    for first, last in merged:
        if end is None or first > end:
            total += last - first + 1
            end = last
        elif last > end:
            total += last - end
            end = last
    return total


# -- aggregation (no I/O) ---------------------------------------------------


def aggregate_producers(members, count):
    """The group's figures (a :class:`~notifbus.bench.results.
    ProducerGroup`, without its row) from its members'
    (:class:`~notifbus.bench.results.ProducerMember`)."""
    sent = sum(m.sent for m in members)
    failed = sum(m.send_failures or 0 for m in members)
    starts = [m.started_at for m in members if m.started_at]
    ends = [m.ended_at for m in members if m.ended_at]
    wall = (max(ends) - min(starts)) if starts and ends else None
    acked = sent - failed
    errors = [m.error for m in members if m.error]
    return ProducerGroup(
        processes=len(members), count=count, sent=sent, acked=acked,
        unacked=sent - acked, wall_s=wall,
        msgs_per_s=stats.rate(acked, wall),
        per_process_msgs_per_s=[m.msgs_per_s for m in members],
        error="; ".join(errors) if errors else None)


def aggregate_consumers(members, count):
    """The pool's figures (a :class:`~notifbus.bench.results.
    ConsumerPool`, without its row and lag) from its members'
    (:class:`~notifbus.bench.results.ConsumerMember`)."""
    unique = union_size([m.ranges for m in members])
    received = sum(m.received for m in members)
    # a listener may dispatch its first notification before its start()
    # has returned: the clock starts at whichever came first
    starts = [min(t for t in (m.started_at, m.first_at) if t)
              for m in members if m.started_at or m.first_at]
    lasts = [m.last_at for m in members if m.last_at]
    seconds = (max(lasts) - min(starts)) if starts and lasts else None
    gos = [m.go_at for m in members if m.go_at]
    joined = [m.started_at for m in members if m.started_at]
    errors = [m.error for m in members if m.error]
    steady = steady_rate(members) if len(joined) == len(members) else {}
    return ConsumerPool(
        consumers=len(members), count=count, received=received,
        unique=unique, lost=count - unique, duplicates=received - unique,
        seconds=seconds, msgs_per_s=stats.rate(unique, seconds),
        join_s=(max(joined) - min(gos)) if joined and gos else None,
        drain_s=(max(lasts) - min(gos)) if lasts and gos else None,
        per_member=[m.unique for m in members],
        after_join=steady.get("count"),
        joined_msgs_per_s=steady.get("msgs_per_s"),
        error="; ".join(errors) if errors else None)


def steady_rate(members, bucket_s=BUCKET_S):
    """The rate once every member had joined: the notifications received
    (from the members' ``buckets``, ``[index, count]`` per ``bucket_s``
    seconds of wall clock) from the last member's join to the last
    notification; ``{"count", "seconds", "msgs_per_s"}``."""
    joined = max(m.started_at for m in members)
    lasts = [m.last_at for m in members if m.last_at]
    count = sum(n for m in members for index, n in m.buckets
                if (index + 0.5) * bucket_s >= joined)
    seconds = (max(lasts) - joined) if lasts else None
    return {"count": count, "seconds": seconds,
            "msgs_per_s": stats.rate(count, seconds)}


def add_speedups(entries, key, rate="msgs_per_s", name="speedup"):
    """Set each entry's ``speedup`` (attribute ``name``): its ``rate``
    over that of the entry of the same row whose ``key`` (``processes``
    or ``consumers``) is 1."""
    single = {e.row: getattr(e, rate) for e in entries
              if getattr(e, key) == 1}
    for entry in entries:
        setattr(entry, name, stats.ratio(getattr(entry, rate),
                                         single.get(entry.row)))
    return entries


def group_lag(bootstrap, group, topic, timeout_s=10.0):
    """Consumer lag of ``group`` on ``topic``: the records between the
    group's committed offset and the log end offset, summed over the
    partitions (a partition without a commit counts from its log start
    offset); ``None`` when the broker could not say within
    ``timeout_s``."""
    import kafka
    from kafka.errors import KafkaError

    admin = consumer = None
    try:
        admin = kafka.KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="notifbus-bench",
            request_timeout_ms=int(timeout_s * 1000))
        committed = admin.list_group_offsets({group: None}).get(group, {})
        consumer = kafka.KafkaConsumer(
            bootstrap_servers=bootstrap, client_id="notifbus-bench",
            enable_auto_commit=False,
            request_timeout_ms=int(timeout_s * 1000) + 1000)
        partitions = [kafka.TopicPartition(topic, p) for p in
                      consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
    except (KafkaError, OSError):
        return None
    finally:
        for client in (admin, consumer):
            if client is not None:
                client.close()
    lag = 0
    for partition in partitions:
        found = committed.get(partition)
        offset = found.offset if found is not None and found.offset >= 0 \
            else starts[partition]
        lag += max(ends[partition] - offset, 0)
    return lag


# -- the children (worker side) ----------------------------------------------


def run_member(spec, reporter):
    """One member of a group, in its child process: the JSON-ready dict
    of its :class:`~notifbus.bench.results.ProducerMember` or
    :class:`~notifbus.bench.results.ConsumerMember`."""
    if spec["mode"] == "produce":
        return _produce(spec, reporter)
    return _consume(spec, reporter)


def _wait_for(word):
    """Block until the bench writes ``word`` on stdin; ``False`` if
    stdin closed first."""
    for line in sys.stdin:
        if line.strip() == word:
            return True
    return False


def _produce(spec, reporter):
    row = spec["row"]
    first, count = spec["first"], spec["count"]
    result = ProducerMember(member=spec.get("member", 0), row=row["name"],
                            kind=row["kind"], senders=row["senders"],
                            first=first, count=count)
    deadline = time.monotonic() + spec["budget_s"]
    target = clients.make(spec)
    try:
        reporter.phase("prepare")
        target.prepare()
        target.open()
        reporter.phase("warm-up")
        target.warm_up()
        if spec.get("wait_go"):
            reporter.phase("ready")
            if not _wait_for("go"):
                raise RuntimeError("the bench went away before go")
        reporter.phase("publish", total=count)
        started = time.time()
        outcome = senders.run(lambda seq: target.send(first + seq), count,
                              row["senders"], deadline=deadline,
                              on_start=reporter.progress)
        reporter.phase("flush")
        target.finish()
        ended = time.time()
        failed, first_failure = target.failures()
        result.sent = outcome.sent
        result.started_at, result.ended_at = started, ended
        result.msgs_per_s = stats.rate(outcome.sent, ended - started)
        result.send_failures = failed
        if outcome.error:
            result.error = outcome.error
        elif outcome.stopped_at_deadline:
            result.error = (f"time limit reached: {outcome.sent} of "
                            f"{count} sent")
        elif failed:
            result.error = f"{failed} failed: {first_failure}"
    except Exception as exc:  # noqa: BLE001 - the member reports it
        result.error = f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    finally:
        reporter.phase("close")
        try:
            target.close()
        except Exception as exc:  # noqa: BLE001 - keep closing
            print(f"closing failed: {exc!r}", file=sys.stderr)
    return result.to_json()


class GroupCollector(listeners.BatchCollector):
    """Counts what a member received, from either listener style, and
    when the first notification came."""

    def __init__(self, count):
        super().__init__(count)
        self.first_at = None
        self.buckets = {}
        self._count_lock = threading.Lock()

    def add(self, payloads):
        with self._count_lock:
            before = len(self.seen)
            super().add(payloads)
            new = len(self.seen) - before
            if new:
                key = int(time.time() / BUCKET_S)
                self.buckets[key] = self.buckets.get(key, 0) + new

    def info(self, *args):
        if len(args) == 1:  # batch listener: a list of messages
            payloads = [message.get("payload") for message in args[0]]
        else:  # plain listener: ctxt, publisher_id, event_type, payload..
            payloads = [args[3]]
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.add(payloads)


def _wall(monotonic):
    """A ``time.monotonic()`` value as wall-clock time."""
    if monotonic is None:
        return None
    return time.time() - (time.monotonic() - monotonic)


def _consume(spec, reporter):
    count, mode = spec["count"], spec.get("listener", "batch")
    result = ConsumerMember(member=spec.get("member", 0), count=count,
                            listener=mode, pool=spec["pool"])
    target = clients.NotifbusTarget(spec, "confirmed")
    transport = None
    try:
        reporter.phase("prepare")
        transport = target.listener_transport()
        collector = GroupCollector(count)
        server = listeners.new_listener(transport, target.topic, mode,
                                        collector, spec["pool"])
        reporter.phase("ready")
        if not _wait_for("go"):
            raise RuntimeError("the bench went away before go")
        go_at = time.time()
        reporter.phase("join")
        server.start()
        started_at = time.time()
        reporter.phase("consume", total=count,
                       done=lambda: len(collector.seen))
        stopped = threading.Event()
        threading.Thread(target=lambda: (_wait_for("stop"), stopped.set()),
                         daemon=True).start()
        stopped.wait(spec["budget_s"])
        server.stop()
        server.wait()
        with collector._count_lock:
            seen = set(collector.seen)
            received = collector.received
            buckets = sorted(collector.buckets.items())
        result.received, result.unique = received, len(seen)
        result.ranges = to_ranges(seen)
        result.buckets = [list(bucket) for bucket in buckets]
        result.go_at, result.started_at = go_at, started_at
        result.first_at = _wall(collector.first_at)
        result.last_at = _wall(collector.last_at)
    except Exception as exc:  # noqa: BLE001 - the member reports it
        result.error = f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    finally:
        reporter.phase("close")
        if transport is not None:
            transport.cleanup()
    return result.to_json()


# -- the bench (parent side) -------------------------------------------------


class GroupDisplay:
    """Shows a group's progress as one row: the members' phases (each
    once, ``join/ready`` while they differ) and the sum of their
    progress."""

    def __init__(self, display, members, total):
        self.display = display
        self.total = total
        self.states = [{} for _ in range(members)]
        self.lock = threading.Lock()

    def member(self, index):
        group = self

        class Member:
            def update(self, state):
                group.update(index, state)

            def message(self, text):
                group.display.message(text)

        return Member()

    def update(self, index, state):
        with self.lock:
            self.states[index] = state
            phase = "/".join(sorted({s.get("phase") or "starting"
                                     for s in self.states}))
            done = sum(s.get("done", 0) for s in self.states)
        self.display.update({"phase": phase, "done": done,
                             "total": self.total if done else 0})

    def done(self):
        with self.lock:
            return sum(s.get("done", 0) for s in self.states)


def run_group(specs, timeout, display, *, total, debug=False,
              stop_when=None, quiet_s=None):
    """Run ``specs`` as one group: start every child, wait until all are
    ready, tell them ``go`` at once; with ``stop_when(done)``, tell them
    ``stop`` once it is true and the group has been quiet for
    ``SETTLE_S`` (or quiet for ``quiet_s`` whatever the count). Returns
    the members' results, :class:`~notifbus.bench.results.ProducerMember`
    or :class:`~notifbus.bench.results.ConsumerMember` by the specs'
    ``mode`` (failed ones with an ``error``)."""
    group = GroupDisplay(display, len(specs), total)
    deadline = time.monotonic() + timeout
    children = []
    codes = [None] * len(specs)
    failed = [{"member": i, "error": None} for i in range(len(specs))]
    try:
        for index, spec in enumerate(specs):
            children.append(runner.Child(spec, group.member(index),
                                         debug=debug, control=True))
        error = _wait_ready(children, deadline)
        if error is None:
            for child in children:
                child.tell("go")
            if stop_when is not None:
                _wait_stop(children, group, stop_when, quiet_s,
                           deadline - runner.CLOSE_MARGIN_S)
                for child in children:
                    child.tell("stop")
        for index, child in enumerate(children):
            if error is not None and child.process.poll() is None:
                # never told to go: it waits for nothing else
                failed[index]["error"] = f"{error} ({child.where()}); stopped"
                child.stop()
                continue
            codes[index] = child.wait(max(deadline - time.monotonic(),
                                          0.1))
            if codes[index] is None:
                failed[index]["error"] = (
                    f"timed out after {timeout:.0f} s ({child.where()}); "
                    f"stopped")
                child.stop()
        for child in children:
            for reader in child.readers:
                reader.join(5.0)
    finally:
        # on Ctrl-C or any error of our own: the children go first
        for child in children:
            child.stop()
    results = []
    for index, child in enumerate(children):
        found = failed[index]
        if not found["error"]:
            found = child.result(codes[index], found)
        member = (ProducerMember if specs[index]["mode"] == "produce"
                  else ConsumerMember)
        results.append(member.from_json(found))
    return results


def _wait_ready(children, deadline):
    while True:
        phases = [child.state.get("phase") for child in children]
        if all(phase == "ready" for phase in phases):
            return None
        if any(child.process.poll() is not None for child in children):
            return "a member exited before it was ready"
        if time.monotonic() > deadline:
            return "timed out before every member was ready"
        time.sleep(POLL_S)


def _wait_stop(children, group, stop_when, quiet_s, deadline):
    """Until ``stop_when(done)`` and quiet for ``SETTLE_S``, quiet for
    ``quiet_s``, every member gone, or ``deadline``."""
    last, changed = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = group.done()
        now = time.monotonic()
        if done != last:
            last, changed = done, now
        if stop_when(done) and now - changed >= SETTLE_S:
            return
        if quiet_s is not None and now - changed >= quiet_s:
            return
        if all(child.process.poll() is not None for child in children):
            return
        time.sleep(POLL_S)


def _row(kind, senders_count):
    from notifbus.bench.rows import KINDS, Row

    row = Row(kind, senders_count)
    return {"name": row.name, "kind": kind, "senders": senders_count,
            "kafka": KINDS[kind].kafka, "rabbit": KINDS[kind].rabbit,
            "consume": KINDS[kind].consume}


def run_producers(rows, counts, base, timeout, display, *, step=0,
                  debug=False):
    """One :class:`~notifbus.bench.results.ProducerGroup` per row and
    process count."""
    entries = []
    count = base["count"]
    for row in rows:
        for processes in counts:
            step += 1
            name = f"{row.name} x{processes} processes"
            display.row_started(step, name)
            topic = f"{base['run_id']}-{row.name}-p{processes}"
            specs = []
            for member, (first, share) in enumerate(shares(count,
                                                           processes)):
                spec = dict(base, mode="produce", member=member,
                            first=first, count=share, topic=topic,
                            wait_go=True, row=_row(row.kind, row.senders),
                            budget_s=_budget(timeout))
                specs.append(spec)
            members = run_group(specs, timeout, display, total=count,
                                debug=debug)
            entry = aggregate_producers(members, count)
            entry.row, entry.kind, entry.senders, entry.topic = (
                row.name, row.kind, row.senders, topic)
            entries.append(entry)
            display.row_finished(_summary(entry))
    return add_speedups(entries, "processes")


def run_consumers(counts, base, timeout, display, *, listener="batch",
                  step=0, debug=False):
    """Fill a topic, then one :class:`~notifbus.bench.results.
    ConsumerPool` per pool size, with its lag once stopped; ``(pools,
    fill)``, ``fill`` the :class:`~notifbus.bench.results.ProducerMember`
    that filled the topic."""
    count = base["count"]
    topic = f"{base['run_id']}-consume"
    step += 1
    display.row_started(step, f"fill {topic}")
    fill = dict(base, mode="produce", member=0, first=0, topic=topic,
                wait_go=False, row=_row(FILL_KIND, 1),
                budget_s=_budget(timeout))
    filled = ProducerMember.from_json(
        runner.run_child(fill, timeout, display, debug=debug))
    display.row_finished(f"{filled.sent} sent" + (
        f"; error: {filled.error}" if filled.error else ""))
    entries = []
    if filled.error:
        return entries, filled
    for consumers in counts:
        step += 1
        pool = f"{topic}-c{consumers}"
        display.row_started(step, f"{listener} listeners x{consumers}")
        specs = [dict(base, mode="consume", member=member, topic=topic,
                      pool=pool, listener=listener,
                      row=_row(FILL_KIND, 1), budget_s=_budget(timeout))
                 for member in range(consumers)]
        members = run_group(
            specs, timeout, display, total=count, debug=debug,
            stop_when=lambda done: done >= count,
            quiet_s=base["consume_wait_s"])
        entry = aggregate_consumers(members, count)
        entry.row, entry.listener, entry.partitions, entry.pool = (
            f"{listener} listeners", listener, base["partitions"], pool)
        entry.lag = group_lag(base["bootstrap"], pool, f"{topic}.info")
        entries.append(entry)
        display.row_finished(_summary(entry))
    add_speedups(entries, "consumers", "joined_msgs_per_s", "joined_speedup")
    return add_speedups(entries, "consumers"), filled


def _budget(timeout):
    return max(timeout - runner.CLOSE_MARGIN_S, timeout / 2)


def _summary(entry):
    text = (f"{entry.msgs_per_s:,.0f} msgs/s" if entry.msgs_per_s
            else "no rate")
    if entry.error:
        text += f"; error: {entry.error}"
    return text
