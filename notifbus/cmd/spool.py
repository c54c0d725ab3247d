"""``notifbus spool``: look at and re-send spooled notifications.

The spool directory is ``--spool-dir``, else the ``spool_dir`` of the
service's transport: in the query of its transport URL, else in
``[notifbus]`` of the configuration files (``--config-file``), else
oslo's default (``notifbus-spool`` in the temporary directory). A
directory that does not exist is an error: it is not the one the service
spools to.
"""

import os
import sys

import oslo_messaging

from notifbus import errors, settings
from notifbus import spool as spool_files
from notifbus.bus import Publisher
from notifbus.cmd import config


def add_parser(commands):
    parser = commands.add_parser(
        "spool", help="list or re-send notifications the buffered mode "
                      "could not deliver")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="count spooled notifications")
    _add_spool_dir(listing)
    config.add_arguments(listing)
    listing.set_defaults(func=run_list)
    flush = actions.add_parser("flush", help="re-send spooled "
                               "notifications, then delete their files")
    config.positional_url(flush, "transport URL to send them through")
    _add_spool_dir(flush)
    flush.add_argument("--retry", type=int, default=3,
                       help="retries per notification (-1: forever)")
    config.add_arguments(flush)
    flush.set_defaults(func=run_flush)


def _add_spool_dir(parser):
    parser.add_argument(
        "--spool-dir", help="directory of the spool files (default: the "
        "spool_dir of the transport URL's query or of [notifbus] in the "
        "configuration files, else notifbus-spool in the temporary "
        "directory)")


def spool_dir(args, conf, url):
    """The spool directory ``args`` and ``conf`` name; it must exist.

    :raises notifbus.errors.ConfigError: the directory does not exist.
    """
    directory = args.spool_dir
    if directory is None and url:
        query = oslo_messaging.TransportURL.parse(conf, url).query or {}
        directory = query.get("spool_dir")
    if directory is None:
        directory = conf.notifbus.spool_dir
    if directory is None:
        directory = spool_files.default_spool_dir()
    if not os.path.isdir(directory):
        raise errors.ConfigError(
            f"spool directory {directory!r} does not exist or is not a "
            f"directory: give the service's spool_dir with --spool-dir, or "
            f"its configuration with --config-file")
    return directory


def _files(directory):
    return spool_files.Spool(directory).pending_files()


def run_list(args):
    conf = config.load(args)
    url = conf[config.NOTIFICATIONS_GROUP].transport_url
    directory = spool_dir(args, conf, url)
    total = 0
    for path in _files(directory):
        count = len(spool_files.read(path))
        total += count
        print(f"{path}: {count}")
    print(f"total: {total}")
    return 0


def run_flush(args):
    conf = config.load(args)
    url = config.transport_url(conf, args.url)
    directory = spool_dir(args, conf, url)
    backend, resolved = settings.open_backend(conf, url)
    publisher = Publisher.from_settings(backend, resolved.common)
    left = spool_files.Spool(directory)
    sent = failed = 0
    try:
        for path in _files(directory):
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
