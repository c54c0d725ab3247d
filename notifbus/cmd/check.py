"""``notifbus check``: is the broker of a transport reachable and
working? For container and systemd health checks.

It connects and reads the cluster's metadata; with ``--probe`` it also
writes one probe record to a topic of its own (``notifbus.check`` by
default, created with one partition) and reads it back, outside any
consumer group. The whole check is bounded by ``--timeout`` seconds. It
prints one line and exits with 0 (``ok: ...``, with the time of each step
in milliseconds) or 1 (``notifbus check: failed at <step> ...``, saying
what failed); a configuration error still exits with 2.
"""

import socket
import sys
import threading
import time
import urllib.parse
import uuid

from notifbus import errors
from notifbus.cmd import brokers
from notifbus.record import Record

#: default topic of the probe records
PROBE_TOPIC = "notifbus.check"
#: header naming a probe record
PROBE_HEADER = "notifbus-check"


class CheckFailed(errors.NotifbusError):
    """A step of the check failed or did not finish in time."""


def add_parser(commands):
    parser = commands.add_parser(
        "check", help="check that the broker answers (and, with --probe, "
                      "stores and returns a record); for health checks")
    brokers.add_arguments(parser, timeout_help="longest time the whole "
                          "check may take")
    parser.add_argument(
        "--probe", action="store_true",
        help="also produce one probe record and consume it back")
    parser.add_argument(
        "--topic", default=PROBE_TOPIC,
        help=f"topic of the probe records (default {PROBE_TOPIC}), "
             f"created with one partition if missing")
    parser.set_defaults(func=run)


class Steps:
    """The steps of a check, timed, run on a thread of their own so that
    the whole check is bounded."""

    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.timeout
        self.step = "connect"
        self.timings = []  # [(step, ms)]
        self.summary = ""
        self.error = None
        self.where = _shown(args.url) if args.url else "the transport"

    def left(self):
        return max(self.deadline - time.monotonic(), 0.01)

    def timed(self, step, function, *args):
        self.step = step
        started = time.monotonic()
        result = function(*args)
        self.timings.append((step, (time.monotonic() - started) * 1000.0))
        return result

    def run(self):
        try:
            with brokers.opened(self.args) as (inspector, backend, resolved):
                self.where = (f"notifbus+{resolved.backend}://"
                              f"{resolved.describe_hosts()}")
                self.summary = self.timed("metadata", inspector.cluster,
                                          self.left())
                if self.args.probe:
                    self.probe(backend)
        except Exception as exc:  # noqa: BLE001 - reported by run()
            self.error = exc

    def probe(self, backend):
        topic = self.args.topic
        self.timed("topic", backend.ensure_topic, topic, 1, self.left())
        start = self.timed("offsets", backend.end_offsets, topic,
                           self.left()).get(0, 0)
        token = uuid.uuid4().hex.encode()
        record = Record(topic=topic, value=b'{"notifbus_check": "' + token
                        + b'", "host": "' + socket.gethostname().encode()
                        + b'"}', headers=[(PROBE_HEADER, token)])
        failed = self.timed("produce", backend.produce, [record], [0],
                            self.left())[0]
        if failed is not None:
            raise failed
        self.timed("consume", self._read_back, backend, topic, start, token)

    def _read_back(self, backend, topic, offset, token):
        while time.monotonic() < self.deadline:
            for received in backend.read(topic, 0, offset, 100,
                                         min(self.left(), 1.0)):
                if (PROBE_HEADER, token) in [(k, bytes(v)) for k, v
                                             in received.headers or ()]:
                    return
                offset = received.offset + 1
        raise CheckFailed(f"the probe record was not read back from topic "
                          f"{topic!r} partition 0")


def _shown(url):
    """``scheme://hosts`` of a URL: no credentials, no query."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def run(args):
    steps = Steps(args)
    worker = threading.Thread(target=steps.run, name="notifbus-check",
                              daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(args.timeout)
    elapsed_ms = (time.monotonic() - started) * 1000.0
    if worker.is_alive():
        print(f"{args.prog}: failed at {steps.step} of {steps.where}: no "
              f"answer within {args.timeout:g} s", file=sys.stderr)
        # the steps' thread is a daemon, as are the clients' threads: they
        # do not keep the process from ending now
        return 1
    if steps.error is not None:
        from notifbus.cmd import main  # imports this module

        exc = steps.error
        if isinstance(exc, main.USAGE_ERRORS):
            raise exc
        raise CheckFailed(f"failed at {steps.step} of {steps.where} after "
                          f"{elapsed_ms:.0f} ms: {main.describe(exc)}") \
            from exc
    timings = ", ".join(f"{step} {ms:.0f} ms" for step, ms in steps.timings)
    probe = f" on topic {args.topic}" if args.probe else ""
    print(f"ok: {steps.where} answered in {elapsed_ms:.0f} ms ({timings})"
          f"{probe}: {steps.summary}")
    return 0
