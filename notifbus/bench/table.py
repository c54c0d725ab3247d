"""The bench's results as a text table, with notes under it."""

#: headings of the columns after the row name
COLUMNS = ("snd", "msgs/s", "MB/s", "p50 ms", "p99 ms", "RSS MB",
           "lost p/b", "dup p/b", "cons/s plain", "cons/s batch",
           "vs oslo-kafka", "vs 1 snd")
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
    """Rate of a listener; ``*`` when a note qualifies it; ``partial*``
    when it gave up with some notifications missing; what happened when
    it received nothing."""
    if not found:
        return "-"
    if found.get("note") and found.get("lost") and found.get("unique"):
        return "partial*"
    if found.get("msgs_per_s"):
        return number(found["msgs_per_s"]) + ("*" if found.get("note")
                                               else "")
    note = found.get("note") or "none"
    if note.startswith("no delivery within "):
        return "none in " + note[len("no delivery within "):].replace(
            " ", "")
    return "none"


def pair(consume, key):
    if not consume:
        return "-"
    return "/".join(str(consume[mode][key]) if mode in consume else "-"
                    for mode in ("plain", "batch"))


def cells(result):
    consume = result.get("consume") or {}
    latency = result.get("latency") or {}
    return [str(result.get("senders", "")),
            number(result.get("msgs_per_s")),
            number(result.get("mb_per_s"), 2),
            short_ms(latency.get("p50_ms")),
            short_ms(latency.get("p99_ms")),
            number(result.get("peak_rss_mb")),
            pair(consume, "lost"), pair(consume, "duplicates"),
            consume_cell(consume.get("plain")),
            consume_cell(consume.get("batch")),
            times(result.get("vs_reference")),
            times(result.get("vs_one_sender"))]


def notes(results):
    lines = []
    for result in results:
        name = result.get("row", "?")
        if result.get("error"):
            lines.append(f"{name}: FAILED: {result['error']}")
        for mode, found in (result.get("consume") or {}).items():
            if found.get("end_to_end"):
                lines.append(
                    f"{name}: {mode} listener read end to end (the driver's "
                    f"consumer starts at the latest offset: the row's "
                    f"notifications were sent again while it listened)")
            if found.get("note"):
                lines.append(f"{name}: {mode} listener: {found['note']} "
                             f"({found['unique']} of "
                             f"{result.get('count')} received)")
    return lines


def format_table(results, title=None):
    """The table of ``results`` (dicts from the rows' children, with
    ratios added), with a title line and notes."""
    name_width = max([len("row")] + [len(r.get("row", "")) for r in
                                     results]) + GAP
    numbers = {id(r): cells(r) for r in results}
    widths = [max([len(heading)] + [len(row[index]) for row in
                                    numbers.values()]) + GAP
              for index, heading in enumerate(COLUMNS)]
    header = "row".ljust(name_width) + "".join(
        heading.rjust(width) for heading, width in zip(COLUMNS, widths))
    lines = [] if title is None else [title, ""]
    lines += [header, "-" * len(header)]
    for result in results:
        name = result.get("row", "?").ljust(name_width)
        if result.get("error") and not result.get("msgs_per_s"):
            error = f"FAILED: {result['error']}"
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
send until the client reports everything acknowledged or flushed;
p50/p99 ms: time of one send call; RSS MB: peak RSS of the row's process
after publishing; lost p/b, dup p/b: notifications not received, and
received twice, by the plain/batch oslo listener; cons/s: rate at which
each listener received them (* qualified in the notes); vs oslo-kafka:
publish rate over that of oslo's builtin kafka driver in the same run;
vs 1 snd: over the same row with one sender."""
