"""Write the results section of the benchmark page from the JSON reports
of ``notifbus bench --json`` runs.

    python tools/bench_page.py      # from the reports in doc/source/bench/
    python tools/bench_page.py --threads a.json --green b.json \\
        --scaling c.json --note "2 vCPUs, shared" --out doc/source/bench

Reads the report of one run of the rows with threads (``--threads``),
optionally the same rows with ``--green``, and of one scaling run
(``--scaling``, ``--producers``/``--consumers``), and writes, in
``--out``:

- ``results.inc``: when and where the runs ran (date, commit, machine,
  versions), a table per run of rows (rates, CPU per notification,
  end-to-end latency, listeners' rates, ratio to oslo's builtin
  ``kafka://`` driver of the same run) with the run's notes, and the
  tables of the scaling run; ``doc/source/benchmark.rst`` includes it;
- ``scaling.svg``: the rate against the senders of one process (from the
  run with threads), against producer processes and against the
  listeners of a pool (from the scaling run; matplotlib: the ``bench``
  extra, ``pip install notifbus[bench]``; ``--no-plot`` skips it).

The cells are the bench's own (:mod:`notifbus.bench.table`), so the page
says what the command printed.
"""

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "doc" / "source" / "bench"
INCLUDE = "results.inc"
PLOT = "scaling.svg"

#: columns of the bench's table shown on the page, by heading
ROW_COLUMNS = ("snd", "msgs/s", "CPU us", "drv us", "e2e p50", "e2e p99",
               "lost p/b", "dup p/b", "cons/s plain", "cons/s batch",
               "vs oslo-kafka")
PRODUCER_COLUMNS = ("snd", "procs", "msgs/s", "speed-up", "wall s",
                    "msgs/s per process", "unacked")
CONSUMER_COLUMNS = ("consumers", "partitions", "msgs/s", "speed-up",
                    "join s", "joined msgs/s", "drain s", "lag", "lost",
                    "dup")


def load(path):
    """The :class:`~notifbus.bench.results.Report` of a ``--json`` file.

    :raises ValueError: the file is not a report of the expected mode.
    """
    from notifbus.bench.results import (
        ConsumerPool,
        ProducerGroup,
        ProducerMember,
        Report,
        RowResult,
        ScalingRuns,
    )

    found = json.loads(pathlib.Path(path).read_text())
    missing = {"settings", "machine"} - set(found)
    if missing:
        raise ValueError(f"{path} is not a report of notifbus bench "
                         f"--json: no {', '.join(sorted(missing))}")
    report = Report(settings=found["settings"], machine=found["machine"],
                    reference=found.get("reference", "oslo-kafka"))
    if "rows" in found:
        report.rows = [RowResult.from_json(row) for row in found["rows"]]
    scaling = found.get("scaling")
    if scaling is not None:
        report.scaling = ScalingRuns(
            producers=None if scaling["producers"] is None else [
                ProducerGroup(**entry) for entry in scaling["producers"]],
            consumers=None if scaling["consumers"] is None else [
                ConsumerPool(**entry) for entry in scaling["consumers"]],
            fill=scaling["fill"] and ProducerMember.from_json(
                scaling["fill"]))
    return report


def list_table(headings, lines, title=None):
    """An rst ``list-table`` of text cells; ``lines`` are lists of cells,
    or ``[name, text]`` for a line that failed."""
    out = [f".. list-table::{(' ' + title) if title else ''}",
           "   :header-rows: 1", ""]
    for line in [list(headings)] + lines:
        if len(line) == 2 and len(headings) > 2:
            line = [line[0], line[1]] + [""] * (len(headings) - 2)
        out.append(f"   * - {_cell(line[0])}")
        out += [f"     - {_cell(cell)}" for cell in line[1:]]
    return out + [""]


def _cell(text):
    """``text`` as rst inline text: ``*`` and ``_`` escaped, and a
    leading ``-``, which would start a list."""
    text = str(text).replace("*", "\\*").replace("_", "\\_")
    return "\\" + text if text.startswith("-") else text


def _pick(headings, wanted, cells):
    index = [headings.index(name) for name in wanted]
    return [cells[i] for i in index]


def row_lines(report):
    from notifbus.bench import table

    lines = []
    for result in report.rows:
        if result.error and not result.msgs_per_s:
            lines.append([result.row, f"FAILED: {result.error}"])
            continue
        lines.append([result.row] + _pick(table.COLUMNS, ROW_COLUMNS,
                                          table.cells(result)))
    return lines


def rows_section(report, what):
    from notifbus.bench import table

    s = report.settings
    out = [f"{what}: {s['count']:,} notifications of {s['size']} bytes per "
           f"row, acks={s['acks']}, {s['partitions']} partitions, "
           f"{'eventlet greenthreads' if s['green'] else 'threads'}"
           f"{table.repeat_text(s)}; broker: {_broker(s)}.", ""]
    out += list_table(("row",) + ROW_COLUMNS, row_lines(report))
    notes = table.notes(report.rows)
    if notes:
        out += ["Notes of the run:", ""]
        out += [f"* {_cell(note)}" for note in notes] + [""]
    return out


