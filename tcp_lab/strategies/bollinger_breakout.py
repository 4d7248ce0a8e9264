"""``bollinger_breakout``: buy a close above the upper band, sell back below the middle."""

from __future__ import annotations

import pandas as pd

from tcp_lab.strategies.base import BaseStrategy, Parameter, StrategyOutput
from tcp_lab.strategies.indicators import bollinger, crossed_above, crossed_below
from tcp_lab.strategies.registry import register_strategy

__all__ = ["BollingerBreakout"]


@register_strategy
class BollingerBreakout(BaseStrategy):
    """Enter when the close crosses above SMA(window) + k*std; exit when it crosses below the SMA.

    The bands use the population standard deviation of the last ``window`` closes.
    """

    name = "bollinger_breakout"
    parameters = (
        Parameter("window", int, 20, min=2, max=100_000, step=1, doc="band window (candles)"),
        Parameter("k", float, 2.0, min=0.1, max=10.0, step=0.25, doc="band width in std devs"),
    )

    @property
    def warmup(self) -> int:
        return self.params["window"] + 1

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        close = candles["close"].to_numpy()
        mid, upper, lower = bollinger(close, self.params["window"], self.params["k"])
        idx = candles.index
        return StrategyOutput(
            entries=pd.Series(crossed_above(close, upper), index=idx, name="entries"),
            exits=pd.Series(crossed_below(close, mid), index=idx, name="exits"),
            indicators={
                "bb_middle": pd.Series(mid, index=idx, name="bb_middle"),
                "bb_upper": pd.Series(upper, index=idx, name="bb_upper"),
                "bb_lower": pd.Series(lower, index=idx, name="bb_lower"),
            },
        )
