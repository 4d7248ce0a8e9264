"""SQL text with its parameters inlined, as psycopg2's ``cursor.mogrify`` makes it, faster.

The bots' records go to PostgreSQL as one script per host and candle (one round
trip). psycopg2 builds it with ``mogrify``, which adapts every parameter
through its adapter registry: about 1.5 µs a number and 2.4 µs a timestamp, a
fifth of a bot host's CPU with 25 bots (``py-spy`` on ``benchmarks.bench_bots``).
:func:`render` writes the literals of the types these records hold (``None``,
``bool``, ``int``, ``float``, ``datetime``, and ASCII text without a quote, a
backslash or a NUL) itself, byte for byte as psycopg2 does, and leaves every other
value (text that needs escaping above all) to psycopg2. ``tests/store/test_pgliteral.py``
checks the bytes against ``mogrify`` for any mix of values.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["render"]

_PLACEHOLDER = re.compile(r"%\(([^)]*)\)s|%s|%%")


@lru_cache(maxsize=1024)
def _template(sql: str) -> tuple[tuple[bytes, ...], tuple[str | None, ...]]:
    """``sql`` split at its placeholders: the text pieces (``%%`` already ``%``) and, per
    placeholder, its name (``None``: positional)."""
    parts: list[bytes] = []
    names: list[str | None] = []
    text, pos = [], 0
    for m in _PLACEHOLDER.finditer(sql):
        text.append(sql[pos:m.start()])
        pos = m.end()
        if m.group(0) == "%%":
            text.append("%")
            continue
        parts.append("".join(text).encode())
        text = []
        names.append(m.group(1))
    text.append(sql[pos:])
    parts.append("".join(text).encode())
    return tuple(parts), tuple(names)


def _number(text: str) -> bytes:
    # psycopg2 puts a space before a minus sign: "x -1" never reads as a "--" comment
    return (" " + text).encode() if text[0] == "-" else text.encode()


def _literal(cur: Any, value: Any) -> bytes:
    kind = type(value)
    if value is None:
        return b"NULL"
    if kind is bool:
        return b"true" if value else b"false"
    if kind is int:
        return _number(str(value))
    if kind is float:
        if math.isfinite(value):
            return _number(repr(value))
        return (b"'NaN'::float" if math.isnan(value) else
                b"'Infinity'::float" if value > 0 else b"'-Infinity'::float")
    if kind is dt.datetime:
        cast = b"::timestamptz" if value.tzinfo is not None else b"::timestamp"
        return b"'" + value.isoformat().encode() + b"'" + cast
    if (isinstance(value, str) and value.isascii() and "'" not in value
            and "\\" not in value and "\x00" not in value):
        return b"'" + value.encode() + b"'"  # nothing to escape (ids, JSON of numbers)
    return cur.mogrify("%s", (value,))


def render(cur: Any, sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> bytes:
    """``cur.mogrify(sql, params)``, the same bytes.

    Raises
    ------
    KeyError, IndexError
        A named placeholder without its parameter, or too few positional ones
        (``mogrify`` raises ``KeyError``/``IndexError`` too).
    TypeError
        Too many positional parameters (as ``mogrify``).
    """
    if params is None:
        return sql.encode()
    parts, names = _template(sql)
    if isinstance(params, Mapping):
        values = [params[name] for name in names]  # type: ignore[index]
    else:
        if len(params) > len(names):
            raise TypeError("not all arguments converted during string formatting")
        values = [params[i] for i in range(len(names))]
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out.append(_literal(cur, value))
        out.append(part)
    return b"".join(out)
