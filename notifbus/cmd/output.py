"""Output of the inspection commands: aligned tables or JSON."""

import dataclasses
import json
import sys


def table(headers, rows, stream=None):
    """Print ``rows`` (sequences of values) under ``headers``, in columns
    aligned on the widest value; ``None`` shows as ``-``."""
    stream = stream or sys.stdout
    cells = [list(headers)] + [["-" if v is None else str(v) for v in row]
                               for row in rows]
    widths = [max(len(row[i]) for row in cells)
              for i in range(len(headers))]
    for row in cells:
        print("  ".join(value.ljust(width) for value, width
                        in zip(row, widths)).rstrip(), file=stream)


def as_json(value, stream=None):
    """Print ``value`` (dataclasses, lists, dicts) as indented JSON."""
    print(json.dumps(_plain(value), indent=2, sort_keys=True),
          file=stream or sys.stdout)


def _plain(value):
    if dataclasses.is_dataclass(value):
        plain = {f.name: _plain(getattr(value, f.name))
                 for f in dataclasses.fields(value)}
        for name in getattr(type(value), "JSON_PROPERTIES", ()):
            plain[name] = _plain(getattr(value, name))
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def add_json(parser):
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of a table")
