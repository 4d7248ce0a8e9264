"""``bollinger_breakout``: buy a close above the upper band, sell back below the middle."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tcp_lab.strategies.base import ArrayOutput, BaseStrategy, Parameter
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

    def compute_arrays(self, candles: Mapping[str, np.ndarray]) -> ArrayOutput:
        close = candles["close"]
        mid, upper, lower = bollinger(close, self.params["window"], self.params["k"])
        return ArrayOutput(entries=crossed_above(close, upper), exits=crossed_below(close, mid),
                           indicators={"bb_middle": mid, "bb_upper": upper, "bb_lower": lower})
