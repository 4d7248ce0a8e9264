"""Jupyter panels: thin ipywidgets + plotly views over the store, bus and backtest.

>>> from tcp_lab.ui import BacktestPanel, MarketChartPanel, PortfolioPanel  # doctest: +SKIP
>>> BacktestPanel()                                                         # doctest: +SKIP
>>> PortfolioPanel(sizing="equal", max_positions=3)                         # doctest: +SKIP
>>> MarketChartPanel(strategy="sma_cross")                                  # doctest: +SKIP

ipywidgets lives here and nowhere else. Panels load on first use, so
notebooks can import :func:`resolve_candles` without the widget stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tcp_lab.ui.sources import (
    CandleSource,
    list_series,
    resolve_candles,
    store_candles,
    store_candles_many,
)

__all__ = [
    "BacktestPanel",
    "BotPanel",
    "MarketChartPanel",
    "PortfolioPanel",
    "CandleSource",
    "resolve_candles",
    "store_candles",
    "store_candles_many",
    "list_series",
    "parameter_controls",
    "parameter_control",
    "control_values",
]

_LAZY = {
    "BacktestPanel": "tcp_lab.ui.backtest_panel",
    "BotPanel": "tcp_lab.ui.bot_panel",
    "MarketChartPanel": "tcp_lab.ui.market_chart",
    "PortfolioPanel": "tcp_lab.ui.portfolio_panel",
    "parameter_controls": "tcp_lab.ui.controls",
    "parameter_control": "tcp_lab.ui.controls",
    "control_values": "tcp_lab.ui.controls",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tcp_lab.ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.ui.backtest_panel import BacktestPanel
    from tcp_lab.ui.bot_panel import BotPanel
    from tcp_lab.ui.controls import control_values, parameter_control, parameter_controls
    from tcp_lab.ui.market_chart import MarketChartPanel
    from tcp_lab.ui.portfolio_panel import PortfolioPanel
