"""``sma_cross``: long while the fast simple moving average is above the slow one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tcp_lab.strategies.base import ArrayOutput, BaseStrategy, Parameter, require_less
from tcp_lab.strategies.indicators import crossed_above, crossed_below, sma
from tcp_lab.strategies.registry import register_strategy

__all__ = ["SmaCross"]


@register_strategy
class SmaCross(BaseStrategy):
    """Enter when SMA(fast) crosses above SMA(slow) on a close; exit when it crosses below.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> out = SmaCross({"fast": 10, "slow": 30}).compute(make_candles(500))
    >>> sorted(out.indicators)
    ['sma_fast', 'sma_slow']
    """

    name = "sma_cross"
    parameters = (
        Parameter("fast", int, 10, min=1, max=100_000, step=1, doc="fast SMA window (candles)"),
        Parameter("slow", int, 30, min=2, max=100_000, step=1, doc="slow SMA window (candles)"),
    )

    def check_parameters(self, params: Mapping[str, Any]) -> None:
        require_less(self.name, params, "fast", "slow")

    @property
    def warmup(self) -> int:
        return self.params["slow"] + 1

    def compute_arrays(self, candles: Mapping[str, np.ndarray]) -> ArrayOutput:
        close = candles["close"]
        fast = sma(close, self.params["fast"])
        slow = sma(close, self.params["slow"])
        return ArrayOutput(entries=crossed_above(fast, slow), exits=crossed_below(fast, slow),
                           indicators={"sma_fast": fast, "sma_slow": slow})
