"""``ema_cross``: long while the fast exponential moving average is above the slow one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tcp_lab.strategies.base import ArrayOutput, BaseStrategy, Parameter, require_less
from tcp_lab.strategies.indicators import crossed_above, crossed_below, ema, ewm_settle
from tcp_lab.strategies.registry import register_strategy

__all__ = ["EmaCross"]


@register_strategy
class EmaCross(BaseStrategy):
    """Enter when EMA(fast) crosses above EMA(slow); exit when it crosses below.

    The EMAs start at the first candle, so a trailing window needs
    :func:`~tcp_lab.strategies.indicators.ewm_settle` candles to forget that
    start: :attr:`warmup` is several times ``slow``.
    """

    name = "ema_cross"
    parameters = (
        Parameter("fast", int, 12, min=1, max=100_000, step=1, doc="fast EMA span (candles)"),
        Parameter("slow", int, 26, min=2, max=100_000, step=1, doc="slow EMA span (candles)"),
    )

    def check_parameters(self, params: Mapping[str, Any]) -> None:
        require_less(self.name, params, "fast", "slow")

    @property
    def warmup(self) -> int:
        return max(self.params["slow"], ewm_settle(2.0 / (self.params["slow"] + 1))) + 1

    def compute_arrays(self, candles: Mapping[str, np.ndarray]) -> ArrayOutput:
        close = candles["close"]
        fast = ema(close, self.params["fast"], min_periods=self.params["slow"])
        slow = ema(close, self.params["slow"])
        return ArrayOutput(entries=crossed_above(fast, slow), exits=crossed_below(fast, slow),
                           indicators={"ema_fast": fast, "ema_slow": slow})
