"""Bot records: definitions and liveness, signals, fills and the equity curve.

Each write is an upsert by the table's key (a bot id; a bot and candle time),
so replaying a candle rewrites its rows instead of adding new ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from tcp_lab.errors import DataError
from tcp_lab.store import schema as S
from tcp_lab.store._backend import RowsWrite
from tcp_lab.store._convert import (
    check_name,
    from_db_time,
    loads_json,
    py_time,
    time_range,
    utc,
)
from tcp_lab.store._group import GroupCommit
from tcp_lab.store._records import (
    JsonText,
    _bot_field,
    _fill_row,
    _performance_row,
    _signal_row,
    _text,
    bot_candle_record,
    portfolio_candle_record,
)
from tcp_lab.timeframes import TS_DTYPE

if TYPE_CHECKING:
    from tcp_lab.store._backend import Backend

__all__ = ["BotsMixin", "BOT_FIELDS", "JsonText", "bot_candle_record",
           "portfolio_candle_record"]

#: Fields :meth:`BotsMixin.update_bot` accepts.
BOT_FIELDS = ("name", "strategy", "config_path", "status", "heartbeat", "last_candle_ts",
              "restart_count", "restart_times", "last_error", "state")
_TIME_FIELDS = ("heartbeat", "last_candle_ts", "created_at", "updated_at")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now("UTC").as_unit("us")


def _bot_row(row: Sequence[Any]) -> dict[str, Any]:
    bot = dict(zip([c.name for c in S.bots.columns], row, strict=True))
    for key in _TIME_FIELDS:
        bot[key] = from_db_time(bot[key])
    bot["restart_times"] = [from_db_time(t) for t in loads_json(bot["restart_times"]) or []]
    bot["state"] = loads_json(bot["state"]) or {}
    bot["restart_count"] = int(bot["restart_count"])
    return bot


class BotsMixin:
    """The bot part of :class:`~tcp_lab.store.Store` (needs ``self._backend``)."""

    _backend: Backend

    def _upsert_row(self, table: sa.Table, values: dict[str, Any]) -> None:
        key = [c.name for c in table.primary_key.columns]
        stmt = pg.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=key, set_={k: stmt.excluded[k] for k in values if k not in key})
        self._backend.run(lambda tx: tx.execute(stmt), write=True, what=f"write {table.name}")

    # -- bots -----------------------------------------------------------------------
    def upsert_bot(self, bot_id: str, *, strategy: str, name: str | None = None,
                   config_path: str | None = None, status: str | None = None,
                   state: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a bot, or update the definition of an existing one.

        Arguments left as None keep their stored value (a new bot gets
        ``name=bot_id``, ``status="stopped"``, empty state). Heartbeat and
        restart bookkeeping are never touched here: see :meth:`update_bot`.

        Returns
        -------
        dict
            The stored bot, as :meth:`get_bot` returns it.
        """
        bot_id = check_name(bot_id, "bot_id")
        now = py_time(_now())
        given = {"strategy": check_name(strategy, "strategy"),
                 "name": _text(name, "name"), "config_path": _text(config_path, "config_path"),
                 "status": _text(status, "status"), "state": _bot_field("state", state)}
        values = {"id": bot_id, "name": bot_id, "strategy": given["strategy"], "config_path": None,
                  "status": "stopped", "heartbeat": None, "last_candle_ts": None,
                  "restart_count": 0, "restart_times": "[]", "last_error": None,
                  "created_at": now, "updated_at": now, "state": "{}"}
        values |= {k: v for k, v in given.items() if v is not None}
        stmt = pg.insert(S.bots).values(**values)
        update = [k for k, v in given.items() if v is not None] + ["updated_at"]
        stmt = stmt.on_conflict_do_update(index_elements=["id"],
                                          set_={k: stmt.excluded[k] for k in update})
        self._backend.run(lambda tx: tx.execute(stmt), write=True, what="write bots")
        return self._require_bot(bot_id)

    def update_bot(self, bot_id: str, **fields: Any) -> dict[str, Any]:
        """Set some fields of a stored bot (``status``, ``heartbeat``, ``state``, …).

        Parameters
        ----------
        bot_id
            The bot.
        **fields
            Any of :data:`BOT_FIELDS`; times must be tz-aware, ``state`` a dict,
            ``restart_times`` a list of times.

        Raises
        ------
        DataError
            An unknown field (with a suggestion), a bad value, or no such bot.

        Examples
        --------
        >>> store.update_bot("sma-btc", status="running",
        ...                  heartbeat=pd.Timestamp.now("UTC"))  # doctest: +SKIP
        """
        bot_id = check_name(bot_id, "bot_id")
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in BOT_FIELDS:
                guess = difflib.get_close_matches(key, BOT_FIELDS, n=1)
                hint = f"did you mean {guess[0]!r}?" if guess else "known: " + ", ".join(BOT_FIELDS)
                raise DataError(f"update_bot({bot_id!r}): unknown field {key!r}", hint=hint)
            values[key] = _bot_field(key, value)
        if values:
            values["updated_at"] = py_time(_now())
            stmt = sa.update(S.bots).where(S.bots.c.id == bot_id).values(**values)
            self._backend.run(lambda tx: tx.execute(stmt), write=True, what="write bots")
        return self._require_bot(bot_id)

    def get_bot(self, bot_id: str) -> dict[str, Any] | None:
        """The stored bot as a dict (times as UTC Timestamps), or None."""
        stmt = sa.select(S.bots).where(S.bots.c.id == check_name(bot_id, "bot_id"))
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False, what="read bots")
        return _bot_row(rows[0]) if rows else None

    def _require_bot(self, bot_id: str) -> dict[str, Any]:
        bot = self.get_bot(bot_id)
        if bot is None:
            raise DataError(f"no bot {bot_id!r} in the store",
                            hint="create it with store.upsert_bot(bot_id, strategy=...)")
        return bot

    def list_bots(self) -> pd.DataFrame:
        """Every stored bot, one row each, ordered by id (columns as :meth:`get_bot`)."""
        stmt = sa.select(S.bots).order_by(S.bots.c.id)
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False, what="read bots")
        rows = [_bot_row(r) for r in rows]
        df = pd.DataFrame(rows, columns=[c.name for c in S.bots.columns])
        for key in _TIME_FIELDS:
            df[key] = pd.DatetimeIndex(list(df[key]), dtype=TS_DTYPE)
        return df.astype({"restart_count": "int64"})

    # -- per-candle records ---------------------------------------------------------
    def record_signal(self, bot_id: str, ts: object, action: str, *,
                      confidence: float | None = None, price: float | None = None,
                      indicators: Mapping[str, Any] | None = None, symbol: str = "") -> None:
        """Store a bot's signal for ``symbol`` at the candle closing at ``ts`` (rewrites an
        existing one). ``symbol`` may stay ``""`` for a single-symbol bot."""
        self._upsert_row(S.signals, _signal_row(
            check_name(bot_id, "bot_id"), py_time(utc(ts, "ts")), {
                "symbol": symbol, "action": action, "confidence": confidence, "price": price,
                "indicators": indicators}))

    def record_bot_trade(self, bot_id: str, ts: object, side: str, price: float, amount: float,
                         *, fee: float = 0.0, realized_pnl: float | None = None, seq: int = 0,
                         reason: str | None = "signal", symbol: str = "") -> None:
        """Store a fill of a bot in ``symbol`` at candle ``ts``: the ``seq``-th of that
        candle (from 0, across symbols), rewritten on replay."""
        self._upsert_row(S.trades, _fill_row(check_name(bot_id, "bot_id"),
                                             py_time(utc(ts, "ts")), seq, {
            "symbol": symbol, "side": side, "price": price, "amount": amount, "fee": fee,
            "realized_pnl": realized_pnl, "reason": reason}))

    def record_performance(self, bot_id: str, ts: object, *, cash: float, position: float,
                           equity: float) -> None:
        """Store a bot's cash, position and equity after the candle closing at ``ts``."""
        self._upsert_row(S.bot_performance, _performance_row(
            check_name(bot_id, "bot_id"), py_time(utc(ts, "ts")), cash, position, equity))

    def _load(self, table: sa.Table, bot_id: str, start: object, end: object,
              convert: Mapping[str, Callable[[Any], Any]] | None = None) -> pd.DataFrame:
        cols = [c for c in table.columns if c.name not in ("bot_id", "ts")]
        stmt = (sa.select(table.c.ts, *cols)
                .where(table.c.bot_id == check_name(bot_id, "bot_id"),
                       *time_range(table.c.ts, start, end))
                .order_by(*table.primary_key.columns))
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False,
                                 what=f"read {table.name}")
        index = pd.DatetimeIndex([from_db_time(r[0]) for r in rows], dtype=TS_DTYPE, name="ts")
        data: dict[str, Any] = {}
        for i, col in enumerate(cols, 1):
            values = [r[i] for r in rows]
            if convert and col.name in convert:
                data[col.name] = pd.Series([convert[col.name](v) for v in values], index=index,
                                           dtype=object)
            elif isinstance(col.type, sa.Double):
                data[col.name] = pd.Series(values, index=index, dtype="float64")
            elif isinstance(col.type, sa.Integer):
                data[col.name] = pd.Series(values, index=index, dtype="int64")
            else:
                data[col.name] = pd.Series(values, index=index, dtype="str")
        return pd.DataFrame(data, index=index)

    def load_signals(self, bot_id: str, start: object = None, end: object = None) -> pd.DataFrame:
        """A bot's signals in ``[start, end]``: index ``ts``; symbol, action, confidence,
        price, indicators (dicts). A portfolio bot has one row per symbol at each ``ts``
        (ordered by symbol)."""
        return self._load(S.signals, bot_id, start, end,
                          {"indicators": lambda v: loads_json(v) or {}})

    def load_bot_trades(self, bot_id: str, start: object = None,
                        end: object = None) -> pd.DataFrame:
        """A bot's fills in ``[start, end]``: index ``ts``; symbol, seq, side, price, amount,
        fee, realized_pnl, reason; the fills of one ``ts`` in the order they filled (seq)."""
        return self._load(S.trades, bot_id, start, end)

    def load_performance(self, bot_id: str, start: object = None,
                         end: object = None) -> pd.DataFrame:
        """A bot's equity curve in ``[start, end]``: index ``ts``; cash, position, equity."""
        return self._load(S.bot_performance, bot_id, start, end)

    # -- one candle of a bot in one transaction (used by tcp_lab.bots) ------------------
    def record_bot_candle(self, bot_id: str, ts: object, *, action: str,
                          confidence: float | None, price: float | None,
                          indicators: Mapping[str, Any] | None,
                          fills: Sequence[Mapping[str, Any]] = (), cash: float, position: float,
                          equity: float, state: Mapping[str, Any] | str,
                          symbol: str = "") -> None:
        """Write what a bot did on the candle closing at ``ts``, all of it or nothing.

        The rows of :meth:`record_signal`, :meth:`record_bot_trade` (one per
        item of ``fills`` — ``side price amount fee realized_pnl reason``, and
        ``symbol`` if not the bot's — in the order they filled) and
        :meth:`record_performance`, and
        ``update_bot(bot_id, last_candle_ts=ts, state=state)``, in one
        transaction: a crash leaves the candle either fully recorded or not
        at all, and replaying it rewrites the same rows. ``state`` may be
        given already as JSON text.

        On PostgreSQL that transaction is one round trip. On DuckDB the
        candles that bots in this process record at the same moment share
        one transaction (group commit); the call returns once its own rows
        are committed.
        """
        record = bot_candle_record(
            bot_id, ts, action=action, confidence=confidence, price=price,
            indicators=indicators, fills=fills, cash=cash, position=position, equity=equity,
            state=state, symbol=symbol)
        if not self._backend.group_writes:
            self.write_bot_candles([record])
            return
        group = self.__dict__.get("_bot_candle_group")
        if group is None:
            group = self.__dict__.setdefault("_bot_candle_group",
                                             GroupCommit(self.write_bot_candles))
        group.submit(record)

    def write_bot_candles(self, records: Sequence[Mapping[str, Any]],
                          tokens: Mapping[str, int] | None = None) -> set[str]:
        """Write many bots' candles (:func:`bot_candle_record`,
        :func:`portfolio_candle_record`): one transaction per
        batch holding at most one candle per bot (one in all, in the normal course).

        With ``tokens`` (bot id -> the fencing token from :meth:`claim_bot`), each
        transaction first checks that every token is still current: the records of
        a bot claimed since by another writer are left out (never written), and the
        others are written.

        Returns
        -------
        set of str
            The bots whose records were left out because their token was stale.
        """
        lost: set[str] = set()
        for batch in _one_per_bot(list(records)):
            by_bot = {r["bot"]["id"]: r for r in batch if r["bot"]["id"] not in lost}
            lost |= self._fenced_write(by_bot, tokens, self._write_batch)
        return lost

    def _write_batch(self, by_bot: Mapping[str, Mapping[str, Any]],
                     fence: Mapping[str, int] | None) -> None:
        batch = list(by_bot.values())
        trades = [t for r in batch for t in r["trades"]]
        self._backend.write_rows([
            RowsWrite(S.signals, [s for r in batch for s in r["signals"]]),
            RowsWrite(S.trades, trades),
            RowsWrite(S.bot_performance, [r["performance"] for r in batch]),
            RowsWrite(S.bots, [r["bot"] for r in batch], update_only=True),
        ], what="write bots' candles", fence=fence)


def _one_per_bot(records: list[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Split ``records`` in order so that no bot appears twice in a batch."""
    batches: list[list[Mapping[str, Any]]] = [[]]
    seen: set[str] = set()
    for r in records:
        if r["bot"]["id"] in seen:
            batches.append([])
            seen = set()
        batches[-1].append(r)
        seen.add(r["bot"]["id"])
    return batches
