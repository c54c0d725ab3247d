"""The bench's results as a text table, with notes under it."""

from notifbus.bench.results import Latency, RssSummary
from notifbus.bench.rowrun import E2E_RATE

#: headings of the columns after the row name
COLUMNS = ("snd", "msgs/s", "MB/s", "CPU us", "drv us", "p50 ms",
           "p99 ms", "e2e p50", "e2e p99", "RSS MB", "lost p/b", "dup p/b",
           "cons/s plain", "cons/s batch", "vs oslo-kafka", "vs 1 snd")
GAP = 2
FAILED_WIDTH = 90


def number(value, digits=0):
    """``12,345`` / ``1.23``; ``-`` for ``None``."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def times(value):
    """A ratio as ``0.52x``; ``-`` for ``None``."""
    return "-" if value is None else f"{value:.2f}x"


def short_ms(value):
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def consume_cell(found):
    """Rate of a listener (a :class:`~notifbus.bench.results.ConsumeResult`
    or ``None``); ``*`` when a note qualifies it; ``partial*`` when it gave
    up with some notifications missing; what happened when it received
    nothing."""
    if not found:
        return "-"
    if found.note and found.lost and found.unique:
        return "partial*"
    if found.msgs_per_s:
        return number(found.msgs_per_s) + ("*" if found.note else "")
    note = found.note or "none"
    if note.startswith("no delivery within "):
        return "none in " + note[len("no delivery within "):].replace(
            " ", "")
    return "none"


def pair(consume, key):
    if not consume:
        return "-"
    return "/".join(str(getattr(consume[mode], key)) if mode in consume
                    else "-" for mode in ("plain", "batch"))


def cells(result):
    consume = result.consume or {}
    latency = result.latency or Latency()
    e2e = consume.get("e2e")
    e2e = (e2e and e2e.latency) or Latency()
    return [str(result.senders),
            number(result.msgs_per_s),
            number(result.mb_per_s, 2),
            number(result.cpu_us_per_msg),
            number(result.driver_cpu_us_per_msg),
            short_ms(latency.p50_ms),
            short_ms(latency.p99_ms),
            short_ms(e2e.p50_ms),
            short_ms(e2e.p99_ms),
            number(result.peak_rss_mb),
            pair(consume, "lost"), pair(consume, "duplicates"),
            consume_cell(consume.get("plain")),
            consume_cell(consume.get("batch")),
            times(result.vs_reference),
            times(result.vs_one_sender)]


def repeat_text(settings):
    """``, median of N runs`` for the settings of rows run N > 1 rounds
    (``--repeat``), else nothing."""
    repeat = settings.get("repeat") or 1
    return f", median of {repeat} runs" if repeat > 1 else ""


def notes(results):
    lines = []
    for result in results:
        name = result.row
        if result.error:
            lines.append(f"{name}: FAILED: {result.error}")
        runs = result.runs_msgs_per_s
        if runs:
            lines.append(f"{name}: runs at " + ", ".join(
                "failed" if rate is None else f"{rate:,.0f}"
                for rate in runs) + " msgs/s")
        for mode, found in (result.consume or {}).items():
            if found.end_to_end and mode in ("plain", "batch"):
                lines.append(
                    f"{name}: {mode} listener read end to end (the driver's "
                    f"consumer starts at the latest offset: the row's "
                    f"notifications were sent again while it listened)")
            if found.note:
                lines.append(f"{name}: {mode} listener: {found.note} "
                             f"({found.unique} of "
                             f"{result.count} received)")
    return lines


def format_table(results, title=None):
    """The table of ``results`` (:class:`~notifbus.bench.results.RowResult`
    objects, with ratios added), with a title line and notes."""
    name_width = max([len("row")] + [len(r.row) for r in results]) + GAP
    numbers = {id(r): cells(r) for r in results}
    widths = [max([len(heading)] + [len(row[index]) for row in
                                    numbers.values()]) + GAP
              for index, heading in enumerate(COLUMNS)]
    header = "row".ljust(name_width) + "".join(
        heading.rjust(width) for heading, width in zip(COLUMNS, widths))
    lines = [] if title is None else [title, ""]
    lines += [header, "-" * len(header)]
    for result in results:
        name = result.row.ljust(name_width)
        if result.error and not result.msgs_per_s:
            error = f"FAILED: {result.error}"
            if len(error) > FAILED_WIDTH:
                error = error[:FAILED_WIDTH - 3] + "..."
            lines.append(name + "    " + error)
            continue
        lines.append(name + "".join(
            cell.rjust(width) for cell, width in zip(numbers[id(result)],
                                                     widths)))
    extra = notes(results)
    if extra:
        lines += ["", "notes:"] + [f"  {line}" for line in extra]
    return "\n".join(lines)


LEGEND = """\
snd: senders; msgs/s and MB/s (payload bytes): publish rate, from the first
send until the client reports everything acknowledged or flushed; CPU
us: user + system CPU time of the row's process (every thread) over the
same span, in microseconds per notification; drv us: that minus the noop
row's, the driver's share (rows through oslo's Notifier);
p50/p99 ms: time of one send call; e2e p50/p99: milliseconds from a send
to its dispatch to a plain listener, with notifications sent at """ \
    f"""{E2E_RATE:g}/s
(Kafka rows that read back); RSS MB: peak RSS of the row's process
after publishing; lost p/b, dup p/b: notifications not received, and
received twice, by the plain/batch oslo listener; cons/s: rate at which
each listener received them (* qualified in the notes); vs oslo-kafka:
publish rate over that of oslo's builtin kafka driver in the same run;
vs 1 snd: over the same row with one sender."""


# -- memory and scaling runs --------------------------------------------------


def grid(headings, lines):
    """Text lines of a table: the first column left-aligned, the others
    right-aligned; a line that is a string (a failure) is written as is
    after the first cell."""
    cells = [line for line in lines if len(line) > 2]
    widths = [max([len(heading)] + [len(line[index]) for line in cells])
              + GAP for index, heading in enumerate(headings)]
    header = headings[0].ljust(widths[0]) + "".join(
        heading.rjust(width) for heading, width in zip(headings[1:],
                                                       widths[1:]))
    out = [header, "-" * len(header)]
    for line in lines:
        if len(line) == 2:
            out.append(line[0].ljust(widths[0]) + "    " + line[1])
            continue
        out.append(line[0].ljust(widths[0]) + "".join(
            cell.rjust(width) for cell, width in zip(line[1:],
                                                     widths[1:])))
    return out


def _failed(result, what=""):
    error = f"FAILED{what}: {result.error}"
    return error if len(error) <= FAILED_WIDTH else \
        error[:FAILED_WIDTH - 3] + "..."


def _count(value):
    return "-" if value is None else str(value)


def _mb_delta(value):
    return "-" if value is None else f"{value:+,.1f}"


def _consumed(result, key):
    consume = result.consume
    return "-" if not consume else str(getattr(consume, key))


LONG_COLUMNS = ("snd", "sent", "msgs/s", "RSS start", "RSS 10%", "RSS 50%",
                "RSS 100%", "growth MB", "RSS max", "held 10/100%",
                "unacked", "lost", "dup")
STALL_COLUMNS = ("snd", "stall s", "bound", "held max", "sent in stall",
                 "RSS start", "RSS stall", "growth MB", "retried",
                 "acked after s", "unacked", "lost", "dup")


def long_cells(result):
    """The cells of a :class:`~notifbus.bench.results.MemoryResult` of a
    long run."""
    rss = result.rss or RssSummary()
    return [str(result.senders), str(result.sent),
            number(result.msgs_per_s), number(result.rss_start_mb, 1),
            number(rss.p10_mb, 1), number(rss.p50_mb, 1),
            number(rss.p100_mb, 1), _mb_delta(rss.growth_mb),
            number(rss.max_mb, 1),
            f"{_count(rss.held_p10)}/{_count(rss.held_p100)}",
            _count(result.unacked),
            _consumed(result, "lost"), _consumed(result, "duplicates")]


def bound_cell(bound):
    if not bound:
        return "-"
    if "senders" in bound:
        return f"{bound['senders']} snd"
    return (f"{bound['max_buffer_records']} rec/"
            f"{bound['max_buffer_bytes'] / 1048576.0:.3g} MB")


def stall_cells(result):
    """The cells of a :class:`~notifbus.bench.results.MemoryResult` of a
    stall run."""
    return [str(result.senders), number(result.stall_s, 1),
            bound_cell(result.bound), _count(result.held_max),
            _count(result.sent_in_stall), number(result.rss_start_mb, 1),
            number(result.rss_stall_max_mb, 1), _mb_delta(result.growth_mb),
            _count((result.counters or {}).get("retried")),
            number(result.all_acked_after_s, 2), _count(result.unacked),
            _consumed(result, "lost"), _consumed(result, "duplicates")]


def _lines(results, cells_of, what=None):
    lines = []
    for result in results:
        name = result.row
        if result.error and not result.msgs_per_s:
            lines.append([name, _failed(result, what(result) if what
                                        else "")])
        else:
            lines.append([name] + cells_of(result))
    return lines


def _errors(results, what=None):
    return [f"{r.row}: FAILED{what(r) if what else ''}: "
            f"{r.error}" for r in results if r.error]


def _procs(entry):
    return f" ({entry.processes} procs)"


def _pool(entry):
    return f" ({entry.consumers} consumers)"


def format_memory(report):
    """The tables of ``notifbus bench --memory`` (a
    :class:`~notifbus.bench.results.Report` with ``memory``): the long
    run, then the stall."""
    memory = report.memory
    s = report.settings
    lines = [memory_title(report), ""]
    if memory.long:
        lines += [f"long publish: {s['count']:,} notifications per row, "
                  f"RSS (MB) when 10/50/100 % were sent", ""]
        lines += grid(("row",) + LONG_COLUMNS,
                      _lines(memory.long, long_cells))
        lines.append("")
    if memory.stall:
        lines += [f"broker stalled: {s['stall_count']:,} notifications per "
                  f"row, the broker stopped (SIGSTOP) for "
                  f"{s['stall_s']:g} s once {s['stall_at']:.0%} were sent",
                  ""]
        lines += grid(("row",) + STALL_COLUMNS,
                      _lines(memory.stall, stall_cells))
        lines.append("")
    extra = _errors(memory.all())
    if extra:
        lines += ["notes:"] + [f"  {line}" for line in extra]
    return "\n".join(lines).rstrip("\n")


def broker_name(settings):
    """The broker of a report's ``settings``, as the titles name it."""
    if not settings.get("kafka"):
        return "none"
    names = {"tansu": "embedded Tansu",
             "apache-kafka": "Apache Kafka (started by the bench)",
             "apache-kafka-cluster": "Apache Kafka, 3 nodes, 3 replicas "
                                     "(started by the bench)"}
    default = "embedded Tansu" if settings.get("embedded") else "Kafka"
    return f"{names.get(settings.get('broker'), default)} at " \
           f"{settings['kafka']}"


def memory_title(report):
    s, m = report.settings, report.machine
    return (f"notifbus bench --memory: {s['size']} bytes per notification, "
            f"acks={s['acks']}, {s['partitions']} partitions; "
            f"broker: {broker_name(s)}; machine: {m['cpus']} CPUs, "
            f"{m['system']}, Python {m['python']}")


MEMORY_LEGEND = """\
RSS: resident set size of the row's process, in MB, as /proc/self/statm
gives it at that moment (not a peak). Long publish: RSS start after the
warm-up; RSS 10%/50%/100% when that share of the notifications had been
sent; growth MB from 10% to 100% (flat: small, and not growing with
--count); RSS max the largest sample; held 10/100%: notifications sent
and not yet acknowledged at 10% and 100% (buffered: what the buffer
holds; it fills up to its bound early in a run, which is growth that stops
at the bound); unacked: sent minus acknowledged
(notifbus's counters); lost/dup: notifications a batch listener did not
receive, or received twice, reading the topic afterwards. Broker stalled:
bound: what limits what a row holds (buffered: max_buffer_records and
max_buffer_bytes; confirmed: one notification per sender); held max: most
notifications sent and not yet acknowledged during the stall; sent in
stall: send calls that returned during it; RSS start after the warm-up,
before publishing; RSS stall the largest sample during the stall, growth
MB between them (the stall's notifications included); retried:
attempts that failed and were retried (send timeouts during the stall);
acked after s: from the broker's SIGCONT until every notification was
acknowledged."""


SCALE_PRODUCER_COLUMNS = ("snd", "procs", "sent", "msgs/s", "speed-up",
                          "wall s", "msgs/s per process", "unacked")
SCALE_CONSUMER_COLUMNS = ("consumers", "partitions", "msgs/s", "speed-up",
                          "join s", "joined msgs/s", "joined speed-up",
                          "drain s", "lag", "per consumer", "lost", "dup")


def _per(values, digits=0):
    return "/".join(number(v, digits) if not isinstance(v, int)
                    else str(v) for v in values) or "-"


def producer_cells(entry):
    """The cells of a :class:`~notifbus.bench.results.ProducerGroup`."""
    return [str(entry.senders), str(entry.processes), _count(entry.sent),
            number(entry.msgs_per_s), times(entry.speedup),
            number(entry.wall_s, 2), _per(entry.per_process_msgs_per_s),
            _count(entry.unacked)]


def _joined(entry):
    """The rate once all had joined, and the share of the notifications
    it counts."""
    rate = entry.joined_msgs_per_s
    if rate is None:
        return "-"
    share = (entry.after_join or 0) / (entry.count or 1)
    return f"{number(rate)} ({share:.0%})"


def consumer_cells(entry):
    """The cells of a :class:`~notifbus.bench.results.ConsumerPool`."""
    return [str(entry.consumers), str(entry.partitions),
            number(entry.msgs_per_s), times(entry.speedup),
            number(entry.join_s, 2), _joined(entry),
            times(entry.joined_speedup), number(entry.drain_s, 2),
            _count(entry.lag), _per(entry.per_member),
            _count(entry.lost), _count(entry.duplicates)]


def format_scaling(report):
    """The tables of ``notifbus bench --producers/--consumers`` (a
    :class:`~notifbus.bench.results.Report` with ``scaling``)."""
    scaling = report.scaling
    s = report.settings
    lines = [scaling_title(report), ""]
    if scaling.producers is not None:
        lines += [f"producer processes: {s['count']:,} notifications per "
                  f"run, shared by the processes, to one topic", ""]
        lines += grid(("row",) + SCALE_PRODUCER_COLUMNS,
                      _lines(scaling.producers, producer_cells, _procs))
        lines.append("")
    if scaling.consumers is not None:
        lines += [f"consumers in one pool: {s['count']:,} notifications "
                  f"read from a topic filled beforehand", ""]
        lines += grid(("listener",) + SCALE_CONSUMER_COLUMNS,
                      _lines(scaling.consumers, consumer_cells, _pool))
        lines.append("")
    extra = (_errors(scaling.producers or [], _procs) +
             _errors(scaling.consumers or [], _pool))
    fill = scaling.fill
    if fill and fill.error:
        extra.append(f"filling the topic FAILED: {fill.error}")
    for entry in scaling.consumers or []:
        if entry.consumers > (entry.partitions or 0):
            extra.append(f"{entry.consumers} consumers for "
                         f"{entry.partitions} partitions: some have "
                         f"nothing to read")
    if extra:
        lines += ["notes:"] + [f"  {line}" for line in extra]
    return "\n".join(lines).rstrip("\n")


def scaling_title(report):
    s, m = report.settings, report.machine
    return (f"notifbus bench scaling: {s['size']} bytes per notification, "
            f"acks={s['acks']}, {s['partitions']} partitions; broker: "
            f"{broker_name(s)}; machine: {m['cpus']} CPUs "
            f"(os.cpu_count()), {m['system']}, Python {m['python']}")


SCALING_LEGEND = """\
procs: producer processes publishing at once, each its share of the
notifications, with snd senders each; msgs/s: notifications acknowledged
by all of them over the seconds from the first one's start to the last
acknowledgement (wall s); speed-up: over the same row with one process;
unacked: notifications sent and not acknowledged. consumers: oslo notification
listeners, each in a process of its own, in one pool (consumer group)
sharing the topic's partitions; msgs/s: distinct notifications received
by the pool over the seconds from the first listener started to the last
notification; join s: from go until the last listener had joined (its
start() returned); joined msgs/s: the rate from then on, with the share
of the notifications received then (a larger pool takes longer to form:
its members join, and the group rebalances, one after the other); drain
s: from go until the last notification; lag: records of the topic the
pool had not committed when it stopped (log end offsets minus the group's
committed offsets, from the broker); per consumer: what each received;
lost/dup: over all of them. Processes beyond the machine's cores share
them: the growth then says more about the cores than about notifbus."""
