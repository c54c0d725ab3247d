"""``notifbus demo``: notifications through oslo.messaging, end to end.

Starts an embedded Kafka-protocol broker (unless ``--url`` or the
``transport_url`` of ``--config-file`` name one),
publishes notifications with an oslo ``Notifier`` over ``notifbus+kafka://``,
consumes them with an oslo notification listener, and prints what was sent,
what was received, the rates, and whether anything was lost or duplicated.
"""

import contextlib
import threading
import time

import oslo_messaging

from notifbus.cmd import config
from notifbus.embedded import EmbeddedBroker

DEMO_QUERY = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200}


def add_parser(commands):
    parser = commands.add_parser(
        "demo", help="send and receive notifications through oslo.messaging")
    parser.add_argument("--url", help="transport URL of an existing broker "
                        "(default: [oslo_messaging_notifications] "
                        "transport_url of the --config-file, else start an "
                        "embedded broker)")
    parser.add_argument("-n", "--count", type=int, default=2000,
                        help="notifications to send (default 2000)")
    parser.add_argument("--senders", type=int, default=8,
                        help="concurrent sender threads (default 8)")
    parser.add_argument("--topic", default="notifbus_demo",
                        help="notification topic (default notifbus_demo)")
    config.add_arguments(parser)
    parser.set_defaults(func=run)


class Collector:
    """Notification endpoint that counts what it receives."""

    def __init__(self, expected):
        self.expected = expected
        self.seen = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.seen.append(payload["seq"])
            if len(self.seen) >= self.expected:
                self.done.set()


def run(args):
    conf = config.load(args)
    # a demo whose broker does not answer fails at once, rather than wait
    # for it as a service's listener does (a configuration file or the
    # URL's query may still say otherwise)
    conf.set_default("listener_start_timeout_ms", 0, group="notifbus")
    with contextlib.ExitStack() as stack:
        url = args.url or conf[config.NOTIFICATIONS_GROUP].transport_url
        if url is None:
            broker = stack.enter_context(EmbeddedBroker())
            url = broker.url(**DEMO_QUERY)
            print(f"embedded broker: Tansu at {broker.address}")
        print(f"transport URL:   {url}")
        return _exchange(conf, url, args)


def _exchange(conf, url, args):
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    collector = Collector(args.count)
    started = time.monotonic()
    server = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=args.topic)], [collector],
        executor="threading", pool="notifbus-demo")
    server.start()
    print(f"listener ready in {time.monotonic() - started:.2f} s "
          f"(pool notifbus-demo)")
    try:
        sent, send_start, send_s = _send(transport, args)
        collector.done.wait(timeout=60)
        received_s = time.monotonic() - send_start
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    return _report(args, sent, send_s, collector, received_s)


def _send(transport, args):
    notifier = oslo_messaging.Notifier(
        transport, publisher_id="notifbus.demo", driver="messaging",
        topics=[args.topic])
    per_sender = [args.count // args.senders] * args.senders
    per_sender[0] += args.count - sum(per_sender)
    sent = []
    lock = threading.Lock()

    def sender(first, count):
        for seq in range(first, first + count):
            notifier.info({}, "demo.event", {"seq": seq, "pad": "x" * 120})
            with lock:
                sent.append(seq)

    threads, first = [], 0
    for count in per_sender:
        threads.append(threading.Thread(target=sender, args=(first, count)))
        first += count
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent, start, time.monotonic() - start


def _report(args, sent, elapsed, collector, received_s):
    seen = collector.seen
    lost = set(sent) - set(seen)
    duplicates = len(seen) - len(set(seen))
    print(f"sent:      {len(sent)} notifications, each acknowledged by the "
          f"broker, with {args.senders} senders in {elapsed:.2f} s "
          f"({len(sent) / elapsed:,.0f} msgs/s)")
    print(f"received:  {len(seen)} notifications in {received_s:.2f} s "
          f"({len(seen) / received_s:,.0f} msgs/s end to end)")
    print(f"lost:      {len(lost)}")
    print(f"duplicate: {duplicates}")
    ok = not lost and len(sent) == args.count
    print("result:    " + ("OK, nothing lost" if ok else "FAILED"))
    return 0 if ok else 1
