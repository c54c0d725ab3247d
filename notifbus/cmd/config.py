"""The configuration of a ``notifbus`` command: oslo.config files.

The commands that use a transport (``demo``, ``replay``, ``spool``) take
oslo.config's own ``--config-file`` and ``--config-dir`` options, with the
meaning they have for every OpenStack service: give a command the files
of the service whose notifications it handles and it reads the same
``[oslo_messaging_notifications] transport_url`` and ``[notifbus]``,
``[notifbus_<backend>]`` groups. Without them, oslo.config's default
files for the project ``notifbus`` are read (``notifbus.conf`` in
``~/.notifbus/``, ``~/``, ``/etc/notifbus/``, ``/etc/``), if there are any.
"""

import oslo_messaging.opts
from oslo_config import cfg

from notifbus import errors, opts

NOTIFICATIONS_GROUP = "oslo_messaging_notifications"


def add_arguments(parser):
    """``--config-file`` and ``--config-dir``, as oslo.config has them."""
    parser.add_argument(
        "--config-file", action="append", default=[], metavar="PATH",
        help="oslo.config file to read, e.g. the service's "
             "/etc/nova/nova.conf; may be given more than once, later "
             "files override earlier ones (default: notifbus.conf in "
             "~/.notifbus/, ~/, /etc/notifbus/ or /etc/, if any)")
    parser.add_argument(
        "--config-dir", action="append", default=[], metavar="DIR",
        help="directory of *.conf files read in sorted order after the "
             "--config-file ones")


def load(args):
    """A ``ConfigOpts`` loaded from the files ``args`` name, with the
    notifbus options and ``[oslo_messaging_notifications]`` registered.

    :raises oslo_config.cfg.Error: a file or directory that does not
        exist, or cannot be parsed.
    """
    argv = []
    for path in args.config_file:
        argv += ["--config-file", path]
    for path in args.config_dir:
        argv += ["--config-dir", path]
    conf = cfg.ConfigOpts()
    conf(argv, project="notifbus")
    opts.register_opts(conf)
    for group, group_opts in oslo_messaging.opts.list_opts():
        if group == NOTIFICATIONS_GROUP:
            conf.register_opts(group_opts, group=group)
    return conf


def transport_url(conf, given):
    """The transport URL given on the command line, else the configured
    ``[oslo_messaging_notifications] transport_url``.

    :raises notifbus.errors.ConfigError: neither is there.
    """
    url = given or conf[NOTIFICATIONS_GROUP].transport_url
    if not url:
        raise errors.ConfigError(
            f"no transport URL: give one as argument, or a --config-file "
            f"that sets [{NOTIFICATIONS_GROUP}] transport_url")
    return url


def positional_url(parser, help_text):
    """The optional ``url`` argument of a command."""
    parser.add_argument(
        "url", nargs="?", help=f"{help_text} (default: [{NOTIFICATIONS_GROUP}]"
        f" transport_url of the configuration files)")
