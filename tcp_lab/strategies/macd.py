"""``macd``: long while the MACD line is above its signal line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tcp_lab.strategies.base import ArrayOutput, BaseStrategy, Parameter, require_less
from tcp_lab.strategies.indicators import crossed_above, crossed_below, ewm_settle, macd
from tcp_lab.strategies.registry import register_strategy

__all__ = ["Macd"]


@register_strategy
class Macd(BaseStrategy):
    """Enter when the MACD line crosses above its signal line; exit when it crosses below."""

    name = "macd"
    parameters = (
        Parameter("fast", int, 12, min=1, max=100_000, step=1, doc="fast EMA span"),
        Parameter("slow", int, 26, min=2, max=100_000, step=1, doc="slow EMA span"),
        Parameter("signal", int, 9, min=1, max=100_000, step=1, doc="signal-line EMA span"),
    )

    def check_parameters(self, params: Mapping[str, Any]) -> None:
        require_less(self.name, params, "fast", "slow")

    @property
    def warmup(self) -> int:
        slow, signal = self.params["slow"], self.params["signal"]
        settle = ewm_settle(2.0 / (slow + 1)) + ewm_settle(2.0 / (signal + 1))
        return max(slow + signal, settle) + 1

    def compute_arrays(self, candles: Mapping[str, np.ndarray]) -> ArrayOutput:
        line, sig, hist = macd(candles["close"], self.params["fast"], self.params["slow"],
                               self.params["signal"])
        return ArrayOutput(entries=crossed_above(line, sig), exits=crossed_below(line, sig),
                           indicators={"macd": line, "macd_signal": sig, "macd_hist": hist})
