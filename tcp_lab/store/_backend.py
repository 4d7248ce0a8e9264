"""The small private interface every store backend implements.

:class:`~tcp_lab.store.Store` holds the shared logic (validation, conversions,
the public API) and talks to a :class:`Backend` only through the methods below.
Statements are SQLAlchemy Core objects, compiled with the backend's dialect;
the bulk paths (:meth:`Backend.bulk_upsert`, :meth:`Backend.read_frame`) are
each backend's own fast route.

Batches travel as :data:`Columns`: one NumPy array per column, ``ts`` as int64
microseconds since the Unix epoch (UTC), floats as float64 with NaN for NULL,
integers as int64, text as an object array of ``str``/``None`` (or, for a column
with declared categories, a ``pandas.Categorical`` of them).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.engine import Dialect

from tcp_lab.errors import ServiceError
from tcp_lab.store._lease import Lease

__all__ = ["Backend", "Tx", "Columns", "RowsWrite", "UNIX_EPOCH", "upsert_from", "rows_from",
           "missing_from", "column_kind", "python_rows"]

T = TypeVar("T")
Columns = Mapping[str, np.ndarray]
#: The Unix epoch as an aware datetime (``ts`` arrays count microseconds from it).
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Tx(abc.ABC):
    """An open transaction: run Core statements, fetch rows."""

    @abc.abstractmethod
    def execute(self, stmt: sa.Executable | str) -> None:
        """Run a statement that returns no rows."""

    @abc.abstractmethod
    def fetch(self, stmt: sa.Executable) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples."""

    @abc.abstractmethod
    def execute_sql(self, sql: str, params: Any) -> None:
        """Run SQL text already compiled for this backend (see :meth:`Backend.compile`)."""


class FencedOut(ServiceError):
    """A records transaction named a bot whose fencing token is no longer current."""


@dataclass(frozen=True)
class RowsWrite:
    """Rows of one table for :meth:`Backend.write_rows`.

    ``rows`` hold driver-ready Python values (datetime, float/None, str…),
    with the same keys in every row. They are upserted by the primary key, or
    with ``update_only`` set on the existing rows the key matches (the key
    columns must be among the keys).
    """

    table: sa.Table
    rows: Sequence[Mapping[str, Any]]
    update_only: bool = False


