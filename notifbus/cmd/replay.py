"""``notifbus replay``: re-read a topic from an offset or a time.

Prints each notification as a JSON line on stdout, or re-publishes the
records unchanged to another topic (``--to-topic``), where a listener
receives them; progress goes to stderr.
"""

import datetime
import json
import sys
import time

from notifbus import codec, errors, settings
from notifbus.bus import Publisher
from notifbus.cmd import config
from notifbus.record import Record
from notifbus.replay import Replay


def add_parser(commands):
    parser = commands.add_parser(
        "replay", help="re-read a topic from an offset or a time")
    config.positional_url(parser, "transport URL, e.g. "
                          "notifbus+kafka://127.0.0.1:9092/")
    parser.add_argument("topic", help="topic to re-read, e.g. "
                        "notifications.info")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-offset", type=int,
                       help="first offset, in every partition (default 0)")
    start.add_argument("--from-time", type=parse_time,
                       help="first record at or after this ISO 8601 time "
                            "(UTC when no zone is given) or epoch in ms")
    parser.add_argument("--partition", type=int,
                        help="replay one partition only")
    parser.add_argument("--to-topic",
                        help="re-publish the records to this topic instead "
                             "of printing them")
    parser.add_argument("--headers", action="store_true",
                        help="print each record's headers too, as "
                             "\"headers\": [[name, value], ...] (values "
                             "as UTF-8, other bytes as \\x escapes)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress on stderr")
    config.add_arguments(parser)
    parser.set_defaults(func=run)


def parse_time(text):
    """Epoch milliseconds from ``1764000000000`` or ISO 8601."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time or epoch ms: {text!r}") \
            from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


class Progress:
    def __init__(self, total, quiet, stream=None):
        self.total, self.quiet = total, quiet
        self.stream = stream or sys.stderr
        self.done = 0
        self._shown = 0.0

    def step(self):
        self.done += 1
        now = time.monotonic()
        if not self.quiet and now - self._shown > 0.5:
            self._shown = now
            self.show()

    def show(self):
        if not self.quiet:
            share = 100.0 * self.done / self.total if self.total else 100.0
            print(f"\rreplayed {self.done}/{self.total} ({share:.0f}%)",
                  end="", file=self.stream, flush=True)


def run(args):
    conf = config.load(args)
    backend, resolved = settings.open_backend(
        conf, config.transport_url(conf, args.url))
    try:
        replay = Replay(backend, args.topic, from_offset=args.from_offset,
                        from_time_ms=args.from_time,
                        partition=args.partition)
        progress = Progress(replay.total, args.quiet)
        sink = (_republisher(backend, resolved, args.to_topic)
                if args.to_topic else _printer(headers=args.headers))
        for received in replay:
            sink(received)
            progress.step()
        progress.show()
        if not args.quiet:
            print(file=sys.stderr)
    except BrokenPipeError:  # the reader went away (| head)
        sys.stderr.close()
        return 0
    finally:
        backend.close()
    return 0


def _printer(stream=None, headers=False):
    stream = stream or sys.stdout

    def emit(received):
        line = {"topic": received.topic, "partition": received.partition,
                "offset": received.offset,
                "timestamp_ms": received.timestamp_ms}
        if headers:
            line["headers"] = [
                [name, bytes(value or b"").decode("utf-8",
                                                  "backslashreplace")]
                for name, value in received.headers or ()]
        try:
            line["ctxt"], line["message"] = codec.decode(received.value)
        except errors.DecodeError as exc:
            line["error"] = str(exc)
        print(json.dumps(line, sort_keys=True), file=stream)
    return emit


def _republisher(backend, resolved, topic):
    publisher = Publisher.from_settings(backend, resolved.common)

    def emit(received):
        publisher.send(Record(topic=topic, value=received.value or b"",
                              key=received.key, headers=received.headers),
                       retry=None)
    return emit
