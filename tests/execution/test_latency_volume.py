"""Stops and targets on market trades with latency and a volume share (hand-checked cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.backtest import run_backtest
from tcp_lab.errors import ConfigError
from tcp_lab.strategies import BaseStrategy, StrategyOutput

T0 = pd.Timestamp("2024-03-01 00:01", tz="UTC")


class Fixed(BaseStrategy):
    """Entries/exits given per candle."""

    name = "fixed_signals_latency"

    def __init__(self, entries, exits) -> None:
        super().__init__()
        self._e, self._x = entries, exits

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        idx = candles.index
        return StrategyOutput(entries=pd.Series(self._e[: len(idx)], index=idx, dtype=bool),
                              exits=pd.Series(self._x[: len(idx)], index=idx, dtype=bool))


def market(rows):
    """Trades ``(seconds after T0, price, amount)`` and 1m candles built from them (the
    entry candle at T0 holds one trade at 100)."""
    trades = pd.DataFrame({
        "ts": [T0] + [T0 + pd.Timedelta(seconds=s) for s, _, _ in rows],
        "price": [100.0] + [p for _, p, _ in rows],
        "amount": [1.0] + [a for _, _, a in rows],
    })
    key = trades["ts"].dt.ceil("1min")
    g = trades.groupby(key)["price"]
    candles = pd.DataFrame({"open": g.first(), "high": g.max(), "low": g.min(),
                            "close": g.last(), "volume": trades.groupby(key)["amount"].sum()})
    return trades, candles.rename_axis("ts")


def run(trades, candles, entries=None, exits=None, **kw):
    n = len(candles)
    e = np.zeros(n, bool) if entries is None else np.asarray(entries, bool)
    if entries is None:
        e[0] = True
    x = np.zeros(n, bool) if exits is None else np.asarray(exits, bool)
    kw = dict(fees=0.0, size=1.0, size_type="amount", init_cash=1000.0) | kw
    return run_backtest(Fixed(e, x), candles, trades=trades, **kw)


STOP_BAR = [(10, 99.0, 1.0), (20, 94.0, 1.0), (20.1, 93.0, 1.0), (30, 96.0, 1.0)]


def test_without_latency_the_stop_fills_at_the_triggering_trade():
    r = run(*market(STOP_BAR), stop_loss=0.05)
    t = r.trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"]) == ("stop_loss", 94.0)


def test_latency_fills_at_the_first_trade_at_or_after_trigger_plus_latency():
    trades, candles = market(STOP_BAR)
    assert run(trades, candles, stop_loss=0.05, latency_ms=100).trades["exit_price"].iat[0] \
        == 93.0
    assert run(trades, candles, stop_loss=0.05, latency_ms=101).trades["exit_price"].iat[0] \
        == 96.0
    # nothing left in the bar: the stop fills on the next candle's first trade
    later = market(STOP_BAR + [(65, 90.0, 1.0), (70, 91.0, 1.0)])
    t = run(*later, stop_loss=0.05, latency_ms=20_000).trades.iloc[0]
    assert (t["exit_price"], t["exit_time"]) == (90.0, T0 + pd.Timedelta(minutes=2))


def test_slippage_applies_to_the_late_fill_and_a_target_has_no_latency():
    trades, candles = market(STOP_BAR)
    r = run(trades, candles, stop_loss=0.05, latency_ms=100, slippage=0.01)
    assert r.trades["exit_price"].iat[0] == pytest.approx(93.0 * 0.99)
    up = market([(10, 104.0, 1.0), (20, 106.0, 1.0), (25, 103.0, 1.0)])
    t = run(*up, take_profit=0.04, latency_ms=60_000, slippage=0.01).trades.iloc[0]
    # entry at 100 * 1.01; the target 4 % above it fills at its price on the trade at 106
    assert t["exit_reason"] == "take_profit"
    assert t["exit_price"] == pytest.approx(101.0 * 1.04)
    assert t["exit_time"] == T0 + pd.Timedelta(minutes=1)


def test_volume_share_spreads_the_exit_over_later_trades_at_their_prices():
    rows = [(10, 94.0, 0.4), (20, 93.0, 0.6), (30, 92.0, 2.0)]
    r = run(*market(rows), stop_loss=0.05, max_volume_share=0.5)
    # takes 0.2 @ 94, 0.3 @ 93, then the last 0.5 @ 92: one fill at the average price
    assert len(r.orders) == 2 and r.trades["exit_reason"].iat[0] == "stop_loss"
    assert r.trades["exit_price"].iat[0] == pytest.approx((0.2 * 94 + 0.3 * 93 + 0.5 * 92) / 1.0)
    assert r.position.iat[-1] == 0.0


def test_an_exit_that_outlasts_its_candle_is_booked_per_candle_and_ends_on_a_signal():
    rows = [(10, 94.0, 0.4), (20, 93.0, 0.2), (70, 92.0, 0.2), (130, 95.0, 1.0)]
    trades, candles = market(rows)
    r = run(trades, candles, stop_loss=0.05, max_volume_share=0.5)
    closed = r.trades[r.trades["status"] == "closed"]
    assert list(closed["size"]) == pytest.approx([0.3, 0.1, 0.5])  # 0.2+0.1, 0.1, then the rest
    assert set(closed["exit_reason"]) == {"stop_loss"}
    assert list(closed["exit_time"]) == [T0 + pd.Timedelta(minutes=k) for k in (1, 2, 3)]
    # an exit signal at the second candle's close sells what is left at its close
    exits = np.array([False, False, True, False])
    r = run(trades, candles, exits=exits, stop_loss=0.05, max_volume_share=0.5)
    closed = r.trades[r.trades["status"] == "closed"]
    assert list(closed["exit_reason"]) == ["stop_loss", "stop_loss", "signal"]
    assert closed["size"].sum() == pytest.approx(1.0) and r.position.iat[-1] == 0.0


def test_a_target_with_a_volume_share_fills_only_at_or_above_its_price():
    rows = [(10, 106.0, 0.4), (20, 104.0, 5.0), (30, 105.0, 2.0)]
    t = run(*market(rows), take_profit=0.05, max_volume_share=0.5).trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"], t["size"]) == ("take_profit", 105.0, 1.0)


def test_latency_and_volume_need_trades():
    _, candles = market(STOP_BAR)
    with pytest.raises(ConfigError, match="latency_ms and max_volume_share act on market"):
        run_backtest(Fixed([True] * 2, [False] * 2), candles, stop_loss=0.05, latency_ms=10)
    with pytest.raises(ConfigError, match="max_volume_share=0"):
        run(*market(STOP_BAR), stop_loss=0.05, max_volume_share=0)
