"""PostgreSQL binary COPY for fixed-width rows, with NumPy on both ends.

Every column travels as a fixed-width field, so a whole batch is one NumPy
structured array (``tobytes()`` to send, ``frombuffer`` to receive): no text
formatting of floats or timestamps, and no precision lost. Batches go to a
staging table in the wire form below, or — when the rows are fixed-width as
stored (:func:`encode_direct`) — straight into the table.

=====  ===================  =========================================================
kind   wire type            conversion
=====  ===================  =========================================================
ts     ``int8``             µs since 2000-01-01 UTC (PostgreSQL's own representation)
f8     ``float8``           NULL ↔ NaN (``NULLIF``/``COALESCE`` in SQL)
i8     ``int8``             as is (NOT NULL columns)
cat    ``int4``             1-based index into the column's declared categories, 0 = NULL
=====  ===================  =========================================================
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tcp_lab.errors import ServiceError
from tcp_lab.store._backend import Columns, column_kind

__all__ = ["WireColumn", "wire_columns", "encode", "encode_direct", "decode", "HEADER"]

#: Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
PG_EPOCH_US = 946_684_800_000_000
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_WIRE = {"ts": (">i8", "int8"), "f8": (">f8", "float8"), "i8": (">i8", "int8"),
         "cat": (">i4", "int4")}


@dataclass(frozen=True)
class WireColumn:
    """How one table column crosses the wire."""

    name: str
    kind: str
    nullable: bool
    categories: tuple[str, ...] = ()

    @property
    def dtype(self) -> str:
        return _WIRE[self.kind][0]

    @property
    def sql_type(self) -> str:
        return _WIRE[self.kind][1]

    def to_table(self, source: sa.ColumnElement) -> sa.ColumnElement:
        """The expression that turns the staged wire value into the column value."""
        if self.kind == "f8" and self.nullable:
            return sa.func.nullif(source, sa.literal_column("'NaN'::float8"))
        if self.kind == "cat":
            return sa.case(
                *((source == i, sa.literal(c)) for i, c in enumerate(self.categories, 1)),
                else_=sa.null(),
            )
        return source

    def to_wire(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The expression that turns the column value into a fixed-width wire value."""
        if self.kind == "f8" and self.nullable:
            return sa.func.coalesce(column, sa.literal_column("'NaN'::float8"))
        if self.kind == "cat":
            return sa.case(
                *((column == c, sa.literal(i)) for i, c in enumerate(self.categories, 1)),
                else_=sa.literal(0),
            )
        return column


def wire_columns(table: sa.Table, names: Sequence[str]) -> list[WireColumn]:
    """Wire descriptions of ``table``'s columns ``names``."""
    out = []
    for name in names:
        col = table.c[name]
        kind = column_kind(col)
        if kind == "text":
            raise TypeError(f"{table.name}.{name}: free text has no fixed-width COPY form")
        out.append(WireColumn(name, kind, bool(col.nullable),
                              tuple(col.info.get("categories", ()))))
    return out


def _row_dtype(cols: Sequence[WireColumn]) -> np.dtype:
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    for i, c in enumerate(cols):
        fields += [(f"_l{i}", ">i4"), (c.name, c.dtype)]
    return np.dtype(fields)


def encode(data: Columns, cols: Sequence[WireColumn]) -> bytes:
    """A ``COPY staging FROM STDIN (FORMAT binary)`` payload: ``cols`` in wire form."""
    dtype = _row_dtype(cols)
    rows = np.empty(len(data[cols[0].name]), dtype=dtype)
    rows["_n"] = len(cols)
    for i, c in enumerate(cols):
        rows[f"_l{i}"] = np.dtype(c.dtype).itemsize
        values = data[c.name]
        if c.kind == "ts":
            rows[c.name] = values - PG_EPOCH_US
        elif c.kind == "cat":
            rows[c.name] = pd.Categorical(values, categories=c.categories).codes + 1
        else:
            rows[c.name] = values
    return HEADER + rows.tobytes() + TRAILER


def encode_direct(table: sa.Table, fixed: Mapping[str, Any], data: Columns) -> bytes | None:
    """A payload for ``COPY table FROM STDIN (FORMAT binary)``: every column, in order.

    The rows stay fixed-width when the ``fixed`` columns are constant strings and
    each nullable float column is either all NULL or has no NULL; otherwise (or
    for category columns) there is no direct form and this returns None.
    """
    n = len(data["ts"])
    fields: list[tuple[str, Any]] = [("_n", ">i2")]
    fill: list[tuple[str, Any]] = [("_n", len(table.columns))]
    for i, col in enumerate(table.columns):
        name = col.name
        if name in fixed:
            if not isinstance(fixed[name], str):
                return None
            raw = fixed[name].encode()
            fields += [(f"_l{i}", ">i4"), (name, f"S{len(raw)}")]
            fill += [(f"_l{i}", len(raw)), (name, raw)]
            continue
        kind = column_kind(col)
        values = data[name]
        if kind == "ts":
            values = values - PG_EPOCH_US
        elif kind == "f8" and col.nullable:
            null = np.isnan(values)
            if null.all():
                fields.append((f"_l{i}", ">i4"))
                fill.append((f"_l{i}", -1))  # NULL: a length of -1 and no data
                continue
            if null.any():
                return None
        elif kind not in ("f8", "i8"):
            return None
        fields += [(f"_l{i}", ">i4"), (name, _WIRE[kind][0])]
        fill += [(f"_l{i}", 8), (name, values)]
    rows = np.empty(n, dtype=fields)
    for name, value in fill:
        rows[name] = value
    return HEADER + rows.tobytes() + TRAILER


def decode(payload: bytes, cols: Sequence[WireColumn]) -> pd.DataFrame:
    """Parse a ``COPY (…) TO STDOUT (FORMAT binary)`` payload of ``to_wire`` columns."""
    if payload[:11] != HEADER[:11]:
        raise ServiceError("PostgreSQL sent an unexpected COPY header")
    (ext,) = struct.unpack(">i", payload[15:19])
    start = 19 + ext
    dtype = _row_dtype(cols)
    body = len(payload) - start - len(TRAILER)
    if body % dtype.itemsize:
        raise ServiceError("PostgreSQL COPY rows are not of the expected width")
    rows = np.frombuffer(payload, dtype=dtype, offset=start, count=body // dtype.itemsize)
    data: dict[str, object] = {}
    for c in cols:
        values = rows[c.name].astype(np.dtype(c.dtype).newbyteorder("="))
        if c.kind == "ts":
            data[c.name] = pd.DatetimeIndex(
                (values + PG_EPOCH_US).view("datetime64[us]")
            ).tz_localize("UTC")
        elif c.kind == "cat":
            lookup = np.array([None, *c.categories], dtype=object)
            data[c.name] = pd.array(lookup[values], dtype="str")
        else:
            data[c.name] = values
    return pd.DataFrame(data)
