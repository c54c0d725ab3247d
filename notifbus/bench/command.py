"""What ``notifbus bench`` does once its options are parsed
(:mod:`notifbus.cmd.bench`): pick the rows, start the broker, run the rows
or the memory or scaling runs, print the tables and write the JSON
report."""

import contextlib
import json
import os
import signal
import sys
import time
import uuid

from notifbus import errors
from notifbus.bench import (
    clients,
    machine,
    memory,
    runner,
    scaling,
    stats,
    table,
)
from notifbus.bench import rows as bench_rows
from notifbus.bench.progress import Display
from notifbus.bench.results import Report, ScalingRuns
from notifbus.cmd.bench import (
    BROKERS,
    COUNT_PER_EXTRA_S,
    DEFAULT_COUNT,
    DEFAULT_E2E_COUNT,
    DEFAULT_PARTITIONS,
    DEFAULT_ROW_TIMEOUT,
    MEMORY_COUNT,
    MEMORY_ROWS,
    SCALING_ROWS,
)

#: heap of the Apache Kafka node of ``--broker apache-kafka``, in MiB, and
#: its settings: consumer groups may have the bench's short sessions
APACHE_KAFKA_HEAP_MB = 512
APACHE_KAFKA_CONFIG = {"group.min.session.timeout.ms": 500}
#: nodes of ``--broker apache-kafka-cluster``, the heap of each (MiB), and
#: their settings: every topic has a replica on each node, and a record
#: is acknowledged (acks=all) once two of them have it
CLUSTER_NODES = 3
CLUSTER_HEAP_MB = 384
CLUSTER_CONFIG = dict(APACHE_KAFKA_CONFIG, **{
    "default.replication.factor": CLUSTER_NODES,
    "min.insync.replicas": 2})
#: session timeout of the notifbus listeners on a broker the bench
#: started, in ms (groups join faster); on ``--kafka``'s, the library's
#: default, which a broker's default group.min.session.timeout.ms allows
OWN_BROKER_SESSION_TIMEOUT_MS = 1000


def list_rows(stream=None):
    stream = stream or sys.stdout
    for kind in bench_rows.KINDS.values():
        print(f"{kind.name:24} {kind.summary}", file=stream)


def select_rows(args):
    if args.rows:
        return bench_rows.parse_rows(args.rows, args.senders)
    if getattr(args, "memory", False):
        return bench_rows.parse_rows(MEMORY_ROWS, args.senders)
    if getattr(args, "producers", None):
        return bench_rows.parse_rows(SCALING_ROWS, args.senders)
    return bench_rows.default_rows(args.senders)


def resolve(args):
    """Fill the defaults that depend on the mode; check the modes' own
    options. :raises ValueError: they do not fit together."""
    args.memory = getattr(args, "memory", False)
    broker = getattr(args, "broker", None)
    if broker is not None and args.kafka is not None:
        raise ValueError(f"--broker {broker} starts a broker and --kafka "
                         f"uses one already running: give one of them")
    args.broker = "external" if args.kafka is not None else (
        broker or BROKERS[0])
    producers = getattr(args, "producers", None)
    consumers = getattr(args, "consumers", None)
    args.producer_counts = (scaling.parse_counts(producers, "--producers")
                            if producers else [])
    args.consumer_counts = (scaling.parse_counts(consumers, "--consumers")
                            if consumers else [])
    if args.memory and (producers or consumers):
        raise ValueError("--memory runs alone: not with --producers or "
                         "--consumers")
    if args.count is None:
        args.count = MEMORY_COUNT if args.memory else DEFAULT_COUNT
    if args.partitions is None:
        args.partitions = max([DEFAULT_PARTITIONS] + args.consumer_counts)
    if args.row_timeout is None:
        extra = max(args.count - DEFAULT_COUNT, 0) / COUNT_PER_EXTRA_S
        if args.memory:
            extra = max(extra, args.stall +
                        args.stall_count / COUNT_PER_EXTRA_S)
        args.row_timeout = DEFAULT_ROW_TIMEOUT + extra
    for attr in ("stall", "stall_count", "max_buffer_records",
                 "max_buffer_bytes", "listener"):
        if not hasattr(args, attr):
            setattr(args, attr, None)
    return args


