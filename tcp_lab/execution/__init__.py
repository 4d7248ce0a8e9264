"""The one execution engine: the account, orders, stops and targets (numba).

The backtest (:func:`tcp_lab.backtest.run_backtest`, all bars), the sweep
kernels (once per combination) and the paper bot (one bar at a time) drive
the same compiled kernel (:func:`~tcp_lab.execution.kernel.bar_nb`), so the
same signals on the same data give the same fills. The rules are stated in
:mod:`tcp_lab.execution.kernel` and in the README ("How orders fill").
"""

from tcp_lab.execution.account import FILL_FIELDS, N_STATE, REASONS, STATE_FIELDS
from tcp_lab.execution.options import (
    DIRECTIONS,
    LEVEL_OPTIONS,
    PRICES,
    SIZE_TYPES,
    TradingOptions,
    route_signals,
)

__all__ = [
    "TradingOptions", "route_signals", "DIRECTIONS", "PRICES", "SIZE_TYPES", "LEVEL_OPTIONS",
    "REASONS", "STATE_FIELDS", "FILL_FIELDS", "N_STATE",
]