class Backend(abc.ABC):
    """One database engine behind a URL.

    Attributes
    ----------
    name
        ``"duckdb"`` or ``"postgresql"``.
    url
        The URL with any password redacted (safe to print).
    dialect
        The SQLAlchemy dialect statements are compiled with.
    """

    name: ClassVar[str]
    url: str
    dialect: Dialect
    #: Batches up to this many rows are written with one cached INSERT … VALUES.
    small_batch: ClassVar[int] = 64
    #: Whether threads gain from pooling their small writes into one transaction
    #: (one writer per database and a costly commit: DuckDB).
    group_writes: ClassVar[bool] = False

    def __init__(self) -> None:
        self._shapes: dict[tuple[Any, ...], tuple[str, Any]] = {}

    @abc.abstractmethod
    def compile(self, stmt: sa.Executable | str) -> tuple[str, Any]:
        """SQL text and its parameters in the driver's style."""

    @abc.abstractmethod
    def template(self, stmt: sa.Executable) -> tuple[str, Any]:
        """SQL text compiled once, plus what :meth:`bind` needs to fill it in."""

    @abc.abstractmethod
    def bind(self, template: tuple[str, Any], values: Mapping[str, Any]) -> Any:
        """Driver parameters for a :meth:`template` from named ``values``."""

    @abc.abstractmethod
    def run(self, fn: Callable[[Tx], T], *, write: bool, exclusive: bool = False,
            what: str = "query") -> T:
        """Call ``fn(tx)`` in one transaction: committed on success, rolled back on error.

        ``exclusive`` serialises the block against every other process and
        thread using the same database (for schema migrations). A backend with
        a server retries ``fn`` after a lost connection, so ``fn`` must be
        repeatable (all store writes are idempotent). ``what`` names the
        operation in error messages.
        """

    @abc.abstractmethod
    def bulk_upsert(self, table: sa.Table, fixed: Mapping[str, Any], data: Columns, *,
                    update: bool) -> None:
        """Write the rows ``data`` (plus the constant ``fixed`` columns) in one transaction.

        Rows whose primary key exists are overwritten (``update=True``, last
        writer wins) or left alone (``update=False``).
        """

    def insert_missing(self, table: sa.Table, fixed: Mapping[str, Any], data: Columns, *,
                       within: str) -> None:
        """Insert the rows of ``data`` whose primary key is not stored; leave the others.

        ``within`` names a column whose range the batch spans (the trade id):
        only stored rows in the batch's range of it are compared. This default
        relies on the primary-key index (``bulk_upsert(update=False)``); a
        backend whose table has no such index overrides it.
        """
        self.bulk_upsert(table, fixed, data, update=False)

    def small_upsert(self, table: sa.Table, fixed: Mapping[str, Any], data: Columns, *,
                     update: bool) -> None:
        """:meth:`bulk_upsert` for a few rows: one INSERT … VALUES compiled once per shape."""
        names = tuple(data)
        n = len(data[names[0]])
        shape = (table.name, tuple(fixed), names, n, update)
        compiled = self._shapes.get(shape)
        if compiled is None:
            source = sa.values(*(sa.column(c) for c in names), name="v").data(
                [tuple(sa.bindparam(f"r{i}_{c}") for c in names) for i in range(n)])
            cast = {c: sa.cast(source.c[c], table.c[c].type) for c in names}
            stmt = upsert_from(table, {k: sa.bindparam(f"fixed_{k}") for k in fixed}, source,
                               update=update, cast=cast)
            compiled = self.template(stmt)
            if len(self._shapes) < 512:
                self._shapes[shape] = compiled
        values = {f"fixed_{k}": v for k, v in fixed.items()}
        for i, row in enumerate(python_rows(table, data)):
            values.update({f"r{i}_{c}": v for c, v in zip(names, row, strict=True)})
        self.run_statements([(compiled[0], self.bind(compiled, values))],
                            what=f"write {table.name}")

    def write_rows(self, writes: Sequence[RowsWrite], *, what: str,
                   fence: Mapping[str, int] | None = None) -> None:
        """Write several tables' rows in one transaction: all of them or none.

        Each :class:`RowsWrite` is one statement with a multi-row ``VALUES`` per
        :attr:`small_batch` rows, compiled once per shape (table, columns, row
        count). ``fence`` maps
        bot ids to the tokens this writer holds in ``bot_owners``: the
        transaction fails (nothing written) unless every one is still current.
        """
        step = self.small_batch  # bounded statement shapes: compiled once, then cached
        statements = [self._rows_statement(RowsWrite(w.table, w.rows[i:i + step], w.update_only))
                      for w in writes for i in range(0, len(w.rows), step)]
        if fence and statements:
            statements.insert(0, self.fence_statement(fence))
        self.run_statements(statements, what=what)

    def fence_statement(self, fence: Mapping[str, int]) -> tuple[str, Any]:
        """A statement that locks the bots' ``bot_owners`` rows and fails unless each
        holds its token (PostgreSQL: the row locks make a concurrent claim wait for
        this transaction; a failed check divides by zero)."""
        pairs = sorted(fence.items())
        rows = ", ".join(["(CAST(%s AS TEXT), CAST(%s AS BIGINT))"] * len(pairs))
        sql = (f"WITH v(bot_id, token) AS (VALUES {rows}), held AS ("
               "SELECT 1 FROM bot_owners AS o JOIN v ON o.bot_id = v.bot_id "
               "AND o.token = v.token FOR UPDATE OF o) "
               f"SELECT 1 / CAST((SELECT count(*) FROM held) = {len(pairs)} AS INTEGER)")
        return sql, [x for b, t in pairs for x in (b, int(t))]

    def run_statements(self, statements: Sequence[tuple[str, Any]], *, what: str) -> None:
        """Run compiled statements (SQL text and bound parameters) in one transaction."""

        def write(tx: Tx) -> None:
            for sql, params in statements:
                tx.execute_sql(sql, params)

        self.run(write, write=True, what=what)

    def _rows_statement(self, write: RowsWrite) -> tuple[str, Any]:
        names = tuple(write.rows[0])
        n = len(write.rows)
        shape = ("rows", write.table.name, names, n, write.update_only)
        compiled = self._shapes.get(shape)
        if compiled is None:
            source = sa.values(*(sa.column(c) for c in names), name="v").data(
                [tuple(sa.bindparam(f"r{i}_{c}") for c in names) for i in range(n)])
            compiled = self.template(rows_from(write.table, source, names,
                                               update_only=write.update_only))
            if len(self._shapes) < 512:
                self._shapes[shape] = compiled
        values = {f"r{i}_{c}": row[c] for i, row in enumerate(write.rows) for c in names}
        return compiled[0], self.bind(compiled, values)

    @contextmanager
    def bounded_memory(self, limit: str) -> Iterator[None]:
        """Keep the database engine's own memory (caches) under ``limit`` for a while, e.g.
        ``"512MB"`` while a long read streams through it. A server database: nothing to do."""
        yield

    def read_arrays(
        self,
        table: sa.Table,
        columns: Sequence[str],
        where: Sequence[sa.ColumnElement[bool]],
        order_by: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """Read ``columns`` of the matching rows as NumPy arrays, no frame in between.

        Timestamps come back as int64 epoch microseconds (UTC). A backend may
        override it with a path that skips pandas (DuckDB does).
        """
        df = self.read_frame(table, columns, where, order_by)
        out = {}
        for name in columns:
            col = df[name]
            if isinstance(table.c[name].type, sa.DateTime):
                out[name] = pd.DatetimeIndex(col).as_unit("us").asi8
            else:
                out[name] = col.to_numpy()
        return out

    @abc.abstractmethod
    def read_frame(
        self,
        table: sa.Table,
        columns: Sequence[str],
        where: Sequence[sa.ColumnElement[bool]],
        order_by: Sequence[str],
    ) -> pd.DataFrame:
        """Read ``columns`` of the matching rows into a DataFrame.

        Timestamps come back as ``datetime64[us, UTC]``, NULL floats as NaN.
        """

    @abc.abstractmethod
    def lease(self, role: str) -> Lease:
        """Hold ``role`` for this database until released; raise if another holder has it."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Backend-specific facts for :meth:`Store.info` (file path, schema…)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; idempotent."""


def column_kind(column: sa.Column) -> str:
    """``"ts"``, ``"f8"``, ``"i8"``, ``"cat"`` (text with declared categories) or ``"text"``."""
    t = column.type
    if isinstance(t, sa.DateTime):
        return "ts"
    if isinstance(t, sa.Double | sa.Float):
        return "f8"
    if isinstance(t, sa.Integer):
        return "i8"
    if column.info.get("categories"):
        return "cat"
    return "text"


def upsert_from(
    table: sa.Table,
    fixed: Mapping[str, Any],
    source: sa.FromClause,
    *,
    update: bool,
    where: sa.ColumnElement[bool] | None = None,
    conflict: bool = True,
    cast: Mapping[str, sa.ColumnElement[Any]] | None = None,
) -> sa.Executable:
    """``INSERT INTO table SELECT fixed…, source.* [WHERE …] ON CONFLICT …``.

    With ``update`` the existing row takes the new values, but only when they
    differ (an identical rewrite then costs no write). ``conflict=False``
    builds a plain INSERT for rows known not to exist yet. ``cast`` maps a
    column name to the expression that reads it from ``source`` (default:
    ``source.c[name]``). ``fixed`` values may be SQL expressions (bind parameters).
    """
    names = [c.name for c in table.columns]
    cast = cast or {}
    exprs: list[sa.ColumnElement[Any]] = []
    for name in names:
        if name in fixed:
            value = fixed[name]
            if not isinstance(value, sa.ColumnElement):
                value = sa.literal(value, table.c[name].type)
            exprs.append(value.label(name))
        else:
            exprs.append(cast.get(name, source.c[name]).label(name))
    select = sa.select(*exprs).select_from(source)
    if where is not None:
        select = select.where(where)
    stmt = pg.insert(table).from_select(names, select)
    if not conflict:
        return stmt
    key = [c.name for c in table.primary_key.columns]
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=key)
    values = [n for n in names if n not in key]
    return stmt.on_conflict_do_update(
        index_elements=key,
        set_={n: stmt.excluded[n] for n in values},
        where=sa.tuple_(*(table.c[n] for n in values)).is_distinct_from(
            sa.tuple_(*(stmt.excluded[n] for n in values))
        ),
    )



