"""Strategies: declared parameters, vectorized signals, a registry and the look-ahead guard.

>>> from tcp_lab.strategies import get_strategy, list_strategies
>>> list_strategies()
['bollinger_breakout', 'ema_cross', 'macd', 'rsi_reversion', 'sma_cross']
>>> get_strategy("sma_cross", {"fast": 10, "slow": 30})
SmaCross(fast=10, slow=30)
"""

from __future__ import annotations

from tcp_lab.strategies.base import (
    ArrayOutput,
    BaseStrategy,
    Parameter,
    Signal,
    StrategyOutput,
    candle_arrays,
    check_output,
    require_less,
)
from tcp_lab.strategies.lookahead import LookaheadReport, check_lookahead
from tcp_lab.strategies.registry import (
    get_strategy,
    list_strategies,
    load_strategy_config,
    register_strategy,
)

# Built-ins register themselves on import (numpy/pandas only, so this is cheap).
from tcp_lab.strategies import (  # noqa: E402,F401  isort: skip
    bollinger_breakout,
    ema_cross,
    macd,
    rsi_reversion,
    sma_cross,
)

__all__ = [
    "ArrayOutput",
    "BaseStrategy",
    "Parameter",
    "Signal",
    "StrategyOutput",
    "LookaheadReport",
    "check_lookahead",
    "candle_arrays",
    "check_output",
    "require_less",
    "get_strategy",
    "list_strategies",
    "load_strategy_config",
    "register_strategy",
]
