"""Strategies for the bot tests, importable by worker processes as ``bot_strategies:Name``.

Their misbehaviour is switched on and off through files, so a test can
control a bot running in another process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput
from tcp_lab.strategies.indicators import crossed_above, crossed_below, sma


class _Cross(BaseStrategy):
    """An SMA(3/8) cross: trades often, warm-up 9 candles."""

    @property
    def warmup(self) -> int:
        return 9

    def _cross(self, candles: pd.DataFrame) -> StrategyOutput:
        close = candles["close"].to_numpy()
        fast, slow = sma(close, 3), sma(close, 8)
        idx = candles.index
        return StrategyOutput(entries=pd.Series(crossed_above(fast, slow), index=idx),
                              exits=pd.Series(crossed_below(fast, slow), index=idx),
                              indicators={"fast": pd.Series(fast, index=idx)})


class FailOnCandle(_Cross):
    """Raises on the candle closing at ``fail_at`` (ISO) while ``flag_file`` exists
    (always, when ``flag_file`` is empty)."""

    name = "test_fail_on_candle"
    parameters = (
        Parameter("fail_at", str, ""),
        Parameter("flag_file", str, ""),
    )

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        flag = self.params["flag_file"]
        armed = not flag or Path(flag).exists()
        if armed and self.params["fail_at"] and \
                candles.index[-1] == pd.Timestamp(self.params["fail_at"]):
            raise RuntimeError(f"deliberate failure at {candles.index[-1]}")
        return self._cross(candles)


class HangWhileFlag(_Cross):
    """Sleeps (a hang) while ``flag_file`` exists."""

    name = "test_hang_while_flag"
    parameters = (Parameter("flag_file", str, ""),)

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        while self.params["flag_file"] and Path(self.params["flag_file"]).exists():
            time.sleep(0.05)
        return self._cross(candles)


class ShortCross(_Cross):
    """An SMA cross with its own short signals (long/short mode of the simulation)."""

    name = "test_short_cross"

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        out = self._cross(candles)
        close = candles["close"].to_numpy()
        slow = sma(close, 8)
        below = np.nan_to_num(close - slow) < 0
        return StrategyOutput(entries=out.entries, exits=out.exits,
                              indicators=out.indicators,
                              short_entries=pd.Series(below & out.exits.to_numpy(),
                                                      index=candles.index),
                              short_exits=pd.Series(out.entries.to_numpy(), index=candles.index))
