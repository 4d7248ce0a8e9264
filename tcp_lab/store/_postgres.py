"""The PostgreSQL backend: a server reached through a pooled SQLAlchemy engine.

``?schema=NAME`` in the URL is ours: it is removed before the URL reaches the
driver, the schema is created if missing and every connection's
``search_path`` points at it, so all tables (and ``raw_trades``' monthly
partitions) live there.

Bulk writes go ``COPY … FROM STDIN (FORMAT binary)`` into a temporary staging
table, then ``INSERT … SELECT``: rows outside the series' stored time range
with a plain INSERT, the overlap with ``ON CONFLICT DO UPDATE``. Reads come
back through ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` straight into
NumPy (see :mod:`tcp_lab.store._pgcopy`).

A lost connection or a restarting server is retried with exponential backoff
(each retry logged); after the last attempt a :class:`ServiceError` says so.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.errors
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import make_url

from tcp_lab.errors import ConfigError, DataError, ServiceError, TcpLabError
from tcp_lab.settings import redact_url
from tcp_lab.store import _pgcopy
from tcp_lab.store._backend import UNIX_EPOCH, Backend, Columns, Tx, upsert_from
from tcp_lab.store._lease import Lease, holder_name
from tcp_lab.store._pgliteral import render

__all__ = ["PostgresBackend"]

T = TypeVar("T")
log = logging.getLogger("tcp_lab.store")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_STAGING = "tcp_lab_staging"
#: Key of the advisory lock that serialises schema changes.
_SCHEMA_LOCK = 0x7C9_1AB
#: Advisory-lock class of leases (:meth:`PostgresBackend.lease`); the key is hashed.
_LEASE_CLASS = 0x7C9_1AC
_LEASE_HOLDER = """
SELECT a.application_name, a.client_addr, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s
  AND l.objid = hashtext(%s)::oid AND l.database = (SELECT oid FROM pg_database
                                                    WHERE datname = current_database())
LIMIT 1"""
#: Words in a connection failure that waiting will not fix (bad credentials, no such database).
_PERMANENT = ("authentication", "password", "does not exist", "permission denied", "pg_hba",
              "invalid")
_TRANSIENT_CODES = {"57P01", "57P02", "57P03", "53300", "40001", "40P01"}
_CONNECT_HINT = ("start the server, or fix host, port, user, password or database in "
                 "TCP_LAB_DATABASE_URL")


def _orig(e: BaseException) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper (or ``e`` itself)."""
    if isinstance(e, sqlalchemy.exc.DBAPIError) and e.orig is not None:
        return e.orig
    return e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _is_transient(e: BaseException) -> bool:
    """A fault worth retrying: lost connection, server restarting, serialisation."""
    if isinstance(e, psycopg2.InterfaceError):
        return True
    if not isinstance(e, psycopg2.OperationalError):
        return False
    code = getattr(e, "pgcode", None)
    if code is None:  # the client could not connect or lost the connection
        text = str(e).lower()
        return not any(word in text for word in _PERMANENT)
    return code.startswith("08") or code in _TRANSIENT_CODES


def _is_disconnect(e: BaseException) -> bool:
    return isinstance(e, psycopg2.InterfaceError) or (
        isinstance(e, psycopg2.OperationalError) and getattr(e, "pgcode", None) in (None, "57P01")
    )


class _PgTx(Tx):
    def __init__(self, backend: PostgresBackend, cur: Any) -> None:
        self._backend = backend
        self.cur = cur

    def execute(self, stmt: sa.Executable | str) -> None:
        sql, params = self._backend.compile(stmt)
        self.cur.execute(sql, params or None)

    def fetch(self, stmt: sa.Executable) -> list[tuple[Any, ...]]:
        self.execute(stmt)
        return self.cur.fetchall()

    def execute_sql(self, sql: str, params: Any) -> None:
        self.cur.execute(sql, params)

    def copy(self, sql: str, buffer: io.BytesIO) -> None:
        self.cur.copy_expert(sql, buffer, size=1 << 20)


