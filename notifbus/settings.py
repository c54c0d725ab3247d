"""Resolve a transport URL and oslo.config into the settings of one bus.

``notifbus+<backend>://[user:pass@]host[:port][,host[:port]]/[vhost]?k=v``

- the scheme after ``+`` names the backend (stevedore entry point);
- hosts are the brokers to bootstrap from;
- each query parameter overrides the option of the same name in
  ``[notifbus_<backend>]``, else in ``[notifbus]``; an unknown name is an
  error, not silently ignored; a comma in the value of an option that
  takes one value is an error too, as oslo.messaging joins the values of a
  repeated parameter with one (see :func:`_convert`).
"""

import dataclasses
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
)

from oslo_config import cfg
from oslo_config import types as cfg_types

from notifbus import backends, errors, opts
from notifbus.option_values import OptionValues

if TYPE_CHECKING:
    import oslo_messaging

    from notifbus.backends.base import Backend


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a transport URL and the configuration say of one transport.

    ``common`` holds the ``[notifbus]`` options, read as attributes
    (``common.linger_ms``; ``common.send_timeout_s`` for seconds, see
    :class:`~notifbus.option_values.OptionValues`); ``backend_options``
    the values of the backend's ``[notifbus_<backend>]`` group, by name;
    ``backend_class`` the backend, loaded once.
    """

    backend: str
    hosts: List[Tuple[str, Optional[int]]]
    username: Optional[str]
    password: Optional[str]
    virtual_host: Optional[str]
    common: OptionValues
    backend_options: Dict[str, Any]
    backend_class: Type["Backend"]

    def __repr__(self) -> str:
        password = "***" if self.password else None
        return (f"Settings(backend={self.backend!r}, hosts={self.hosts!r}, "
                f"username={self.username!r}, password={password!r}, "
                f"virtual_host={self.virtual_host!r})")

    def describe_hosts(self) -> str:
        """Hosts as ``h1:p1,h2:p2`` for messages (no credentials)."""
        return ",".join(f"{h}:{p}" if p else h for h, p in self.hosts)


def backend_name(transport: Optional[str]) -> str:
    """``'kafka'`` from the URL scheme ``'notifbus+kafka'``."""
    driver, sep, backend = (transport or "").partition("+")
    if driver != "notifbus" or not sep or not backend:
        raise errors.ConfigError(
            f"transport {transport!r} does not name a notifbus backend: use "
            f"notifbus+<backend>://..., with <backend> one of "
            f"{', '.join(backends.names())}")
    return backend


def resolve(conf: cfg.ConfigOpts,
            url: "oslo_messaging.TransportURL") -> Settings:
    """Settings for an oslo ``TransportURL`` under configuration ``conf``.

    Registers ``[notifbus]`` and the selected backend's group on ``conf``
    if needed, no other backend's. Raises
    :class:`~notifbus.errors.ConfigError`,
    :class:`~notifbus.errors.BackendNotFound` or
    :class:`~notifbus.errors.BackendUnavailable` naming the problem.
    """
    name = backend_name(url.transport)
    backend = backends.load(name)
    conf.register_opts(opts.notifbus_opts, group=opts.GROUP)
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
                    common=OptionValues(f"[{opts.GROUP}]",
                                        opts.notifbus_opts, common),
                    backend_options=specific, backend_class=backend)


def open_backend(conf: cfg.ConfigOpts,
                 url: str) -> Tuple["Backend", Settings]:
    """The backend named by transport URL string ``url``, built as the
    oslo driver builds it. The caller closes it."""
    import oslo_messaging

    resolved = resolve(conf, oslo_messaging.TransportURL.parse(conf, url))
    return build_backend(resolved), resolved


def build_backend(resolved: Settings) -> "Backend":
    """The backend that ``resolved`` (:class:`Settings`) names, built from
    its ``[notifbus_<backend>]`` options plus the ``[notifbus]`` options it
    names in its :attr:`~notifbus.backends.base.Backend.common_options`,
    each with the value the configuration and the URL give. The caller
    closes it."""
    backend_cls = resolved.backend_class
    options = dict(resolved.backend_options)
    options.update({name: resolved.common[name]
                    for name in backend_cls.common_options})
    return backend_cls(resolved.hosts, options, resolved.username,
                       resolved.password)


def _group_values(conf: cfg.ConfigOpts, group: str,
                  option_list: Sequence[cfg.Opt]) -> Dict[str, Any]:
    section = conf[group]
    return {opt.dest: section[opt.dest] for opt in option_list}


def _convert(backend: str, option_list: Sequence[cfg.Opt], key: str,
             raw: Any) -> Any:
    """The value of option ``key`` from its query string ``raw``.

    oslo.messaging hands the driver each query parameter once, its repeated
    values joined with ``,`` (``TransportURL.parse``), and keeps no raw
    query: ``?client_id=a&client_id=b`` and ``?client_id=a%2Cb`` both
    arrive as ``'a,b'``. So a comma joins values for options that take
    several (dict options); for any other option it is refused, since which
    value was meant cannot be known.
    """
    opt = next(o for o in option_list if o.dest == key)
    shown = "***" if opt.secret else repr(raw)
    several = isinstance(opt.type, _MULTI_VALUED)
    if isinstance(raw, list):  # a TransportURL built by hand
        raw = ",".join(raw)
    if not several and "," in raw:
        raise errors.ConfigError(
            f"option {key!r} is given more than once, or with a comma, in "
            f"the notifbus+{backend} transport URL ({shown}): "
            f"oslo.messaging joins a repeated query parameter's values "
            f"with ',', so which one is meant is unknown; give {key} once, "
            f"without a comma (a value with a comma belongs in the "
            f"[{opts.GROUP}] or [{opts.backend_group(backend)}] group of the "
            f"configuration file)")
    try:
        return opt.type(raw)
    except (ValueError, TypeError) as exc:
        detail = "" if opt.secret else f": {exc}"
        raise errors.ConfigError(
            f"invalid value {shown} for {key!r} in the notifbus+{backend} "
            f"transport URL{detail}") from exc


#: option types whose value is a list of values: a repeated query parameter
#: adds to it
_MULTI_VALUED = (cfg_types.Dict, cfg_types.List)


def _hosts(url: "oslo_messaging.TransportURL") -> Tuple[
        List[Tuple[str, Optional[int]]], Optional[str], Optional[str]]:
    hosts: List[Tuple[str, Optional[int]]] = []
    username: Optional[str] = None
    password: Optional[str] = None
    for host in url.hosts:
        if username is None and host.username:
            username, password = host.username, host.password
        if host.hostname:
            hosts.append((host.hostname, host.port))
    return hosts, username, password