def scaling_section(report, plot=None):
    from notifbus.bench import table

    s, runs = report.settings, report.scaling
    out = [f"Scaling: {s['count']:,} notifications of {s['size']} bytes per "
           f"run, acks={s['acks']}, {s['partitions']} partitions, "
           f"replication factor {s.get('replication_factor') or 1}; "
           f"broker: {_broker(s)}.", ""]
    if runs.producers is not None:
        lines = []
        for entry in runs.producers:
            if entry.error and not entry.msgs_per_s:
                lines.append([entry.row, f"FAILED: {entry.error}"])
                continue
            lines.append([entry.row] + _pick(
                table.SCALE_PRODUCER_COLUMNS, PRODUCER_COLUMNS,
                table.producer_cells(entry)))
        out += list_table(("row",) + PRODUCER_COLUMNS, lines,
                          "Producer processes")
    if runs.consumers is not None:
        lines = []
        for entry in runs.consumers:
            if entry.error and not entry.msgs_per_s:
                lines.append([entry.row, f"FAILED: {entry.error}"])
                continue
            lines.append([entry.row] + _pick(
                table.SCALE_CONSUMER_COLUMNS, CONSUMER_COLUMNS,
                table.consumer_cells(entry)))
        out += list_table(("listeners",) + CONSUMER_COLUMNS, lines,
                          "Listeners in one pool")
    if plot:
        out += [f".. figure:: /bench/{plot}",
                "   :alt: notifications a second against senders, "
                "producer processes and listeners in one pool", "",
                "   The rates of the tables above: against the senders "
                "of one process (threads), the producer processes and "
                "the listeners of one pool.", ""]
    return out


def _broker(settings, short=False):
    """The broker of a report's settings, without its addresses (and,
    ``short``, without saying who started it)."""
    from notifbus.bench import table

    name = table.broker_name(settings).split(" at ")[0]
    return name.replace(" (started by the bench)", "") if short else name


def commit_of(machine):
    """The commit a report was measured from, as the page writes it."""
    commit = machine.get("commit")
    if not commit:  # not from a checkout: the version says what ran
        version = (machine.get("versions") or {}).get("notifbus", "?")
        return f"unknown (notifbus {version})"
    sha, _, changes = commit.partition("+")
    return f"``{sha[:12]}``" + (" with local changes" if changes else "")


def commits_text(reports, labels):
    """``commit X`` when every report comes from one commit, else each
    commit with the runs (``labels``, one per report) measured from it."""
    runs = {}
    for report, label in zip(reports, labels):
        runs.setdefault(commit_of(report.machine), []).append(label)
    if len(runs) == 1:
        return f"commit {next(iter(runs))}"
    return "commits " + "; ".join(
        f"{commit} ({', '.join(names)})" for commit, names in runs.items())


def machine_section(reports, labels, note=None):
    """When, from which commits, on what: the machine from the first
    report, with the dates and commits of all (``labels`` name the runs,
    one per report, where their commits differ)."""
    m = reports[0].machine
    versions = m.get("versions") or {}
    commit = commits_text(reports, labels)
    dates = sorted({r.machine.get("time", "?")[:10] for r in reports})
    cpu = m.get("cpu_model") or "CPU model unknown"
    ram = (f"{m['memory_mb'] / 1024:.0f} GiB RAM" if m.get("memory_mb")
           else "RAM unknown")
    cores = f"{m.get('cpus')} cores"
    if m.get("usable_cpus") not in (None, m.get("cpus")):
        cores += f" ({m['usable_cpus']} usable)"
    lines = [f"Measured on {', '.join(dates)}, from {commit}.", "",
             f"Machine: {cpu}, {cores}" + (f", {note}" if note else "") +
             f", {ram}; {m.get('system')}, kernel {m.get('kernel', '?')}; "
             f"Python {m.get('python')}.", ""]
    shown = [f"{name} {version}" for name, version in versions.items()
             if version and name != "notifbus"]
    if shown:
        lines += ["Versions: " + ", ".join(shown) + ".", ""]
    return lines


def render(threads=None, green=None, scaling=None, note=None, plot=None):
    """The text of ``results.inc`` from the reports given (any may be
    ``None``; at least one must not be)."""
    given = [(r, label) for r, label in ((threads, "threads"),
                                         (green, "greenthreads"),
                                         (scaling, "scaling"))
             if r is not None]
    if not given:
        raise ValueError("no report to write the page from")
    lines = [".. This file is written by tools/bench_page.py from the "
             "JSON reports beside it; do not edit.", ""]
    lines += machine_section([r for r, _ in given],
                             [label for _, label in given], note)
    if threads is not None:
        lines += rows_section(threads, "Threads")
    if green is not None:
        lines += rows_section(green, "Greenthreads (``--green``)")
    if scaling is not None and scaling.scaling is not None:
        lines += scaling_section(scaling, plot)
    return "\n".join(lines).rstrip("\n") + "\n"


