"""``notifbus broker``: run the embedded broker in the foreground.

Starts Tansu (the ``embedded`` extra) on a loopback port, prints its
address and a transport URL for it, and runs until SIGTERM or SIGINT
(Ctrl-C), which stop it. The broker never outlives this command, even one
killed with SIGKILL.
"""

import signal
import sys
import threading

from notifbus import errors
from notifbus.embedded import EmbeddedBroker


def add_parser(commands):
    parser = commands.add_parser(
        "broker", help="run the embedded Kafka-protocol broker until "
                       "SIGTERM or Ctrl-C",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int,
                        help="port to listen on (default: a free one)")
    parser.add_argument("--storage", default="memory://tansu/",
                        help="Tansu storage engine URL (default "
                             "memory://tansu/: nothing kept at exit)")
    parser.set_defaults(func=run)


def run(args):
    stopping = threading.Event()
    received = []

    def stop(signum, frame):
        received.append(signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, stop)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with EmbeddedBroker(port=args.port, host=args.host,
                            storage=args.storage) as broker:
            print(f"embedded broker: Tansu at {broker.address} "
                  f"(pid {broker.process.pid})")
            print(f"transport URL:   {broker.url()}", flush=True)
            while not stopping.wait(0.5):
                code = broker.process.poll()
                if code is not None:
                    raise errors.NotifbusError(
                        f"the embedded broker at {broker.address} exited "
                        f"with code {code}")
        print(f"stopped on {received[0]}", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
