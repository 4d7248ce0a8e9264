"""The DuckDB backend: an embedded file (or ``:memory:``) database.

A DuckDB file admits one writing *process*. Within a process every store
opened on the same file shares one database (cached by resolved path), so the
collector, bots and notebooks can use it together. Each thread gets its own
cursor; writes are serialised by one lock per database, reads run alongside
them on DuckDB's snapshots.

Bulk writes register the batch (an Arrow table over its arrays) as a relation
and ``INSERT … SELECT … ON CONFLICT DO UPDATE`` from it (raw trades, whose key
has no index here: a plain ``INSERT … SELECT`` when nothing of the series is
stored in the batch's id range, else ``… WHERE NOT EXISTS`` the key in that
range); reads come back through DuckDB's native DataFrame conversion.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDDLCompiler, PGDialect
from sqlalchemy.engine import make_url

from tcp_lab.errors import ConfigError, DatabaseLockedError, DataError, ServiceError, TcpLabError
from tcp_lab.settings import redact_url
from tcp_lab.store._backend import (
    Backend,
    Columns,
    FencedOut,
    RowsWrite,
    Tx,
    column_kind,
    missing_from,
    rows_from,
    upsert_from,
)
from tcp_lab.store._lease import Lease, LocalLeases

__all__ = ["DuckDBBackend", "DuckDBDialect"]

T = TypeVar("T")

log = logging.getLogger("tcp_lab.store")
MEMORY = ":memory:"
_STAGING = "tcp_lab_staging"
_ARROW_TS = pa.timestamp("us", tz="UTC")


class _DDLCompiler(PGDDLCompiler):
    def post_create_table(self, table: sa.Table) -> str:  # no PARTITION BY etc.
        return ""


class DuckDBDialect(PGDialect):
    """Compile-only dialect: DuckDB speaks PostgreSQL's SQL with ``$n`` parameters."""

    name = "duckdb"
    ddl_compiler = _DDLCompiler

    def __init__(self) -> None:
        super().__init__(paramstyle="numeric_dollar")


@dataclass
class _Database:
    """One DuckDB database shared by every store of this process opened on it."""

    key: str
    conn: duckdb.DuckDBPyConnection
    write_lock: threading.RLock = field(default_factory=threading.RLock)
    refs: int = 0


_OPEN: dict[str, _Database] = {}
_OPEN_LOCK = threading.Lock()


def _path_of(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises ArgumentError/ValueError
        raise ConfigError(f"database URL {redact_url(url)!r} is malformed ({e})") from None
    if parsed.query:
        raise ConfigError(
            f"database URL {redact_url(url)!r}: unknown option(s) "
            + ", ".join(sorted(parsed.query)),
            hint="a DuckDB URL is duckdb:///relative/file.duckdb, duckdb:////abs/file.duckdb "
            "or duckdb:///:memory:",
        )
    if parsed.host:
        raise ConfigError(
            f"database URL {redact_url(url)!r} names a host ({parsed.host!r}); DuckDB is a file",
            hint="use three slashes for a relative path (duckdb:///data/lab.duckdb) "
            "and four for an absolute one",
        )
    if not parsed.database:
        raise ConfigError(
            f"database URL {redact_url(url)!r} names no file",
            hint="use duckdb:///relative/file.duckdb, duckdb:////abs/file.duckdb, or "
            "duckdb:///:memory: for a throwaway in-memory database")
    db = parsed.database
    if db == MEMORY:
        return MEMORY
    path = Path(db).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"database URL {url!r} names a directory, not a DuckDB file",
                          hint="add a file name, e.g. …/tcp_lab.duckdb")
    return str(path)


def _connect(path: str, url: str) -> duckdb.DuckDBPyConnection:
    if path != MEMORY:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ServiceError(f"DuckDB file {path}: cannot create its directory ({e})") from None
    try:
        return duckdb.connect(path)
    except duckdb.IOException as e:
        text = str(e)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            who = f" (PID {pid.group(1)})" if pid else ""
            raise DatabaseLockedError(
                f"DuckDB file {path} is locked by another process{who}") from None
        raise ServiceError(f"cannot open DuckDB file {path}: {_first_line(text)}") from None
    except duckdb.Error as e:
        raise ServiceError(f"cannot open {redact_url(url)}: {_first_line(str(e))}") from None


