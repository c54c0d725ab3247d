"""What the broker commands (``topics``, ``groups``, ``check``) share:
the transport from the arguments or the configuration, its backend and
:mod:`notifbus.admin` object, and ``--timeout``."""

import contextlib
import logging

from notifbus import admin, settings
from notifbus.cmd import config, output

#: default of --timeout, in seconds
DEFAULT_TIMEOUT = 10.0


def add_arguments(parser, timeout_help="longest wait for each answer of "
                                        "the broker"):
    """The optional URL, ``--timeout`` and the configuration files."""
    config.positional_url(parser, "transport URL, e.g. "
                          "notifbus+kafka://127.0.0.1:9092/")
    parser.add_argument(
        "--timeout", type=seconds, default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"{timeout_help}, in seconds (default {DEFAULT_TIMEOUT:g})")
    config.add_arguments(parser)


def add_command(commands, name, help):
    """A command made of actions (``notifbus topics <action>``); returns
    what :func:`add_action` adds them to."""
    parser = commands.add_parser(name, help=help)
    return parser.add_subparsers(dest="action", required=True,
                                 metavar="<action>")


def add_action(actions, name, help, func, json=True):
    """An action of a command of :func:`add_command`, run by ``func``: it
    takes the arguments of :func:`add_arguments` and, with ``json``,
    ``--json``. Returns its parser, for arguments of its own."""
    parser = actions.add_parser(name, help=help)
    add_arguments(parser)
    if json:
        output.add_json(parser)
    parser.set_defaults(func=func)
    return parser


def seconds(text):
    """A positive number of seconds from ``text``."""
    value = float(text)
    if value <= 0:
        raise ValueError(f"not a positive number of seconds: {text!r}")
    return value


@contextlib.contextmanager
def opened(args):
    """``(admin, backend, resolved)`` for the transport of ``args``;
    closed on exit.

    Unless ``--debug`` is given, notifbus's own warnings are left out
    meanwhile: the command reports a broker that does not answer in its
    one line, which the backends' lines for a service's log (brokers
    down, up again) would repeat.

    :raises notifbus.admin.NotSupported: the backend has no admin
        support (before anything is opened).
    """
    logger = logging.getLogger("notifbus")
    level = logger.level
    if not getattr(args, "debug", False):
        logger.setLevel(logging.ERROR)
    try:
        conf = config.load(args)
        backend, resolved = settings.open_backend(
            conf, config.transport_url(conf, args.url))
        try:
            inspector = admin.for_backend(resolved.backend, backend)
            try:
                yield inspector, backend, resolved
            finally:
                inspector.close(args.timeout)
        finally:
            backend.close(min(args.timeout, 5.0))
    finally:
        logger.setLevel(level)