class PostgresBackend(Backend):
    """A PostgreSQL database behind ``postgresql://…[?schema=NAME]``."""

    name = "postgresql"
    #: Seconds to wait before each retry of an operation / of the first connection.
    retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    connect_retry_delays: tuple[float, ...] = (0.2, 0.4)

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = redact_url(url) or url
        try:
            parsed = make_url(url)
        except Exception as e:  # noqa: BLE001 - ArgumentError/ValueError
            raise ConfigError(f"database URL {self.url!r} is malformed ({e})") from None
        self.schema = parsed.query.get("schema")
        if isinstance(self.schema, tuple):
            raise ConfigError(f"database URL {self.url!r}: schema= given twice")
        if self.schema is not None and not _SCHEMA_NAME.match(self.schema):
            raise ConfigError(
                f"database URL {self.url!r}: schema {self.schema!r} is not a plain lower-case "
                "identifier",
                hint="use letters a-z, digits and _, e.g. ?schema=tcp_lab",
            )
        parsed = parsed.set(drivername="postgresql+psycopg2").difference_update_query(["schema"])
        args: dict[str, Any] = {}
        for key, default in (("application_name", "tcp_lab"), ("connect_timeout", 5)):
            if key not in parsed.query:
                args[key] = default
        if self.schema:
            options = str(parsed.query.get("options", ""))
            args["options"] = f"{options} -c search_path={self.schema}".strip()
        self.dialect = PGDialect_psycopg2()
        self._engine = sa.create_engine(parsed, pool_size=5, max_overflow=10,
                                        connect_args=args)
        self._partitions: set[str] = set()
        self._partitions_lock = threading.Lock()
        self._closed = False
        try:
            self._retrying(self._attempt(self._prepare, exclusive=False), "connect",
                           self.connect_retry_delays)
        except BaseException:
            self._engine.dispose()
            raise

    def _prepare(self, tx: Tx) -> None:
        if self.schema:
            tx.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
        else:
            tx.fetch(sa.select(sa.literal(1)))

    # -- plumbing -------------------------------------------------------------------
    def compile(self, stmt: sa.Executable | str) -> tuple[str, dict[str, Any]]:
        """SQL text and named parameters for psycopg2."""
        if isinstance(stmt, str):
            return stmt, {}
        # render_postcompile: an IN list becomes one named parameter per value
        compiled = stmt.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": True})
        return compiled.string, dict(compiled.params or {})

    def template(self, stmt: sa.Executable) -> tuple[str, None]:
        return stmt.compile(dialect=self.dialect).string, None

    def bind(self, template: tuple[str, Any], values: Mapping[str, Any]) -> Mapping[str, Any]:
        return values

    def _attempt(self, fn: Callable[[_PgTx], T], *, exclusive: bool) -> Callable[[], T]:
        def attempt() -> T:
            if self._closed:
                raise ServiceError(f"store {self.url} is closed",
                                   hint="open a new one with open_store()")
            conn = self._engine.raw_connection()
            try:
                cur = conn.cursor()
                if exclusive:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                result = fn(_PgTx(self, cur))
                conn.commit()
                return result
            except BaseException as e:
                if _is_disconnect(_orig(e)):
                    conn.invalidate()
                else:
                    try:
                        conn.rollback()
                    except psycopg2.Error:
                        conn.invalidate()
                raise
            finally:
                conn.close()

        return attempt

    def _retrying(self, attempt: Callable[[], T], what: str,
                  delays: Sequence[float] | None = None) -> T:
        delays = self.retry_delays if delays is None else delays
        for i in range(len(delays) + 1):
            try:
                return attempt()
            except (psycopg2.Error, sqlalchemy.exc.DBAPIError) as e:
                err = _orig(e)
                if not _is_transient(err) or i == len(delays):
                    raise self._translate(err, what, i + 1) from e
                log.warning("PostgreSQL %s: %s failed (%s); retry %d of %d in %.2f s",
                            self.url, what, _first_line(err), i + 1, len(delays), delays[i])
                if _is_disconnect(err):
                    self._engine.dispose()  # every pooled connection is suspect now
                time.sleep(delays[i])
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, e: BaseException, what: str, attempts: int) -> TcpLabError:
        msg = _first_line(e)
        where = f"PostgreSQL at {self.url}"
        if what == "connect":
            return ServiceError(f"{where}: cannot connect ({msg})", hint=_CONNECT_HINT)
        if _is_transient(e):
            return ServiceError(f"{where}: {what} failed after {attempts} attempts ({msg})",
                                hint="check that the server is running, then retry")
        if isinstance(e, psycopg2.errors.UndefinedTable):
            return ConfigError(f"{where}: {what}: {msg}", hint="create the tables with "
                               "`tcp-lab db init` (or store.init_schema())")
        if isinstance(e, psycopg2.DataError | psycopg2.IntegrityError):
            return DataError(f"{where}: {what}: {msg}")
        return ServiceError(f"{where}: {what} failed ({msg})")

    def run(self, fn: Callable[[Tx], T], *, write: bool, exclusive: bool = False,
            what: str = "query") -> T:
        return self._retrying(self._attempt(fn, exclusive=exclusive), what)

    def run_statements(self, statements: Sequence[tuple[str, Any]], *, what: str) -> None:
        """Send the statements as one script: one round trip, one transaction.

        PostgreSQL runs the statements of one simple-protocol query as a single
        transaction (all or none); in autocommit mode psycopg2 sends no BEGIN
        and COMMIT of its own around it, so a bot's candle costs one round trip.
        """
        if not statements:
            return

        def write(tx: _PgTx) -> None:
            conn = tx.cur.connection
            script = b";\n".join(render(tx.cur, sql, params) for sql, params in statements)
            conn.autocommit = True
            try:
                tx.cur.execute(script)
            finally:
                if not conn.closed:
                    conn.autocommit = False

        self.run(write, write=True, what=what)

    # -- bulk paths -----------------------------------------------------------------
    def bulk_upsert(self, table: sa.Table, fixed: Mapping[str, Any], data: Columns, *,
                    update: bool) -> None:
        if table.info.get("partition") == "month" and len(data["ts"]):
            self._ensure_partitions(table, data["ts"])
        if len(data["ts"]) <= self.small_batch:
            return self.small_upsert(table, fixed, data, update=update)
        wire = _pgcopy.wire_columns(table, list(data))
        payloads: dict[str, bytes | None] = {}  # built on first use, kept across retries

        def payload(kind: str) -> bytes | None:
            if kind not in payloads:
                payloads[kind] = (_pgcopy.encode(data, wire) if kind == "staging"
                                  else _pgcopy.encode_direct(table, fixed, data))
            return payloads[kind]

        self._retrying(
            self._attempt(lambda tx: self._copy_upsert(tx, table, fixed, data, wire, payload,
                                                       update), exclusive=False),
            f"write {table.name}",
        )

    def _copy_upsert(self, tx: _PgTx, table: sa.Table, fixed: Mapping[str, Any],
                     data: Columns, wire: Sequence[_pgcopy.WireColumn],
                     payload: Callable[[str], bytes | None], update: bool) -> None:
        same_series = [table.c[k] == v for k, v in fixed.items()]
        lo, hi = tx.fetch(sa.select(sa.func.min(table.c.ts), sa.func.max(table.c.ts))
                          .where(*same_series))[0]
        first, last = (UNIX_EPOCH + dt.timedelta(microseconds=int(data["ts"].min())),
                       UNIX_EPOCH + dt.timedelta(microseconds=int(data["ts"].max())))
        if lo is None or last < lo or first > hi:
            # Nothing stored in the batch's range: COPY straight into the table, unless the
            # rows have no fixed-width form or another writer raced us (a key conflict).
            direct = payload("direct")
            if direct is not None:
                tx.execute("SAVEPOINT tcp_lab_direct")
                try:
                    tx.copy(f"COPY {table.name} FROM STDIN (FORMAT binary)", io.BytesIO(direct))
                    tx.execute("RELEASE SAVEPOINT tcp_lab_direct")
                    return
                except psycopg2.errors.UniqueViolation:
                    tx.execute("ROLLBACK TO SAVEPOINT tcp_lab_direct")
        types = {"ts": "timestamptz"}
        cols = ", ".join(f"{c.name} {types.get(c.kind, c.sql_type)}" for c in wire)
        tx.execute(f"CREATE TEMP TABLE {_STAGING} ({cols}) ON COMMIT DROP")
        tx.copy(f"COPY {_STAGING} FROM STDIN (FORMAT binary)", io.BytesIO(payload("staging")))
        staging = sa.table(_STAGING, *(sa.column(c.name) for c in wire))
        cast = {c.name: c.to_table(staging.c[c.name]) for c in wire}
        if lo is not None:  # the overlap with stored rows needs ON CONFLICT
            overlap = staging.c.ts.between(lo, hi)
            tx.execute(upsert_from(table, fixed, staging, update=update, cast=cast,
                                   where=overlap))
            outside: sa.ColumnElement[bool] | None = ~overlap
        else:
            outside = None
        # Rows outside the stored range cannot conflict unless another writer raced us:
        # insert them plainly (much faster), and fall back to ON CONFLICT if one did.
        tx.execute("SAVEPOINT tcp_lab_fast")
        try:
            tx.execute(upsert_from(table, fixed, staging, update=update, cast=cast,
                                   where=outside, conflict=False))
        except psycopg2.errors.UniqueViolation:
            tx.execute("ROLLBACK TO SAVEPOINT tcp_lab_fast")
            tx.execute(upsert_from(table, fixed, staging, update=update, cast=cast,
                                   where=outside))
        tx.execute("RELEASE SAVEPOINT tcp_lab_fast")

    def _ensure_partitions(self, table: sa.Table, ts: np.ndarray) -> None:
        months = np.unique(ts.view("datetime64[us]").astype("datetime64[M]"))
        wanted = {f"{table.name}_p{str(m).replace('-', '_')}": m for m in months}
        with self._partitions_lock:
            missing = {k: m for k, m in wanted.items() if k not in self._partitions}
        if not missing:
            return

        def create(tx: Tx) -> None:
            for name, month in sorted(missing.items()):
                lo = pd.Timestamp(month).strftime("%Y-%m-%d 00:00:00+00")
                hi = pd.Timestamp(month + np.timedelta64(1, "M")).strftime("%Y-%m-%d 00:00:00+00")
                tx.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table.name} "
                           f"FOR VALUES FROM ('{lo}') TO ('{hi}')")

        self._retrying(self._attempt(create, exclusive=True), f"create {table.name} partitions")
        with self._partitions_lock:
            self._partitions.update(missing)

    def read_frame(
        self,
        table: sa.Table,
        columns: Sequence[str],
        where: Sequence[sa.ColumnElement[bool]],
        order_by: Sequence[str],
    ) -> pd.DataFrame:
        wire = _pgcopy.wire_columns(table, columns)
        stmt = (
            sa.select(*(c.to_wire(table.c[c.name]).label(c.name) for c in wire))
            .where(*where)
            .order_by(*(table.c[c] for c in order_by))
        )
        sql, params = self.compile(stmt)

        def work(tx: Tx) -> bytes:
            assert isinstance(tx, _PgTx)
            query = tx.cur.mogrify(sql, params).decode()
            buf = io.BytesIO()
            tx.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)", buf)
            return buf.getvalue()

        payload = self._retrying(self._attempt(work, exclusive=False), f"read {table.name}")
        return _pgcopy.decode(payload, wire)

    def lease(self, role: str) -> Lease:
        """A session advisory lock on a connection of its own, kept until released.

        The server frees it when the holder's session ends, however it ends.
        """
        key = f"{self.schema or 'public'}:{role}"
        conn = self._retrying(self._dedicated_connection, "connect")
        try:
            conn.dbapi_connection.autocommit = True
            cur = conn.cursor()
            cur.execute("SET application_name = %s", (holder_name(role),))
            cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LEASE_CLASS, key))
            if not cur.fetchone()[0]:
                cur.execute(_LEASE_HOLDER, (_LEASE_CLASS, key))
                row = cur.fetchone()
                who = (f"{row[0]} (connected from {row[1] or 'a local socket'} since "
                       f"{row[2]:%Y-%m-%d %H:%M:%S %Z})" if row else "another session")
                raise ServiceError(f"PostgreSQL at {self.url}: the {role} lease of schema "
                                   f"{self.schema or 'public'} is held by {who}",
                                   hint=f"stop the other {role} first (one per database)")
        except BaseException:
            conn.close()
            raise

        def release() -> None:
            try:
                conn.close()  # ends the session, and with it the lock
            except psycopg2.Error:  # already gone: so is the lock
                pass

        return Lease(role, release)

    def _dedicated_connection(self) -> Any:
        conn = self._engine.raw_connection()
        conn.detach()  # closed for real when released, never handed back to the pool
        return conn

    def describe(self) -> dict[str, Any]:
        return {"schema": self.schema or "public"}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()
