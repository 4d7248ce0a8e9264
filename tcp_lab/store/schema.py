"""Table definitions and the ordered list of schema migrations.

The tables are SQLAlchemy Core objects, the single place where column names,
types and keys are written down; each backend compiles them to its own DDL.
Two portable types cover what differs: :class:`KeyText` (``TEXT COLLATE "C"``
on PostgreSQL, so key comparisons are bytewise and fast on both backends) and
:class:`Json` (``JSONB`` on PostgreSQL, ``JSON`` on DuckDB).

Migrations are explicit: :data:`MIGRATIONS` is an ordered list, each entry
applied once by :meth:`tcp_lab.store.Store.init_schema` and recorded in
``schema_version``. To change the schema, append a :class:`Migration`; never
edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex, CreateTable, ExecutableDDLElement

__all__ = [
    "metadata",
    "market_data",
    "raw_trades",
    "bots",
    "signals",
    "trades",
    "bot_performance",
    "schema_version",
    "DATA_TABLES",
    "Migration",
    "MIGRATIONS",
    "SCHEMA_VERSION",
]


class KeyText(sa.Text):
    """Text used in keys: bytewise ordering on every backend."""

    __visit_name__ = "tcp_lab_key_text"


class Json(sa.Text):
    """A JSON document, passed to and from the database as text."""

    __visit_name__ = "tcp_lab_json"


@compiles(KeyText, "postgresql")
def _key_text_pg(type_, compiler, **kw) -> str:
    return 'TEXT COLLATE "C"'


@compiles(KeyText)
def _key_text_default(type_, compiler, **kw) -> str:
    return "VARCHAR"


@compiles(Json, "postgresql")
def _json_pg(type_, compiler, **kw) -> str:
    return "JSONB"


@compiles(Json)
def _json_default(type_, compiler, **kw) -> str:
    return "JSON"


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def _float(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


metadata = sa.MetaData()

#: Candles, one row per (exchange, symbol, timeframe, close time).
market_data = sa.Table(
    "market_data",
    metadata,
    sa.Column("exchange", KeyText, nullable=False),
    sa.Column("symbol", KeyText, nullable=False),
    sa.Column("timeframe", KeyText, nullable=False),
    _ts("ts", nullable=False),
    _float("open"),
    _float("high"),
    _float("low"),
    _float("close"),
    _float("volume"),
    sa.Column("trade_count", sa.BigInteger(), nullable=False),
    _float("vwap", nullable=True),
    sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "ts", name="market_data_pkey"),
)

#: Market trades (ticks). The key orders ``ts`` before ``id`` so range reads use it;
#: PostgreSQL partitions the table by month (partitions are created on demand).
raw_trades = sa.Table(
    "raw_trades",
    metadata,
    sa.Column("exchange", KeyText, nullable=False),
    sa.Column("symbol", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("id", sa.BigInteger(), nullable=False, autoincrement=False),
    _float("price"),
    _float("amount"),
    sa.Column("side", KeyText, nullable=True, info={"categories": ("buy", "sell")}),
    sa.PrimaryKeyConstraint("exchange", "symbol", "ts", "id", name="raw_trades_pkey"),
    postgresql_partition_by="RANGE (ts)",
    info={"partition": "month"},
)

#: Paper-trading bots: definition, liveness and restart bookkeeping, broker state.
bots = sa.Table(
    "bots",
    metadata,
    sa.Column("id", KeyText, primary_key=True),
    sa.Column("name", sa.Text()),
    sa.Column("strategy", sa.Text(), nullable=False),
    sa.Column("config_path", sa.Text()),
    sa.Column("status", sa.Text(), nullable=False),
    _ts("heartbeat"),
    _ts("last_candle_ts"),
    sa.Column("restart_count", sa.Integer(), nullable=False),
    sa.Column("restart_times", Json()),
    sa.Column("last_error", sa.Text()),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    sa.Column("state", Json()),
)

#: A strategy's decision per candle.
signals = sa.Table(
    "signals",
    metadata,
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    _float("confidence", nullable=True),
    _float("price", nullable=True),
    sa.Column("indicators", Json()),
    sa.PrimaryKeyConstraint("bot_id", "ts", name="signals_pkey"),
)

#: Fills of the paper broker; one per (bot, candle, side), so a replayed candle
#: rewrites its fill instead of adding one.
trades = sa.Table(
    "trades",
    metadata,
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("side", KeyText, nullable=False),
    _float("price"),
    _float("amount"),
    _float("fee"),
    _float("realized_pnl", nullable=True),
    sa.PrimaryKeyConstraint("bot_id", "ts", "side", name="trades_pkey"),
)

#: Equity curve of each bot, one row per candle.
bot_performance = sa.Table(
    "bot_performance",
    metadata,
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    _float("cash"),
    _float("position"),
    _float("equity"),
    sa.PrimaryKeyConstraint("bot_id", "ts", name="bot_performance_pkey"),
)

#: One row per applied migration.
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text(), nullable=False),
    _ts("applied_at", nullable=False),
)

#: The tables :meth:`Store.info` reports, in display order.
DATA_TABLES = (market_data, raw_trades, bots, signals, trades, bot_performance)


@dataclass(frozen=True)
class Migration:
    """One schema change: ``statements(dialect)`` returns the DDL to run, in order."""

    version: int
    description: str
    statements: Callable[[Dialect], Sequence[ExecutableDDLElement | str]]


def _create(tables: Sequence[sa.Table]) -> Callable[[Dialect], list[ExecutableDDLElement]]:
    def statements(dialect: Dialect) -> list[ExecutableDDLElement]:
        out: list[ExecutableDDLElement] = []
        for table in tables:
            out.append(CreateTable(table, if_not_exists=True))
            out.extend(CreateIndex(ix, if_not_exists=True) for ix in table.indexes)
        return out

    return statements


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "market data, raw trades, bots, signals, trades, performance",
              _create(DATA_TABLES)),
)

#: The version a fully migrated database has.
SCHEMA_VERSION = MIGRATIONS[-1].version
