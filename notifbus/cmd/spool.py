"""``notifbus spool``: look at and re-send spooled notifications."""

import os
import sys

from oslo_config import cfg

from notifbus import errors, settings
from notifbus import spool as spool_files
from notifbus.bus import Publisher


def add_parser(commands):
    parser = commands.add_parser(
        "spool", help="list or re-send notifications the buffered mode "
                      "could not deliver")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="count spooled notifications")
    listing.add_argument("--spool-dir",
                         default=spool_files.default_spool_dir())
    listing.set_defaults(func=run_list)
    flush = actions.add_parser("flush", help="re-send spooled "
                               "notifications, then delete their files")
    flush.add_argument("url", help="transport URL to send them through")
    flush.add_argument("--spool-dir", default=spool_files.default_spool_dir())
    flush.add_argument("--retry", type=int, default=3,
                       help="retries per notification (-1: forever)")
    flush.set_defaults(func=run_flush)


def _files(directory):
    return spool_files.Spool(directory).pending_files()


def run_list(args):
    total = 0
    for path in _files(args.spool_dir):
        count = len(spool_files.read(path))
        total += count
        print(f"{path}: {count}")
    print(f"total: {total}")
    return 0


def run_flush(args):
    conf = cfg.ConfigOpts()
    conf([], project="notifbus")
    backend, resolved = settings.open_backend(conf, args.url)
    publisher = Publisher.from_settings(backend, resolved.common)
    left = spool_files.Spool(args.spool_dir)
    sent = failed = 0
    try:
        for path in _files(args.spool_dir):
            undelivered = []
            for record in spool_files.read(path):
                try:
                    publisher.send(record, retry=args.retry)
                    sent += 1
                except errors.DeliveryError as exc:
                    failed += 1
                    undelivered.append(record)
                    print(f"not delivered: {exc}", file=sys.stderr)
            left.write(undelivered)
            os.unlink(path)
    finally:
        backend.close()
    print(f"re-sent {sent}, still spooled {failed}")
    return 0 if not failed else 1
