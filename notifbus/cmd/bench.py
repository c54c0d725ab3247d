"""``notifbus bench``: publish rates of notifbus and its baselines, in one
run, against one broker.

Starts an embedded Kafka-protocol broker (unless ``--kafka`` names one),
then runs each row (``--rows``; ``--list-rows`` shows them) in a child
process of its own: notifbus, oslo's builtin kafka and rabbit drivers, the
raw Kafka clients and oslo's noop driver publish the same notifications,
and the oslo rows that can read them back with oslo listeners. Prints a
table, with each row's rate over that of oslo's builtin kafka driver;
``--json`` writes the same as JSON. See doc/source/benchmark.rst.
"""

import contextlib
import json
import os
import platform
import signal
import sys
import time
import uuid

from notifbus.bench import rows as bench_rows
from notifbus.bench import runner, stats, table
from notifbus.bench.progress import Display

DEFAULT_RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


def add_parser(commands):
    parser = commands.add_parser(
        "bench", help="publish rates of notifbus and its baselines",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka", metavar="HOST:PORT",
                        help="Kafka broker to use (default: start an "
                             "embedded Tansu broker)")
    parser.add_argument("--rabbit", default=DEFAULT_RABBIT, metavar="URL",
                        help=f"transport URL of the oslo-rabbit row "
                             f"(default {DEFAULT_RABBIT})")
    parser.add_argument("-n", "--count", type=_positive, default=20000,
                        help="notifications per row (default 20000)")
    parser.add_argument("--size", type=_positive, default=200,
                        help="payload bytes per notification (default 200)")
    parser.add_argument("--senders", type=_positive, default=1,
                        help="senders of each row; notifbus-confirmed also "
                             "runs with 1 and 64 (default 1)")
    parser.add_argument("--green", action="store_true",
                        help="senders are eventlet greenthreads, in "
                             "monkey-patched processes, instead of threads")
    parser.add_argument("--acks", choices=["all", "1"], default="all",
                        help="acknowledgement the Kafka producers wait for "
                             "(default all; oslo's builtin driver has no "
                             "such option and uses its client's default)")
    parser.add_argument("--partitions", type=_positive, default=2,
                        help="partitions of each row's topic (default 2)")
    parser.add_argument("--linger-ms", type=float, default=0.0,
                        help="linger of every Kafka producer, in ms "
                             "(default 0; librdkafka's own default is 5)")
    parser.add_argument("--max-batch-records", type=_positive,
                        help="records per batch, for the producers that "
                             "have such a limit (default: their own)")
    parser.add_argument("--rows", metavar="ROW,...",
                        help="rows to run, e.g. notifbus-confirmed,"
                             "notifbus-confirmed-x64,kafka-python-ack "
                             "(default: all; see --list-rows)")
    parser.add_argument("--list-rows", action="store_true",
                        help="list the rows and exit")
    parser.add_argument("--row-timeout", type=_positive_float, default=120.0,
                        help="seconds a row may take before it is stopped "
                             "(default 120)")
    parser.add_argument("--consume-wait", type=_positive_float, default=20.0,
                        help="seconds a listener may receive nothing before "
                             "it is given up on (default 20)")
    parser.add_argument("--no-consume", action="store_true",
                        help="publish only: do not read back")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON to FILE")
    parser.set_defaults(func=run)


def _positive(text):
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} is not a positive integer")
    return value


def _positive_float(text):
    value = float(text)
    if value <= 0:
        raise ValueError(f"{value} is not positive")
    return value


def list_rows(stream=None):
    stream = stream or sys.stdout
    for kind in bench_rows.KINDS.values():
        print(f"{kind.name:24} {kind.summary}", file=stream)


def select_rows(args):
    if args.rows:
        return bench_rows.parse_rows(args.rows, args.senders)
    return bench_rows.default_rows(args.senders)


def run(args):
    if args.list_rows:
        list_rows()
        return 0
    try:
        rows = select_rows(args)
    except ValueError as exc:
        print(f"notifbus bench: {exc}", file=sys.stderr)
        return 2
    display = Display(len(rows))
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_as_interrupt())
        broker = args.kafka
        if broker is None and any(row.spec.kafka for row in rows):
            from notifbus.embedded import EmbeddedBroker

            embedded = stack.enter_context(EmbeddedBroker())
            broker = embedded.address
            display.message(f"embedded broker: Tansu at {broker}")
        base = base_spec(args, broker)
        try:
            results = runner.run_rows(rows, base, args.row_timeout, display,
                                      debug=getattr(args, "debug", False))
        except KeyboardInterrupt:
            display.message("notifbus bench: interrupted; rows and broker "
                            "stopped")
            return 130
    stats.add_ratios(results, bench_rows.REFERENCE_KIND)
    report = build_report(args, base, results)
    print(table.format_table(results, title=title(report)))
    print()
    print(table.LEGEND)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
    return 1 if any(result.get("error") for result in results) else 0


def base_spec(args, broker):
    return {"run_id": f"bench-{uuid.uuid4().hex[:8]}", "count": args.count,
            "size": args.size, "green": args.green, "acks": args.acks,
            "partitions": args.partitions, "linger_ms": args.linger_ms,
            "max_batch_records": args.max_batch_records,
            "bootstrap": broker, "rabbit_url": args.rabbit,
            "consume": not args.no_consume,
            "consume_wait_s": args.consume_wait}


def build_report(args, base, results):
    settings = {key: base[key] for key in (
        "count", "size", "green", "acks", "partitions", "linger_ms",
        "max_batch_records", "consume_wait_s")}
    settings.update(kafka=base["bootstrap"], embedded=args.kafka is None,
                    row_timeout_s=args.row_timeout,
                    rabbit=_hide_password(args.rabbit))
    return {"settings": settings,
            "machine": {"cpus": os.cpu_count(),
                        "system": f"{platform.system()} "
                                  f"{platform.machine()}",
                        "python": platform.python_version(),
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            "reference": bench_rows.REFERENCE_KIND,
            "rows": results}


def title(report):
    s, m = report["settings"], report["machine"]
    broker = ("embedded Tansu" if s["embedded"] else "Kafka") + \
        f" at {s['kafka']}" if s["kafka"] else "no Kafka"
    return (f"notifbus bench: {s['count']} notifications of {s['size']} "
            f"bytes per row, acks={s['acks']}, {s['partitions']} "
            f"partitions, linger {s['linger_ms']:g} ms, "
            f"{'greenthreads' if s['green'] else 'threads'}\n"
            f"broker: {broker}; RabbitMQ: {s['rabbit']}; machine: "
            f"{m['cpus']} CPUs, {m['system']}, Python {m['python']}")


def _hide_password(url):
    from notifbus.bench.clients import _hide_password as hide

    return hide(url)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the bench as Ctrl-C does: children, then broker."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
