"""Per-bar stop and target levels from the strategy (e.g. an ATR stop), read at the entry bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.backtest import run_backtest
from tcp_lab.backtest.param_sweep import sweep
from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput
from tcp_lab.strategies.indicators import crossed_above, crossed_below, sma
from tcp_lab.testing import make_candles


class RangeStop(BaseStrategy):
    """SMA cross whose stop sits ``k`` average ranges below the close (NaN on odd bars)."""

    name = "range_stop_test"
    parameters = (Parameter("fast", int, 5, min=1, max=100),
                  Parameter("k", float, 2.0, min=0.1, max=10.0))

    @property
    def warmup(self) -> int:
        return 21

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        close = candles["close"].to_numpy()
        fast, slow = sma(close, self.params["fast"]), sma(close, 20)
        rng = sma((candles["high"] - candles["low"]).to_numpy(), 14)
        stop = close - self.params["k"] * rng
        stop[1::2] = np.nan  # odd bars: fall back to the stop_loss option
        idx = candles.index
        return StrategyOutput(entries=pd.Series(crossed_above(fast, slow), index=idx),
                              exits=pd.Series(crossed_below(fast, slow), index=idx),
                              stop_price=pd.Series(stop, index=idx),
                              target_price=pd.Series(close * 1.01, index=idx))


@pytest.fixture(scope="module")
def candles():
    return make_candles(4000, seed=3, volatility=2.0)


def test_the_entry_bars_levels_are_used_and_nan_falls_back_to_the_option(candles):
    r = run_backtest(RangeStop({"fast": 5, "k": 1.0}), candles, stop_loss=0.5, fees=0.0)
    out = RangeStop({"fast": 5, "k": 1.0}).compute(candles)
    reasons = r.trades["exit_reason"].value_counts()
    assert reasons.get("stop_loss", 0) > 0 and reasons.get("take_profit", 0) > 0
    for t in r.trades[r.trades["exit_reason"] == "stop_loss"].itertuples():
        level = out.stop_price[t.entry_time]
        expected = t.entry_price * 0.5 if np.isnan(level) else level
        bar = candles.loc[t.exit_time]
        assert t.exit_price == pytest.approx(min(expected, bar["open"]))  # a gap fills at open
    targets = r.trades[r.trades["exit_reason"] == "take_profit"]
    for t in targets.itertuples():
        level = out.target_price[t.entry_time]
        assert t.exit_price == pytest.approx(max(level, candles.loc[t.exit_time, "open"]))


def test_sweep_with_strategy_levels_equals_run_backtest(candles):
    df = sweep(RangeStop, candles, {"fast": [3, 8], "k": [1.0, 3.0]}, progress=False,
               stop_loss=0.02)
    for _, row in df.iterrows():
        r = run_backtest(RangeStop({"fast": int(row["fast"]), "k": row["k"]}), candles,
                         stop_loss=0.02)
        for m in ("total_return", "n_trades", "max_drawdown"):
            assert row[m] == pytest.approx(r.metrics[m], rel=1e-9, abs=1e-12), m