def _acquire(path: str, url: str) -> _Database:
    if path == MEMORY:  # every :memory: store is its own database
        db = _Database(MEMORY, _connect(path, url))
        db.refs = 1
        return db
    with _OPEN_LOCK:
        db = _OPEN.get(path)
        if db is None:
            db = _OPEN[path] = _Database(path, _connect(path, url))
        db.refs += 1
        return db


def _arrow_rows(write: RowsWrite) -> pa.Table:
    """``write.rows`` as an Arrow table (times as UTC microseconds)."""
    columns = tuple(write.rows[0])
    data = {}
    for c in columns:
        values = [row[c] for row in write.rows]
        kind = column_kind(write.table.c[c])
        data[c] = pa.array(values, type=_ARROW_TS if kind == "ts" else
                           pa.float64() if kind == "f8" else
                           pa.int64() if kind == "i8" else pa.string())
    return pa.table(data)


def _release(db: _Database) -> None:
    with _OPEN_LOCK:
        db.refs -= 1
        if db.refs > 0:
            return
        if _OPEN.get(db.key) is db:
            del _OPEN[db.key]
    db.conn.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _translate(e: duckdb.Error, what: str) -> TcpLabError:
    msg = _first_line(str(e))
    if isinstance(e, duckdb.CatalogException):
        return ConfigError(f"{what}: {msg}", hint="create the tables with `tcp-lab db init` "
                           "(or store.init_schema())")
    if isinstance(e, duckdb.ConstraintException | duckdb.ConversionException
                  | duckdb.InvalidInputException):
        return DataError(f"{what}: {msg}")
    return ServiceError(f"{what}: DuckDB error: {msg}")


class _DuckTx(Tx):
    def __init__(self, backend: DuckDBBackend, cur: duckdb.DuckDBPyConnection) -> None:
        self._backend = backend
        self.cur = cur

    def execute(self, stmt: sa.Executable | str) -> None:
        self.cur.execute(*self._backend.compile(stmt))

    def fetch(self, stmt: sa.Executable) -> list[tuple[Any, ...]]:
        return self.cur.execute(*self._backend.compile(stmt)).fetchall()

    def execute_sql(self, sql: str, params: Any) -> None:
        self.cur.execute(sql, params)


