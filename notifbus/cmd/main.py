"""``notifbus``: the command line entry point.

Every command reports an error as one line on stderr,
``notifbus <command>: <message>``, and exits with:

- 0 when it did its work;
- 1 on a runtime failure (a broker that does not answer, a notification
  that could not be delivered, a broker that exited);
- 2 on a usage or configuration error (an unknown option, a bad transport
  URL, a backend that is not installed, a missing file or directory);
- 130 when interrupted (Ctrl-C).

A reader of the output that goes away (``notifbus ... | head``) ends the
command quietly, with status 0.

``--debug`` (before or after the command) logs at debug level and prints
the traceback of an error as well.
"""

import argparse
import logging
import os
import sys
import traceback
import warnings

# oslo.messaging imports its eventlet support, which warns on import; the
# command line has nothing to do about it.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import oslo_messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402

import notifbus  # noqa: E402
from notifbus import errors  # noqa: E402
from notifbus.cmd import (  # noqa: E402
    bench,
    broker,
    check,
    demo,
    groups,
    replay,
    spool,
    topics,
)

#: exit status of a runtime failure
FAILURE = 1
#: exit status of a usage or configuration error
USAGE = 2
#: exit status when interrupted
INTERRUPTED = 130

#: errors of the command line or of the configuration: exit status 2
USAGE_ERRORS = (
    errors.ConfigError, errors.BackendNotFound, errors.BackendUnavailable,
    oslo_messaging.InvalidTransportURL, oslo_messaging.DriverLoadFailure,
    cfg.Error, NotImplementedError)


class Parser(argparse.ArgumentParser):
    """A parser whose errors are one line, and whose every command and
    sub-command takes ``--debug``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # SUPPRESS: a command's parser leaves the --debug given before the
        # command alone when it is not given after it
        self.add_argument("--debug", action="store_true",
                          default=argparse.SUPPRESS,
                          help="log at debug level and show the traceback "
                               "of an error")
        # errors name the innermost command given: "notifbus spool list"
        self.set_defaults(prog=self.prog)

    def error(self, message):
        self.exit(USAGE, f"{self.prog}: {message} (see {self.prog} "
                         f"--help)\n")


def build_parser():
    parser = Parser(
        prog="notifbus",
        description="Notification transport for oslo.messaging over log "
                    "brokers.",
        epilog="Errors are one line on stderr; exit status 1 on a runtime "
               "failure, 2 on a usage or configuration error.")
    parser.set_defaults(debug=False)
    parser.add_argument("--version", action="version",
                        version=f"notifbus {notifbus.__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="<command>")
    for module in (bench, broker, check, demo, groups, replay, spool,
                   topics):
        module.add_parser(commands)
    return parser


def describe(exc):
    """``exc`` as one line: its message, preceded by its type unless it
    is an error whose message says it all (notifbus', oslo's, the
    system's, a bad value)."""
    message = " ".join(str(exc).split())
    if isinstance(exc, (errors.NotifbusError,
                        oslo_messaging.MessagingException, cfg.Error,
                        OSError, ValueError)) and message:
        return message
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def exit_status(exc):
    return USAGE if isinstance(exc, USAGE_ERRORS) else FAILURE


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command they were given to
        parser.exit(USAGE, f"{args.prog}: unrecognized arguments: "
                           f"{' '.join(unknown)} (see {args.prog} --help)\n")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader of the output went away (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback
        if args.debug:
            traceback.print_exc()
        print(f"{args.prog}: {describe(exc)}", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