def senders_points(report):
    """``{kind: [(senders, msgs/s), ...]}`` of the row kinds that a run of
    rows measured with more than one sender count."""
    points = {}
    for result in report.rows or []:
        if result.msgs_per_s and result.kind:
            points.setdefault(result.kind, []).append(
                (result.senders, result.msgs_per_s))
    return {kind: sorted(found) for kind, found in points.items()
            if len({senders for senders, _ in found}) > 1}


def plot_scaling(report, path, rows=None):
    """Write an SVG of the rates: against senders in one process (from
    ``rows``, a run of rows, when it has rows of one kind with several
    sender counts), against producer processes (one line per row) and
    against the listeners of a pool (the whole run, and from the last
    join on), from the scaling run ``report``.

    :raises SystemExit: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("bench_page: the plot needs matplotlib: pip "
                         "install 'notifbus[bench]', or give --no-plot"
                         ) from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "notifbus-bench"
    import matplotlib.ticker
    from matplotlib import pyplot

    runs = report.scaling
    by_senders = senders_points(rows) if rows is not None else {}
    panels = 3 if by_senders else 2
    figure, axes = pyplot.subplots(1, panels, figsize=(5 * panels, 4))
    left, right = axes[-2], axes[-1]
    if by_senders:
        for kind, points in by_senders.items():
            xs, ys = zip(*points)
            axes[0].plot(xs, ys, marker="o", label=kind)
        axes[0].set(title=f"senders in one process\n"
                          f"{_broker(rows.settings, short=True)}",
                    xlabel="senders",
                    ylabel="notifications / s", xscale="log")
        axes[0].set_xticks(sorted({x for points in by_senders.values()
                                   for x, _ in points}))
        axes[0].get_xaxis().set_major_formatter(
            matplotlib.ticker.ScalarFormatter())
    by_row = {}
    for entry in runs.producers or []:
        if entry.msgs_per_s:
            by_row.setdefault(entry.row, []).append(
                (entry.processes, entry.msgs_per_s))
    for row, points in by_row.items():
        xs, ys = zip(*sorted(points))
        left.plot(xs, ys, marker="o", label=row)
    where = _broker(report.settings, short=True)
    left.set(title=f"producer processes\n{where}", xlabel="processes",
             ylabel="notifications acknowledged / s")
    pools = [e for e in runs.consumers or [] if e.msgs_per_s]
    if pools:
        xs = [e.consumers for e in pools]
        right.plot(xs, [e.msgs_per_s for e in pools], marker="o",
                   label="whole run")
        joined = [(e.consumers, e.joined_msgs_per_s) for e in pools
                  if e.joined_msgs_per_s]
        if joined:
            right.plot(*zip(*joined), marker="s", linestyle="--",
                       label="once all had joined")
    listener = report.settings.get("listener") or "batch"
    right.set(title=f"{listener} listeners in one pool\n{where}",
              xlabel="listeners",
              ylabel="notifications received / s")
    counts = sorted({x for ax in (left, right) for line in ax.get_lines()
                     for x in line.get_xdata()})
    for ax in axes:
        if counts and (ax is not axes[0] or not by_senders):
            ax.set_xticks(counts)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend()
    figure.suptitle(f"notifbus bench, {report.machine.get('cpus')} cores")
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    pyplot.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default=str(BENCH_DIR / "threads.json"),
                        help="report of the rows with threads")
    parser.add_argument("--green", default=str(BENCH_DIR / "green.json"),
                        help="report of the rows with --green ('' for "
                             "none)")
    parser.add_argument("--scaling", default=str(BENCH_DIR / "scaling.json"),
                        help="report of the scaling run ('' for none)")
    parser.add_argument("--note", help="said of the machine after its "
                                       "cores, e.g. 'shared'")
    parser.add_argument("--out", default=str(BENCH_DIR),
                        help=f"where {INCLUDE} and {PLOT} go")
    parser.add_argument("--no-plot", action="store_true",
                        help=f"do not write {PLOT} (nor refer to it)")
    args = parser.parse_args(argv)
    reports = {name: load(path) if path else None for name, path in (
        ("threads", args.threads), ("green", args.green),
        ("scaling", args.scaling))}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot = None
    scaling = reports["scaling"]
    if not args.no_plot and scaling is not None and scaling.scaling:
        plot_scaling(scaling, out / PLOT, rows=reports["threads"])
        plot = PLOT
    (out / INCLUDE).write_text(render(note=args.note, plot=plot, **reports))
    print(f"wrote {out / INCLUDE}" + (f" and {out / PLOT}" if plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
