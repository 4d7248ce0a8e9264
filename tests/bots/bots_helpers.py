"""Helpers of the bot tests: a fast in-memory store double, configs, parity checks."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.bots import BotConfig
from tcp_lab.timeframes import TS_DTYPE

HERE = Path(__file__).parent
EXCHANGE, SYMBOL, TIMEFRAME = "binance", "BTC/USDT", "1m"


def make_config(name: str = "bot1", **kw: Any) -> BotConfig:
    """A bot on binance BTC/USDT 1m that trades every stored candle by default."""
    values = dict(name=name, strategy="sma_cross", parameters={"fast": 5, "slow": 20},
                  exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, start="earliest",
                  fees=0.001, slippage=0.0005)
    values.update(kw)
    return BotConfig(**values)


class FakeStore:
    """The part of :class:`tcp_lab.store.Store` a bot uses, in dicts (fast, same semantics)."""

    backend = "fake"

    def __init__(self) -> None:
        self.candles: dict[tuple[str, str, str], pd.DataFrame] = {}
        self.bots: dict[str, dict[str, Any]] = {}
        self.signals: dict[tuple[str, pd.Timestamp], dict[str, Any]] = {}
        self.trades: dict[tuple[str, pd.Timestamp, str], dict[str, Any]] = {}
        self.performance: dict[tuple[str, pd.Timestamp], dict[str, Any]] = {}
        self.writes = 0

    def save_candles(self, candles: pd.DataFrame, exchange: str, symbol: str,
                     timeframe: str) -> int:
        key = (exchange, symbol, timeframe)
        old = self.candles.get(key)
        df = candles if old is None else pd.concat([old[~old.index.isin(candles.index)],
                                                    candles]).sort_index()
        self.candles[key] = df
        return len(candles)

    def load_candles(self, exchange, symbol, timeframe, start=None, end=None) -> pd.DataFrame:
        df = self.candles[(exchange, symbol, timeframe)]
        if start is not None:
            df = df[df.index >= start]
        if end is not None:
            df = df[df.index <= end]
        return df

    def latest_candle_ts(self, exchange, symbol, timeframe):
        df = self.candles.get((exchange, symbol, timeframe))
        return None if df is None or df.empty else df.index[-1]

    def upsert_bot(self, bot_id, *, strategy, name=None, config_path=None, status=None,
                   state=None):
        row = self.bots.setdefault(bot_id, {
            "id": bot_id, "name": bot_id, "strategy": strategy, "config_path": None,
            "status": "stopped", "heartbeat": None, "last_candle_ts": None, "restart_count": 0,
            "restart_times": [], "last_error": None, "state": {}})
        given = dict(strategy=strategy, name=name, config_path=config_path, status=status,
                     state=state)
        row.update({k: v for k, v in given.items() if v is not None})
        return dict(row)

    def update_bot(self, bot_id, **fields):
        self.writes += 1
        self.bots[bot_id].update(fields)
        return dict(self.bots[bot_id])

    def get_bot(self, bot_id):
        row = self.bots.get(bot_id)
        return None if row is None else dict(row)

    def record_signal(self, bot_id, ts, action, *, confidence=None, price=None, indicators=None,
                      symbol=""):
        self.writes += 1
        # one signal per candle: a bot of one symbol (portfolio bots are tested on DuckDB)
        self.signals[(bot_id, ts)] = dict(symbol=symbol, action=action,
                                          confidence=confidence, price=price,
                                          indicators=indicators)

    def record_bot_trade(self, bot_id, ts, side, price, amount, *, fee=0.0, realized_pnl=None,
                         seq=0, reason="signal", symbol=""):
        self.writes += 1
        self.trades[(bot_id, ts, seq)] = dict(symbol=symbol, side=side, price=price,
                                              amount=amount, fee=fee,
                                              realized_pnl=realized_pnl, reason=reason)

    def record_performance(self, bot_id, ts, *, cash, position, equity):
        self.writes += 1
        self.performance[(bot_id, ts)] = dict(cash=cash, position=position, equity=equity)

    def record_bot_candle(self, bot_id, ts, *, action, confidence, price, indicators, fills=(),
                          cash, position, equity, state, symbol=""):
        self.record_signal(bot_id, ts, action, confidence=confidence, price=price,
                           indicators=indicators, symbol=symbol)
        self._record_rest(bot_id, ts, [{"symbol": symbol, **f} for f in fills], cash, position,
                          equity, state)

    def _record_rest(self, bot_id, ts, fills, cash, position, equity, state):
        for seq, fill in enumerate(fills):
            self.record_bot_trade(bot_id, ts, fill["side"], fill["price"], fill["amount"],
                                  fee=fill["fee"], realized_pnl=fill["realized_pnl"], seq=seq,
                                  reason=fill["reason"], symbol=fill["symbol"])
        self.record_performance(bot_id, ts, cash=cash, position=position, equity=equity)
        if isinstance(state, str):  # the store accepts the document as JSON text
            state = json.loads(state)
        self.update_bot(bot_id, last_candle_ts=ts, state=state)

    def write_bot_candles(self, records, tokens=None):
        """What a bot host writes: records built by ``tcp_lab.store.bot_candle_record`` (or
        ``portfolio_candle_record``: several signals)."""
        for r in records:
            perf, bot = r["performance"], r["bot"]
            ts = pd.Timestamp(perf["ts"])
            for sig in r["signals"]:
                self.record_signal(sig["bot_id"], ts, sig["action"],
                                   confidence=sig["confidence"], price=sig["price"],
                                   indicators=json.loads(sig["indicators"] or "null"),
                                   symbol=sig["symbol"])
            self._record_rest(perf["bot_id"], ts, r["trades"], perf["cash"], perf["position"],
                              perf["equity"], bot["state"])
        return set()

    def heartbeat_bots(self, bot_ids, now=None, tokens=None):
        for bot_id in bot_ids:
            self.update_bot(bot_id, heartbeat=now)
        return set()

    def _frame(self, table: dict, bot_id: str) -> pd.DataFrame:
        rows = sorted((k[1:], v) for k, v in table.items() if k[0] == bot_id)
        index = pd.DatetimeIndex([k[0] for k, _ in rows], dtype=TS_DTYPE, name="ts")
        return pd.DataFrame([v for _, v in rows], index=index)

    def load_signals(self, bot_id, start=None, end=None):
        return self._frame(self.signals, bot_id)

    def load_bot_trades(self, bot_id, start=None, end=None):
        df = self._frame(self.trades, bot_id)
        if "realized_pnl" in df:
            df["realized_pnl"] = df["realized_pnl"].astype("float64")
        return df

    def load_trade_prices(self, exchange, symbol, start=None, end=None):
        empty = np.zeros(0)
        return np.zeros(0, np.int64), empty, empty  # no market trades: the OHLC rule

    def load_performance(self, bot_id, start=None, end=None):
        return self._frame(self.performance, bot_id)


def backtest_fills(result) -> pd.DataFrame:
    """The backtest's fills, one row per candle: side, price, amount, fee, realized_pnl.

    Rebuilt from its (exit) trades: a candle where one trade exits and the
    next enters (a reversal) is one fill, as the bot records it.
    """
    events: dict[pd.Timestamp, list[tuple[float, float, float, float]]] = {}
    for r in result.trades.itertuples():
        sign = 1.0 if r.direction == "long" else -1.0
        events.setdefault(r.entry_time, []).append((sign * r.size, r.entry_price, r.entry_fees,
                                                    math.nan))
        if r.status == "closed":
            events.setdefault(r.exit_time, []).append((-sign * r.size, r.exit_price, r.exit_fees,
                                                       r.pnl))
    rows = {}
    for ts, ev in sorted(events.items()):
        amount = sum(e[0] for e in ev)
        pnls = [e[3] for e in ev if not math.isnan(e[3])]
        rows[ts] = {"side": "buy" if amount > 0 else "sell", "price": ev[0][1],
                    "amount": abs(amount), "fee": sum(e[2] for e in ev),
                    "realized_pnl": sum(pnls) if pnls else math.nan}
    index = pd.DatetimeIndex(list(rows), dtype=TS_DTYPE, name="ts")
    return pd.DataFrame(list(rows.values()), index=index)


def engine_fills(result) -> pd.DataFrame:
    """The backtest engine's fills, one row each (several per candle possible), in order."""
    from tcp_lab.execution import REASONS
    from tcp_lab.execution.simulate import ORDER_FIELDS

    o = dict(zip(ORDER_FIELDS, result.orders.T, strict=True))
    index = pd.DatetimeIndex(result.candles.index[o["idx"].astype(int)], name="ts")
    return pd.DataFrame({"side": np.where(o["side"] > 0, "buy", "sell"), "price": o["price"],
                         "amount": o["size"], "fee": o["fees"], "realized_pnl": np.nan,
                         "reason": [REASONS[int(r)] for r in o["reason"]]}, index=index)


def assert_same_fills(bot_trades: pd.DataFrame, expected: pd.DataFrame, rtol: float = 1e-9) -> None:
    """Same candles, sides, and prices/amounts/fees/P&L to ``rtol`` (relative)."""
    assert len(expected) > 0, "the backtest made no trades: a vacuous comparison"
    assert list(bot_trades.index) == list(expected.index)
    assert list(bot_trades["side"]) == list(expected["side"])
    for col in ("price", "amount", "fee", "realized_pnl"):
        got = bot_trades[col].to_numpy(dtype="float64")
        want = expected[col].to_numpy(dtype="float64")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=col)
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=0, err_msg=col)


def wait_until(predicate, timeout=40.0, what="condition"):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def caught_up(store, bot_id, ts):
    """The bot's stored last candle is ``ts``."""
    row = store.get_bot(bot_id)
    return row is not None and row["last_candle_ts"] == ts


def reached(store, bot_id, ts):
    """The bot's stored last candle is ``ts`` or later."""
    row = store.get_bot(bot_id)
    return row is not None and row["last_candle_ts"] is not None and row["last_candle_ts"] >= ts