class DuckDBBackend(Backend):
    """A DuckDB database behind ``duckdb:///path`` (see the module docstring)."""

    name = "duckdb"
    group_writes = True

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = redact_url(url) or url
        self.path = _path_of(url)
        self.dialect = DuckDBDialect()
        self._db = _acquire(self.path, url)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False

    # -- plumbing -------------------------------------------------------------------
    def compile(self, stmt: sa.Executable | str) -> tuple[str, list[Any]]:
        """SQL text and positional parameters for DuckDB."""
        if isinstance(stmt, str):
            return stmt, []
        # render_postcompile: an IN list becomes one positional parameter per value
        compiled = stmt.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": True})
        names = getattr(compiled, "positiontup", None) or []  # DDL has no parameters
        params = compiled.params
        return compiled.string, [params[name] for name in names]

    def template(self, stmt: sa.Executable) -> tuple[str, list[str]]:
        compiled = stmt.compile(dialect=self.dialect)
        return compiled.string, list(compiled.positiontup or [])

    def bind(self, template: tuple[str, Any], values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in template[1]]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise ServiceError(f"store {self.url} is closed",
                               hint="open a new one with open_store()")
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._db.conn.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cur
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    @contextmanager
    def _transaction(self, *, write: bool, what: str = "query") -> Iterator[_DuckTx]:
        cur = self._cursor()
        lock = self._db.write_lock if write else None
        if lock is not None:
            lock.acquire()
        try:
            cur.begin()
            try:
                yield _DuckTx(self, cur)
                cur.commit()
            except BaseException:
                cur.rollback()
                raise
        except duckdb.Error as e:
            raise _translate(e, f"DuckDB {self.path}: {what}") from e
        finally:
            if lock is not None:
                lock.release()

    def run(self, fn: Callable[[Tx], T], *, write: bool, exclusive: bool = False,
            what: str = "query") -> T:
        # One process writes a DuckDB file, and the write lock serialises its threads,
        # so an exclusive block is just a write.
        with self._transaction(write=write or exclusive, what=what) as tx:
            return fn(tx)

    # -- bulk paths -----------------------------------------------------------------
    def bulk_upsert(self, table: sa.Table, fixed: Mapping[str, Any], data: Columns, *,
                    update: bool) -> None:
        if len(data["ts"]) <= self.small_batch:
            return self.small_upsert(table, fixed, data, update=update)
        staging = sa.table(_STAGING, *(sa.column(c) for c in data))
        self._insert_from_arrow(table, data, upsert_from(table, fixed, staging, update=update))

    def insert_missing(self, table: sa.Table, fixed: Mapping[str, Any], data: Columns, *,
                       within: str) -> None:
        # The key has no index here (schema migration 2). Under the write lock (one
        # writer), a probe for stored rows of the series in the batch's range of
        # ``within``: none (a new dump, the common case) is a plain INSERT; else an
        # anti-join against the stored rows in that range. The probe takes about a
        # millisecond (zone maps skip the other row groups); the anti-join, even with
        # nothing to match, cost 30-60 % more CPU than the plain INSERT (1M trades
        # beside 9M stored).
        values = data[within]
        if not len(values):
            return
        params = {**{f"fixed_{k}": v for k, v in fixed.items()},
                  "low": int(values.min()), "high": int(values.max())}
        probe = self._raw_template("probe", table, fixed, tuple(data), within)
        with self._staged(table, data) as tx:
            stored = tx.cur.execute(probe[0], self.bind(probe, params)).fetchone()
            insert = self._raw_template("plain" if stored is None else "missing", table, fixed,
                                        tuple(data), within)
            tx.cur.execute(insert[0], self.bind(insert, params))

    def _raw_template(self, kind: str, table: sa.Table, fixed: Mapping[str, Any],
                      names: tuple[str, ...], within: str) -> tuple[str, list[str]]:
        """:meth:`insert_missing`'s statements, compiled once per shape: ``kind`` is
        ``"probe"``, ``"plain"`` or ``"missing"`` (the anti-join)."""
        shape = ("insert_missing", kind, table.name, tuple(fixed), names, within)
        compiled = self._shapes.get(shape)
        if compiled is None:
            staging = sa.table(_STAGING, *(sa.column(c) for c in names))
            bound = {k: sa.bindparam(f"fixed_{k}") for k in fixed}
            low, high = sa.bindparam("low"), sa.bindparam("high")
            if kind == "probe":
                c = table.c
                one = sa.literal_column("1")  # not a parameter: every one is bound by name
                stmt: sa.Executable = (sa.select(one).select_from(table)
                                       .where(*(c[k] == v for k, v in bound.items()),
                                              c[within].between(low, high)).limit(one))
            elif kind == "plain":
                stmt = upsert_from(table, bound, staging, update=False, conflict=False)
            else:
                stmt = missing_from(table, bound, staging, within=within, low=low, high=high)
            compiled = self._shapes[shape] = self.template(stmt)
        return compiled

    @contextmanager
    def _staged(self, table: sa.Table, data: Columns) -> Iterator[_DuckTx]:
        """A write transaction in which the batch ``data`` is the relation ``_STAGING``."""
        # An Arrow table over the arrays (no copy); DuckDB scans it natively.
        frame = pa.table({
            name: pa.array(values, type=_ARROW_TS if name == "ts" else None)
            for name, values in data.items()
        })
        with self._transaction(write=True, what=f"write {table.name}") as tx:
            tx.cur.register(_STAGING, frame)
            try:
                yield tx
            finally:
                tx.cur.unregister(_STAGING)

    def _insert_from_arrow(self, table: sa.Table, data: Columns, stmt: sa.Executable) -> None:
        """Run ``stmt``, which reads the batch ``data`` as the relation ``_STAGING``."""
        with self._staged(table, data) as tx:
            tx.execute(stmt)

    def write_rows(self, writes: Sequence[RowsWrite], *, what: str,
                   fence: Mapping[str, int] | None = None) -> None:
        """Each table's rows as one registered Arrow relation (no per-value parameters).

        DuckDB pays for every statement and every bound parameter, but little
        per row, so many bots' candles cost about what one does. Rows are
        first written with plain INSERTs (a bot's candle is new in the normal
        course); if one exists already (a replay), the whole transaction is
        rolled back and written again as upserts.
        """
        writes = [w for w in writes if w.rows]
        if not writes:
            return
        relations = [_arrow_rows(w) for w in writes]
        try:
            self._write_relations(writes, relations, conflict=False, what=what, fence=fence)
        except DataError:  # a key exists: this is a replay, rewrite the rows
            self._write_relations(writes, relations, conflict=True, what=what, fence=fence)

    def fence_statement(self, fence: Mapping[str, int]) -> tuple[str, Any]:
        """Every bot's current token (DuckDB pays for each bound parameter, so the
        tokens are compared in Python; read under the write lock, which every claim
        takes too: one process writes a DuckDB file)."""
        return "SELECT bot_id, token FROM bot_owners", []

    def _write_relations(self, writes: Sequence[RowsWrite], relations: Sequence[pa.Table], *,
                         conflict: bool, what: str, fence: Mapping[str, int] | None) -> None:
        names = [f"{_STAGING}_{i}" for i in range(len(writes))]
        cur = self._cursor()  # the transaction's; registrations belong to it
        for name, relation in zip(names, relations, strict=True):
            cur.register(name, relation)
        try:
            with self._transaction(write=True, what=what) as tx:
                if fence:
                    held = dict(tx.cur.execute(*self.fence_statement(fence)).fetchall())
                    if any(held.get(b) != t for b, t in fence.items()):
                        raise FencedOut(f"{what}: a bot's fencing token is no longer current")
                for name, write in zip(names, writes, strict=True):
                    tx.cur.execute(self._relation_sql(name, write, conflict))
        finally:
            for name in names:
                cur.unregister(name)

    def _relation_sql(self, name: str, write: RowsWrite, conflict: bool) -> str:
        columns = tuple(write.rows[0])
        shape = ("relation", name, write.table.name, columns, write.update_only, conflict)
        compiled = self._shapes.get(shape)
        if compiled is None:
            source = sa.table(name, *(sa.column(c) for c in columns))
            stmt = rows_from(write.table, source, columns, update_only=write.update_only,
                             conflict=conflict)
            compiled = self._shapes[shape] = self.compile(stmt)
        return compiled[0]

    def _select(self, table: sa.Table, columns: Sequence[str],
                where: Sequence[sa.ColumnElement[bool]], order_by: Sequence[str],
                ) -> tuple[str, Any]:
        """The compiled ``SELECT columns … WHERE … ORDER BY …`` of the two readers."""
        return self.compile(sa.select(*(table.c[c] for c in columns)).where(*where)
                            .order_by(*(table.c[c] for c in order_by)))

    def read_frame(
        self,
        table: sa.Table,
        columns: Sequence[str],
        where: Sequence[sa.ColumnElement[bool]],
        order_by: Sequence[str],
    ) -> pd.DataFrame:
        with self._transaction(write=False, what=f"read {table.name}") as tx:
            df = tx.cur.execute(*self._select(table, columns, where, order_by)).df()
        for name in columns:
            if isinstance(table.c[name].type, sa.DateTime):
                df[name] = df[name].dt.tz_convert("UTC")
        return df

    @contextmanager
    def bounded_memory(self, limit: str) -> Iterator[None]:
        # DuckDB keeps the blocks it read cached up to its memory_limit (80 % of RAM by
        # default): a read streaming a large table through would grow without bound.
        # tcp_lab sets no limit of its own, so the default comes back afterwards.
        cur = self._cursor()
        cur.execute(f"SET memory_limit = '{limit}'")
        try:
            yield
        finally:
            cur.execute("RESET memory_limit")

    def read_arrays(
        self,
        table: sa.Table,
        columns: Sequence[str],
        where: Sequence[sa.ColumnElement[bool]],
        order_by: Sequence[str],
    ) -> dict[str, np.ndarray]:
        with self._transaction(write=False, what=f"read {table.name}") as tx:
            sql = self._select(table, columns, where, order_by)
            raw = tx.cur.execute(*sql).fetchnumpy()  # a UTC session: UTC times
        out = {}
        for name in columns:
            a = np.asarray(raw[name])
            if isinstance(table.c[name].type, sa.DateTime):
                a = a.astype("datetime64[us]").view(np.int64)
            out[name] = a
        return out

    def lease(self, role: str) -> Lease:
        # The file admits one writing process; an in-memory database is this store's own.
        key = self._db.key if self._db.key != MEMORY else f"{MEMORY}@{id(self._db)}"
        return LocalLeases.acquire(f"duckdb:{key}", role, f"DuckDB {self.path}")

    def describe(self) -> dict[str, Any]:
        return {"path": self.path}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cursors_lock:
            cursors, self._cursors = self._cursors, []
        for cur in cursors:
            try:
                cur.close()
            except duckdb.Error:  # pragma: no cover - already closed by DuckDB
                pass
        _release(self._db)
