"""``notifbus``: the command line entry point."""

import argparse
import logging
import sys
import warnings

# oslo.messaging imports its eventlet support, which warns on import; the
# command line has nothing to do about it.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from notifbus.cmd import bench, demo, replay, spool  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        prog="notifbus",
        description="Notification transport for oslo.messaging over log "
                    "brokers.")
    parser.add_argument("--debug", action="store_true",
                        help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)
    bench.add_parser(commands)
    demo.add_parser(commands)
    replay.add_parser(commands)
    spool.add_parser(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