def missing_from(table: sa.Table, fixed: Mapping[str, Any], source: sa.FromClause, *,
                 within: str, low: Any, high: Any) -> sa.Executable:
    """``INSERT INTO table SELECT … FROM source WHERE NOT EXISTS (the same key stored)``.

    The stored rows compared are those of the ``fixed`` series with ``within``
    between ``low`` and ``high`` (the batch's range), so the lookup is one range
    scan whatever the table holds.
    """
    stored = table.alias("stored")
    key = [c.name for c in table.primary_key.columns]
    same = [stored.c[k] == (fixed[k] if k in fixed else source.c[k]) for k in key]
    exists = sa.exists().where(stored.c[within].between(low, high), *same)
    return upsert_from(table, fixed, source, update=False, where=~exists, conflict=False)


def rows_from(table: sa.Table, source: sa.FromClause, names: Sequence[str], *,
              update_only: bool, conflict: bool = True) -> sa.Executable:
    """Write the rows of ``source`` (columns ``names``) into ``table``.

    An upsert by the primary key (a plain INSERT with ``conflict=False``), or
    with ``update_only`` an UPDATE of the rows whose key matches. Every value
    is cast to its column's type.
    """
    cast = {c: sa.cast(source.c[c], table.c[c].type) for c in names}
    if not update_only:
        return upsert_from(table, {}, source, update=True, conflict=conflict, cast=cast)
    key = [c.name for c in table.primary_key.columns]
    return (sa.update(table)
            .where(*(table.c[k] == cast[k] for k in key))
            .values({c: cast[c] for c in names if c not in key}))


def python_rows(table: sa.Table, data: Columns) -> list[tuple[Any, ...]]:
    """The rows of ``data`` as driver-ready Python values (datetime, float/None, int, str)."""
    converted = []
    for name, values in data.items():
        kind = column_kind(table.c[name])
        if kind == "ts":
            converted.append([UNIX_EPOCH + dt.timedelta(microseconds=int(v)) for v in values])
        elif kind == "f8":
            converted.append([None if v != v else float(v) for v in values.tolist()])
        elif kind == "i8":
            converted.append([int(v) for v in values.tolist()])
        else:
            converted.append([None if v is None or v is pd.NA or v != v else str(v)
                              for v in values])
    return list(zip(*converted, strict=True))
