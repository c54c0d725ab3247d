"""Resolve a transport URL and oslo.config into the settings of one bus.

``notifbus+<backend>://[user:pass@]host[:port][,host[:port]]/[vhost]?k=v``

- the scheme after ``+`` names the backend (stevedore entry point);
- hosts are the brokers to bootstrap from;
- each query parameter overrides the option of the same name in
  ``[notifbus_<backend>]``, else in ``[notifbus]``; an unknown name is an
  error, not silently ignored.
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

from notifbus import backends, errors, opts


@dataclasses.dataclass
class Settings:
    backend: str
    hosts: List[Tuple[str, Optional[int]]]
    username: Optional[str]
    password: Optional[str]
    virtual_host: Optional[str]
    common: Dict[str, object]
    backend_options: Dict[str, object]

    def __repr__(self):
        password = "***" if self.password else None
        return (f"Settings(backend={self.backend!r}, hosts={self.hosts!r}, "
                f"username={self.username!r}, password={password!r}, "
                f"virtual_host={self.virtual_host!r})")

    def describe_hosts(self):
        """Hosts as ``h1:p1,h2:p2`` for messages (no credentials)."""
        return ",".join(f"{h}:{p}" if p else h for h, p in self.hosts)


def backend_name(transport):
    """``'kafka'`` from the URL scheme ``'notifbus+kafka'``."""
    driver, sep, backend = (transport or "").partition("+")
    if driver != "notifbus" or not sep or not backend:
        raise errors.ConfigError(
            f"transport {transport!r} does not name a notifbus backend: use "
            f"notifbus+<backend>://..., with <backend> one of "
            f"{', '.join(backends.names())}")
    return backend


def resolve(conf, url):
    """Settings for an oslo ``TransportURL`` under configuration ``conf``.

    Registers the options on ``conf`` if needed. Raises
    :class:`~notifbus.errors.ConfigError`,
    :class:`~notifbus.errors.BackendNotFound` or
    :class:`~notifbus.errors.BackendUnavailable` naming the problem.
    """
    name = backend_name(url.transport)
    backend = backends.load(name)
    opts.register_opts(conf)
    conf.register_opts(backend.list_opts(), group=opts.backend_group(name))
    common = _group_values(conf, opts.GROUP, opts.notifbus_opts)
    specific = _group_values(conf, opts.backend_group(name),
                             backend.list_opts())
    for key, raw in (url.query or {}).items():
        if key in specific:
            specific[key] = _convert(name, backend.list_opts(), key, raw)
        elif key in common:
            common[key] = _convert(name, opts.notifbus_opts, key, raw)
        else:
            valid = sorted(set(common) | set(specific))
            raise errors.ConfigError(
                f"unknown option {key!r} in the notifbus+{name} transport "
                f"URL; valid options: {', '.join(valid)}")
    hosts, username, password = _hosts(url)
    return Settings(backend=name, hosts=hosts, username=username,
                    password=password, virtual_host=url.virtual_host or None,
                    common=common, backend_options=specific)


def open_backend(conf, url):
    """The backend named by transport URL string ``url``, built as the
    oslo driver builds it. The caller closes it."""
    import oslo_messaging

    resolved = resolve(conf, oslo_messaging.TransportURL.parse(conf, url))
    backend_cls = backends.load(resolved.backend)
    return backend_cls(resolved.hosts, resolved.backend_options,
                       resolved.username, resolved.password), resolved


def _group_values(conf, group, option_list):
    section = conf[group]
    return {opt.dest: section[opt.dest] for opt in option_list}


def _convert(backend, option_list, key, raw):
    opt = next(o for o in option_list if o.dest == key)
    if isinstance(raw, list):  # repeated parameter: the last one wins
        raw = raw[-1]
    try:
        return opt.type(raw)
    except (ValueError, TypeError) as exc:
        raise errors.ConfigError(
            f"invalid value {raw!r} for {key!r} in the notifbus+{backend} "
            f"transport URL: {exc}") from exc


def _hosts(url):
    hosts, username, password = [], None, None
    for host in url.hosts:
        if username is None and host.username:
            username, password = host.username, host.password
        if host.hostname:
            hosts.append((host.hostname, host.port))
    return hosts, username, password
