"""Option values read as attributes: one read-only namespace per option
group, built from the declared options' defaults and the given values.

The ``[notifbus]`` settings of a transport
(:attr:`notifbus.settings.Settings.common`) and each backend's options
(:attr:`notifbus.backends.base.Backend.opts`) are one of these::

    opts = OptionValues("notifbus+kafka", declared, {"acks": "1"})
    opts.acks                  # '1', the given value
    opts.session_timeout_ms    # 10000, the declared default
    opts.session_timeout_s     # 10.0, derived from the _ms option
    opts.sesion_timeout_ms     # UnknownOption naming the group and option

A default is written once, in the option's declaration; nothing repeats
it where the value is read. The namespace is also a read-only
``Mapping`` of the declared options (``opts["acks"]``, ``dict(opts)``), as
oslo.config's groups are, for code that hands option values on by name.
"""

import difflib
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional

from oslo_config import cfg

from notifbus import errors


class UnknownOption(AttributeError):
    """An option name that the group does not declare: a typo in code,
    which must not read ``None``."""


class OptionValues(Mapping[str, Any]):
    """The values of the options ``declared`` (oslo.config ``Opt``
    objects), each the one ``given`` holds or else its declared default.

    Read them as attributes, named as declared. Every option named
    ``<stem>_ms`` (milliseconds) also reads as ``<stem>_s``: its value in
    seconds, as a float; ``None`` when the option is unset or negative
    (``-1``, the options' "no limit").

    :param owner: what the options belong to, named in errors
        (``"[notifbus]"``, ``"notifbus+kafka"``).
    :raises ConfigError: ``given`` names an option that is not declared.
    """

    __slots__ = ("_owner", "_values", "_seconds")

    def __init__(self, owner: str, declared: Iterable[cfg.Opt],
                 given: Optional[Mapping[str, Any]] = None) -> None:
        values: Dict[str, Any] = {opt.dest: opt.default for opt in declared}
        unknown = sorted(set(given or {}) - set(values))
        if unknown:
            raise errors.ConfigError(
                f"{owner} has no option {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(sorted(values))}")
        values.update(given or {})
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_values", values)
        # <stem>_s of each <stem>_ms, computed once: options are read on
        # every send
        object.__setattr__(self, "_seconds", {
            f"{name[:-3]}_s": None if millis is None or millis < 0
            else millis / 1000.0
            for name, millis in values.items() if name.endswith("_ms")})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private or special, never an option
            raise AttributeError(name)
        values = self._values
        if name in values:
            return values[name]
        seconds = self._seconds
        if name in seconds:
            return seconds[name]
        close = difflib.get_close_matches(name, list(values), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownOption(
            f"{self._owner} has no option {name!r}{hint}; declare it in "
            f"the group's option list to read it")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"the options of {self._owner} are read-only: set {name} in "
            f"the configuration or the transport URL")

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"{self._owner} has no option {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"OptionValues({self._owner!r}, {len(self)} options)"

    def __dir__(self) -> Iterable[str]:
        return sorted(set(self._values) | set(super().__dir__()))
