"""Helpers for backtest tests: hand-made candles and strategies with fixed signals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from tcp_lab.strategies import BaseStrategy, StrategyOutput


def _candles(close: Sequence[float], open_: Sequence[float] | None = None,
             timeframe: str = "1h") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    o = np.asarray(open_, dtype=float) if open_ is not None else np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01 01:00", periods=len(close), freq=timeframe, tz="UTC",
                        unit="us", name="ts")
    return pd.DataFrame(
        {"open": o, "high": np.maximum(o, close) * 1.01, "low": np.minimum(o, close) * 0.99,
         "close": close, "volume": 1.0, "trade_count": 1},
        index=idx,
    )


def _fixed(entries, exits, short_entries=None, short_exits=None) -> BaseStrategy:
    def series(values, index):
        return None if values is None else pd.Series(np.asarray(values, dtype=bool), index=index)

    class Fixed(BaseStrategy):
        name = "fixed"

        def compute(self, candles: pd.DataFrame) -> StrategyOutput:
            i = candles.index
            return StrategyOutput(
                entries=series(entries, i), exits=series(exits, i), indicators={},
                short_entries=series(short_entries, i), short_exits=series(short_exits, i),
            )

    return Fixed()


@pytest.fixture
def hand_candles():
    """``hand_candles(close, open=None, timeframe="1h")`` -> a valid candle frame."""
    return _candles


@pytest.fixture
def fixed_strategy():
    """``fixed_strategy(entries, exits, short_entries=None, short_exits=None)``."""
    return _fixed