def run(args):
    if args.list_rows:
        list_rows()
        return 0
    try:
        resolve(args)
        rows = select_rows(args)
        if getattr(args, "repeat", 1) > 1 and (
                args.memory or args.producer_counts or args.consumer_counts):
            raise ValueError("--repeat repeats the rows: not with --memory, "
                             "--producers or --consumers")
        if args.memory:
            memory.check_rows(rows)
            if args.stall and args.broker != "tansu":
                where = ("--kafka" if args.broker == "external"
                         else f"--broker {args.broker}")
                raise ValueError(f"the stall run stops the embedded Tansu "
                                 f"broker: with {where}, use --stall 0")
    except ValueError as exc:
        print(f"notifbus bench: {exc}", file=sys.stderr)
        return 2
    try:
        if args.memory:
            return run_memory(args, rows)
        if args.producer_counts or args.consumer_counts:
            return run_scaling(args, rows)
        return run_rows(args, rows)
    except errors.NotifbusError as exc:  # Apache Kafka did not start
        print(f"notifbus bench: {exc}", file=sys.stderr)
        return 2


def run_rows(args, rows):
    """The rows, one after the other, with their table."""
    repeat = getattr(args, "repeat", 1)
    display = Display(len(rows) * repeat)
    try:
        with _broker(args, display, needed=any(
                row.spec.kafka for row in rows)) as (broker, _embedded):
            base = base_spec(args, broker)
            results = runner.run_rows(rows, base, args.row_timeout, display,
                                      debug=getattr(args, "debug", False),
                                      repeat=repeat)
    except KeyboardInterrupt:
        display.message("notifbus bench: interrupted; rows and broker "
                        "stopped")
        return 130
    stats.add_ratios(results, bench_rows.REFERENCE_KIND)
    report = build_report(args, base, rows=results, repeat=repeat)
    return finish(args, report, table.format_table(
        results, title=title(report)), table.LEGEND)


