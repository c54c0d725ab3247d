"""``notifbus bench``: publish rates of notifbus and its baselines, in one
run, against one broker.

Starts a broker (the embedded Tansu broker, or Apache Kafka with
``--broker apache-kafka``, a cluster of three Apache Kafka nodes with
``--broker apache-kafka-cluster``) unless ``--kafka`` names one, then runs
each row (``--rows``; ``--list-rows`` shows them) in a child process of
its own: notifbus, oslo's builtin kafka and rabbit drivers, the raw Kafka
clients and oslo's noop driver publish the same notifications, and the
oslo rows that can read them back with oslo listeners. Prints a
table, with each row's rate over that of oslo's builtin kafka driver;
``--json`` writes the same as JSON. ``--memory`` measures the RSS of the
notifbus rows over a long publish and while the broker is stalled;
``--producers`` and ``--consumers`` how the rates grow with producer
processes and with consumers in one pool. See doc/source/benchmark.rst.
"""

DEFAULT_RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
DEFAULT_COUNT = 20000
DEFAULT_PARTITIONS = 2
DEFAULT_ROW_TIMEOUT = 120.0
#: notifications of the end-to-end latency pass of each row
DEFAULT_E2E_COUNT = 1000
#: the default time limit of a row grows by one second per this many
#: notifications over DEFAULT_COUNT
COUNT_PER_EXTRA_S = 500
#: rows, notifications, stall and notifications of the stall run of
#: ``--memory``
MEMORY_ROWS = "notifbus-confirmed-x64,notifbus-buffered"
MEMORY_COUNT = 1000000
STALL_S = 15.0
STALL_COUNT = 20000
#: brokers the bench can start itself, the default first
BROKERS = ("tansu", "apache-kafka", "apache-kafka-cluster")
#: rows of ``--producers``
SCALING_ROWS = "notifbus-confirmed,notifbus-buffered"


def add_parser(commands):
    parser = commands.add_parser(
        "bench", help="publish rates of notifbus and its baselines",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka", metavar="HOST:PORT",
                        help="Kafka broker to use (default: start the "
                             "broker of --broker)")
    parser.add_argument("--broker", choices=BROKERS,
                        help="broker to start without --kafka: the "
                             "embedded Tansu broker; one Apache Kafka "
                             "node from the jars 'make kafka' fetches, on "
                             "which oslo's builtin kafka:// consumer "
                             "works; or three such nodes, topics with 3 "
                             "replicas and min.insync.replicas 2 "
                             "(default tansu)")
    parser.add_argument("--rabbit", default=DEFAULT_RABBIT, metavar="URL",
                        help=f"transport URL of the oslo-rabbit row "
                             f"(default {DEFAULT_RABBIT})")
    parser.add_argument("-n", "--count", type=_positive,
                        help=f"notifications per row (default "
                             f"{DEFAULT_COUNT}; {MEMORY_COUNT:,} "
                             f"with --memory)")
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
    parser.add_argument("--partitions", type=_positive,
                        help=f"partitions of each row's topic (default "
                             f"{DEFAULT_PARTITIONS}; with --consumers, at "
                             f"least the largest count of consumers)")
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
    parser.add_argument("--row-timeout", type=_positive_float,
                        help=f"seconds a row may take before it is stopped "
                             f"(default {DEFAULT_ROW_TIMEOUT:g}, plus one "
                             f"per {COUNT_PER_EXTRA_S} notifications over "
                             f"{DEFAULT_COUNT} and the stall)")
    parser.add_argument("--repeat", type=_positive, default=1, metavar="N",
                        help="run the rows N rounds, one after the other, "
                             "each on topics of its own, and report for "
                             "each row its run of median rate, with the "
                             "rate of every run (default 1); a row with a "
                             "failed run is reported failed")
    parser.add_argument("--consume-wait", type=_positive_float, default=20.0,
                        help="seconds a listener may receive nothing before "
                             "it is given up on (default 20)")
    parser.add_argument("--no-consume", action="store_true",
                        help="publish only: do not read back")
    parser.add_argument("--e2e-count", type=_not_negative, metavar="N",
                        default=DEFAULT_E2E_COUNT,
                        help=f"notifications of the end-to-end latency "
                             f"pass of each Kafka row that reads back, at "
                             f"most --count (default {DEFAULT_E2E_COUNT}; "
                             f"0: no such pass)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON to FILE")
    mem = parser.add_argument_group(
        "memory", "RSS of the notifbus rows over a long publish and while "
                  "the broker is stalled, instead of the rates")
    mem.add_argument("--memory", action="store_true",
                     help=f"run the memory runs of the rows (default "
                          f"{MEMORY_ROWS})")
    mem.add_argument("--stall", type=_not_negative_float,
                     default=STALL_S, metavar="S",
                     help=f"seconds the broker is stopped in the stall run "
                          f"(default {STALL_S:g}; 0: no "
                          f"stall run); needs the embedded broker")
    mem.add_argument("--stall-count", type=_positive,
                     default=STALL_COUNT, metavar="N",
                     help=f"notifications of the stall run (default "
                          f"{STALL_COUNT})")
    mem.add_argument("--max-buffer-records", type=_positive, metavar="N",
                     help="max_buffer_records of the buffered rows "
                          "(default: the library's)")
    mem.add_argument("--max-buffer-bytes", type=_positive, metavar="N",
                     help="max_buffer_bytes of the buffered rows "
                          "(default: the library's)")
    scale = parser.add_argument_group(
        "scaling", "rates with several producer processes, and with "
                   "several consumers in one pool, instead of the rows")
    scale.add_argument("--producers", metavar="N,...",
                       help=f"producer process counts, e.g. 1,2,4: each "
                            f"row (default {SCALING_ROWS}) runs "
                            f"with each count, the processes sharing "
                            f"--count")
    scale.add_argument("--consumers", metavar="N,...",
                       help="consumer counts, e.g. 1,2,4: listeners in one "
                            "pool reading --count notifications")
    scale.add_argument("--listener", choices=["batch", "plain"],
                       default="batch",
                       help="oslo listener of --consumers (default batch)")
    parser.set_defaults(func=run)


def run(args):
    """Run the bench that ``args`` asks for (:mod:`notifbus.bench.command`,
    imported only now: the bench is not loaded by the other commands)."""
    from notifbus.bench import command

    return command.run(args)


def _positive(text):
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} is not a positive integer")
    return value


def _not_negative(text):
    value = int(text)
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def _not_negative_float(text):
    value = float(text)
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def _positive_float(text):
    value = float(text)
    if value <= 0:
        raise ValueError(f"{value} is not positive")
    return value
