"""``rsi_reversion``: buy oversold, sell overbought (Wilder's RSI)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tcp_lab.strategies.base import ArrayOutput, BaseStrategy, Parameter, require_less
from tcp_lab.strategies.indicators import crossed_above, crossed_below, ewm_settle, rsi
from tcp_lab.strategies.registry import register_strategy

__all__ = ["RsiReversion"]


@register_strategy
class RsiReversion(BaseStrategy):
    """Enter when RSI(period) crosses below ``lower``; exit when it crosses above ``upper``.

    ``confidence`` grows with the distance of the RSI beyond its band
    (0 at the band, 1 at RSI 0 or 100).
    """

    name = "rsi_reversion"
    parameters = (
        Parameter("period", int, 14, min=2, max=10_000, step=1, doc="RSI period (candles)"),
        Parameter("lower", float, 30.0, min=0.0, max=100.0, step=5.0, doc="oversold level"),
        Parameter("upper", float, 70.0, min=0.0, max=100.0, step=5.0, doc="overbought level"),
    )

    def check_parameters(self, params: Mapping[str, Any]) -> None:
        require_less(self.name, params, "lower", "upper")

    @property
    def warmup(self) -> int:
        return max(self.params["period"], ewm_settle(1.0 / self.params["period"])) + 2

    def compute_arrays(self, candles: Mapping[str, np.ndarray]) -> ArrayOutput:
        value = rsi(candles["close"], self.params["period"])
        lower, upper = self.params["lower"], self.params["upper"]
        with np.errstate(invalid="ignore"):
            below = np.clip((lower - value) / max(lower, 1e-9), 0.0, 1.0)
            above = np.clip((value - upper) / max(100.0 - upper, 1e-9), 0.0, 1.0)
        return ArrayOutput(entries=crossed_below(value, lower), exits=crossed_above(value, upper),
                           indicators={"rsi": value},
                           confidence=np.nan_to_num(np.maximum(below, above)))