@contextlib.contextmanager
def _broker(args, display, needed=True):
    """The broker's address and the embedded Tansu broker (``None``
    otherwise): ``--kafka``'s, or the broker of ``--broker`` started here
    and stopped on the way out (Tansu continued first, if stopped).

    :raises NotifbusError: Apache Kafka's jars are missing, or it did not
        start.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_as_interrupt())
        if args.kafka is not None or not needed:
            yield args.kafka, None
            return
        if args.broker in ("apache-kafka", "apache-kafka-cluster"):
            yield _apache_kafka(stack, display, cluster=(
                args.broker == "apache-kafka-cluster")), None
            return
        from notifbus.embedded import EmbeddedBroker

        embedded = stack.enter_context(EmbeddedBroker())
        stack.callback(_continue, embedded)
        display.message(f"embedded broker: Tansu at {embedded.address}")
        yield embedded.address, embedded


def _apache_kafka(stack, display, cluster=False):
    """Start one Apache Kafka node, or with ``cluster`` the
    :data:`CLUSTER_NODES` of a cluster (:class:`~notifbus.testing.kafka.
    KafkaCluster`), stopped when ``stack`` closes; their addresses."""
    from notifbus.testing.kafka import KAFKA_VERSION, KafkaCluster

    if cluster:
        nodes, heap_mb, config = (CLUSTER_NODES, CLUSTER_HEAP_MB,
                                  CLUSTER_CONFIG)
    else:
        nodes, heap_mb, config = 1, APACHE_KAFKA_HEAP_MB, APACHE_KAFKA_CONFIG
    kafka = KafkaCluster(nodes=nodes, heap_mb=heap_mb, broker_config=config)
    stack.callback(kafka.stop)
    what = f"{nodes} nodes" if nodes > 1 else "one node"
    display.message(f"starting Apache Kafka {KAFKA_VERSION} ({what}, "
                    f"jars in {kafka.libs})")
    started = time.monotonic()
    kafka.start()
    display.message(f"Apache Kafka {KAFKA_VERSION} at "
                    f"{kafka.bootstrap_servers}, started in "
                    f"{time.monotonic() - started:.1f} s")
    return kafka.bootstrap_servers


def _continue(embedded):
    """SIGCONT the embedded broker, in case a stall run left it stopped."""
    process = embedded.process
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGCONT)
        except OSError:
            pass


def finish(args, report, text, legend):
    """Print a mode's table and legend, write the report to ``--json``;
    the exit status: 1 when a row, run or group failed, else 0."""
    print(text)
    print()
    print(legend)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.to_json(), out, indent=2)
            out.write("\n")
    return 1 if report.failed() else 0


def run_memory(args, rows):
    """``--memory``: each row's long run, then each row's stall run."""
    runs = ["memory-long"] + (["memory-stall"] if args.stall else [])
    display = Display(len(rows) * len(runs))
    with _broker(args, display) as (broker, embedded):
        base = base_spec(args, broker)
        base.update(stall_s=args.stall, stall_count=args.stall_count,
                    max_buffer_records=args.max_buffer_records,
                    max_buffer_bytes=args.max_buffer_bytes,
                    broker_pid=embedded.process.pid if embedded else None)
        try:
            found = memory.run_all(rows, runs, base, args.row_timeout,
                                   display, debug=getattr(args, "debug",
                                                          False),
                                   after_each=lambda: embedded and
                                   _continue(embedded))
        except KeyboardInterrupt:
            display.message("notifbus bench: interrupted; runs and broker "
                            "stopped")
            return 130
    report = build_report(
        args, base, memory=found, stall_s=args.stall,
        stall_count=args.stall_count, stall_at=memory.STALL_AT,
        max_buffer_records=args.max_buffer_records,
        max_buffer_bytes=args.max_buffer_bytes)
    return finish(args, report, table.format_memory(report),
                  table.MEMORY_LEGEND)


def run_scaling(args, rows):
    """``--producers`` and ``--consumers``."""
    steps = (len(rows) * len(args.producer_counts) +
             (1 + len(args.consumer_counts) if args.consumer_counts else 0))
    display = Display(steps)
    debug = getattr(args, "debug", False)
    found = ScalingRuns()
    with _broker(args, display, needed=any(
            row.spec.kafka for row in rows) or bool(
            args.consumer_counts)) as (broker, _embedded):
        base = base_spec(args, broker)
        try:
            if args.producer_counts:
                found.producers = scaling.run_producers(
                    rows, args.producer_counts, base, args.row_timeout,
                    display, debug=debug)
            if args.consumer_counts:
                found.consumers, found.fill = scaling.run_consumers(
                    args.consumer_counts, dict(base, consume=True),
                    args.row_timeout, display, listener=args.listener,
                    step=len(rows) * len(args.producer_counts),
                    debug=debug)
        except KeyboardInterrupt:
            display.message("notifbus bench: interrupted; processes and "
                            "broker stopped")
            return 130
    report = build_report(args, base, scaling=found,
                          producers=args.producer_counts,
                          consumers=args.consumer_counts,
                          listener=args.listener)
    return finish(args, report, table.format_scaling(report),
                  table.SCALING_LEGEND)


def base_spec(args, broker):
    return {"run_id": f"bench-{uuid.uuid4().hex[:8]}", "count": args.count,
            "size": args.size, "green": args.green, "acks": args.acks,
            "partitions": args.partitions, "linger_ms": args.linger_ms,
            "max_batch_records": args.max_batch_records,
            "bootstrap": broker, "rabbit_url": args.rabbit,
            # the Kafka backends' workarounds for the embedded Tansu broker
            "broker_quirks": "tansu" if args.broker == "tansu" else "none",
            # replicas of the topics the bench creates
            "replication_factor": (CLUSTER_NODES
                                   if args.broker == "apache-kafka-cluster"
                                   else 1),
            "session_timeout_ms": (None if args.broker == "external" else
                                   OWN_BROKER_SESSION_TIMEOUT_MS),
            "consume": not args.no_consume,
            "e2e_count": getattr(args, "e2e_count", DEFAULT_E2E_COUNT),
            "consume_wait_s": args.consume_wait}


def build_report(args, base, *, rows=None, memory=None, scaling=None,
                 **settings):
    """The :class:`~notifbus.bench.results.Report` of any mode: the
    common settings, then the mode's own (``settings``), the machine, and
    the results of the mode that ran (``rows``, ``memory`` or
    ``scaling``)."""
    common = {key: base[key] for key in (
        "count", "size", "green", "acks", "partitions", "linger_ms",
        "max_batch_records", "consume_wait_s", "replication_factor")}
    common.update(kafka=base["bootstrap"], broker=args.broker,
                  embedded=args.broker == "tansu",
                  row_timeout_s=args.row_timeout,
                  rabbit=clients.hide_password(args.rabbit))
    common.update(settings)
    return Report(settings=common,
                  machine=machine.describe(_broker_version(args)),
                  reference=bench_rows.REFERENCE_KIND, rows=rows,
                  memory=memory, scaling=scaling)


def _broker_version(args):
    if args.broker in ("apache-kafka", "apache-kafka-cluster"):
        from notifbus.testing.kafka import KAFKA_VERSION

        return KAFKA_VERSION
    return None


def title(report):
    s, m = report.settings, report.machine
    broker = table.broker_name(s)
    return (f"notifbus bench: {s['count']} notifications of {s['size']} "
            f"bytes per row, acks={s['acks']}, {s['partitions']} "
            f"partitions, linger {s['linger_ms']:g} ms, "
            f"{'greenthreads' if s['green'] else 'threads'}"
            f"{table.repeat_text(s)}\n"
            f"broker: {broker}; RabbitMQ: {s['rabbit']}; machine: "
            f"{m['cpus']} CPUs, {m['system']}, Python {m['python']}")


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
