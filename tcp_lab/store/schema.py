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
    "bot_owners",
    "bot_corrections",
    "quiet_slots",
    "series_sources",
    "schema_version",
    "DATA_TABLES",
    "INFO_TABLES",
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
#: On DuckDB the key is not indexed (migration 2): maintaining an index entry per
#: trade made bulk imports 3-10x slower, so :meth:`Store.save_raw_trades` keeps it
#: unique itself, inserting only the rows whose key is not stored in the batch's id range.
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

#: A strategy's decision per candle and symbol (a portfolio bot trades several symbols
#: from one account, so it has one signal per symbol at each close time).
signals = sa.Table(
    "signals",
    metadata,
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("symbol", KeyText, nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    _float("confidence", nullable=True),
    _float("price", nullable=True),
    sa.Column("indicators", Json()),
    sa.PrimaryKeyConstraint("bot_id", "ts", "symbol", name="signals_pkey"),
)

#: The signals table of schema versions 1-5 (one signal per bot and candle), for migration 1.
_signals_v1 = sa.Table(
    "signals",
    sa.MetaData(),
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    _float("confidence", nullable=True),
    _float("price", nullable=True),
    sa.Column("indicators", Json()),
    sa.PrimaryKeyConstraint("bot_id", "ts", name="signals_pkey"),
)

#: Fills of the paper broker; ``seq`` orders the fills of one candle (a stop or
#: target, then the close's order), across the symbols of a portfolio bot, so a
#: replayed candle rewrites its fills instead of adding some. ``reason``: signal,
#: stop_loss, take_profit, trailing_stop or reversal.
trades = sa.Table(
    "trades",
    metadata,
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("symbol", KeyText, nullable=False),
    sa.Column("seq", sa.SmallInteger(), nullable=False),
    sa.Column("side", KeyText, nullable=False),
    _float("price"),
    _float("amount"),
    _float("fee"),
    _float("realized_pnl", nullable=True),
    sa.Column("reason", KeyText, nullable=True),
    sa.PrimaryKeyConstraint("bot_id", "ts", "seq", name="trades_pkey"),
)

#: The fills table of schema versions 3-5 (no symbol), for migration 3.
_trades_v3 = sa.Table(
    "trades",
    sa.MetaData(),
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.Column("seq", sa.SmallInteger(), nullable=False),
    sa.Column("side", KeyText, nullable=False),
    _float("price"),
    _float("amount"),
    _float("fee"),
    _float("realized_pnl", nullable=True),
    sa.Column("reason", KeyText, nullable=True),
    sa.PrimaryKeyConstraint("bot_id", "ts", "seq", name="trades_pkey"),
)

#: The fills table of schema version 1 (one fill per candle and side), for migration 1.
_trades_v1 = sa.Table(
    "trades",
    sa.MetaData(),
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

#: Which host may write each bot's records: a fencing token, raised by every launch.
#: A host's records transaction checks its token (:meth:`Store.write_bot_candles`), so
#: a host that lost the bot (an orphan, a hung host) can never write after the next one.
bot_owners = sa.Table(
    "bot_owners",
    metadata,
    sa.Column("bot_id", KeyText, primary_key=True),
    sa.Column("token", sa.BigInteger(), nullable=False),
    sa.Column("host", sa.Text()),
    _ts("claimed_at", nullable=False),
)

#: A candle corrected (late trades) after a bot had processed it: what the bot decided
#: then, and what it would have decided on the corrected candle. Fills are not rewritten.
bot_corrections = sa.Table(
    "bot_corrections",
    metadata,
    sa.Column("bot_id", KeyText, nullable=False),
    _ts("ts", nullable=False),
    _ts("seen_at", nullable=False),
    sa.Column("action", sa.Text()),
    sa.Column("corrected_action", sa.Text(), nullable=False),
    _float("close", nullable=True),
    _float("corrected_close"),
    sa.Column("detail", sa.Text()),
    sa.PrimaryKeyConstraint("bot_id", "ts", name="bot_corrections_pkey"),
)

#: Grid slots of a candle series that the exchange confirmed had no trades (quiet): the
#: data check counts a missing candle there as explained, not as a hole. Written by
#: backfills and repairs (:mod:`tcp_lab.data.backfill`); a candle stored later in such a
#: slot simply wins.
quiet_slots = sa.Table(
    "quiet_slots",
    metadata,
    sa.Column("exchange", KeyText, nullable=False),
    sa.Column("symbol", KeyText, nullable=False),
    sa.Column("timeframe", KeyText, nullable=False),
    _ts("ts", nullable=False),
    sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "ts", name="quiet_slots_pkey"),
)

#: Where each candle series was collected from: the base URL of the exchange or emulator,
#: redacted (no credentials). ``tcp-lab data check --repair`` goes back there.
series_sources = sa.Table(
    "series_sources",
    metadata,
    sa.Column("exchange", KeyText, nullable=False),
    sa.Column("symbol", KeyText, nullable=False),
    sa.Column("timeframe", KeyText, nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    _ts("recorded_at", nullable=False),
    sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", name="series_sources_pkey"),
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
#: Every table a user may ask about (``tcp-lab db info``): the first version's (which
#: migration 1 creates from ``DATA_TABLES``, in their first shapes, so that tuple stays as it
#: was) and the later ones.
INFO_TABLES = (*DATA_TABLES, bot_owners, bot_corrections, quiet_slots, series_sources)


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


def _unindexed_raw_trades(dialect: Dialect) -> list[ExecutableDDLElement | str]:
    """DuckDB: rebuild ``raw_trades`` without its primary-key index (rows kept)."""
    if dialect.name != "duckdb":
        return []
    new = sa.Table("raw_trades_unindexed", sa.MetaData(),
                   *(sa.Column(c.name, c.type, nullable=c.nullable) for c in raw_trades.columns))
    return [CreateTable(new), f"INSERT INTO {new.name} SELECT * FROM {raw_trades.name}",
            f"DROP TABLE {raw_trades.name}", f"ALTER TABLE {new.name} RENAME TO {raw_trades.name}"]


def _fills_in_sequence(dialect: Dialect) -> list[ExecutableDDLElement | str]:
    """Version 3: fills keyed by their order within a candle, with the reason they filled."""
    out: list[ExecutableDDLElement | str] = ["ALTER TABLE trades RENAME TO trades_v1"]
    if dialect.name == "postgresql":  # constraint names are per schema there
        out.append("ALTER TABLE trades_v1 RENAME CONSTRAINT trades_pkey TO trades_v1_pkey")
    out.append(CreateTable(_trades_v3))
    out.append("INSERT INTO trades (bot_id, ts, seq, side, price, amount, fee, realized_pnl, "
               "reason) SELECT bot_id, ts, CASE WHEN side = 'buy' THEN 0 ELSE 1 END, side, "
               "price, amount, fee, realized_pnl, 'signal' FROM trades_v1")
    out.append("DROP TABLE trades_v1")
    return out


#: The first shape of each table that has changed since migration 1 created it.
_FIRST_SHAPES = {signals.name: _signals_v1, trades.name: _trades_v1}


def _bot_symbol(dialect: Dialect) -> str:
    """SQL for the symbol in the stored config of bot ``b`` (NULL when it has none)."""
    if dialect.name == "postgresql":
        return "b.state->'config'->>'symbol'"
    return "json_extract_string(b.state, '$.config.symbol')"


def _records_per_symbol(dialect: Dialect) -> list[ExecutableDDLElement | str]:
    """Version 6: signals keyed by symbol too, fills naming theirs (portfolio bots).

    The rows already stored are a single-symbol bot's: they get the symbol of the
    bot's stored config (``bots.state``), or ``''`` when it is unknown.
    """
    symbol = f"COALESCE({_bot_symbol(dialect)}, '')"
    out: list[ExecutableDDLElement | str] = []
    for new in (signals, trades):  # the old shapes: _signals_v1, _trades_v3
        old = f"{new.name}_v5"
        out.append(f"ALTER TABLE {new.name} RENAME TO {old}")
        if dialect.name == "postgresql":  # constraint names are per schema there
            out.append(f"ALTER TABLE {old} RENAME CONSTRAINT {new.name}_pkey TO {old}_pkey")
        out.append(CreateTable(new))
        names = [c.name for c in new.columns]
        values = [symbol if c == "symbol" else f"o.{c}" for c in names]
        out.append(f"INSERT INTO {new.name} ({', '.join(names)}) SELECT {', '.join(values)} "
                   f"FROM {old} AS o LEFT JOIN {bots.name} AS b ON b.id = o.bot_id")
        out.append(f"DROP TABLE {old}")
    return out


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "market data, raw trades, bots, signals, trades, performance",
              _create([_FIRST_SHAPES.get(t.name, t) for t in DATA_TABLES])),
    Migration(2, "raw trades: key kept unique by the writer, not by an index (DuckDB)",
              _unindexed_raw_trades),
    Migration(3, "bot fills: several per candle (seq), and the reason each filled",
              _fills_in_sequence),
    Migration(4, "bot hosts: fencing tokens (bot_owners) and late-trade corrections",
              _create([bot_owners, bot_corrections])),
    Migration(5, "candle series: confirmed-quiet slots and the source each was collected from",
              _create([quiet_slots, series_sources])),
    Migration(6, "bot signals and fills name their symbol (portfolio bots)",
              _records_per_symbol),
)

#: The version a fully migrated database has.
SCHEMA_VERSION = MIGRATIONS[-1].version
