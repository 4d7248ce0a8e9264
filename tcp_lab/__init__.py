"""tcp_lab: a Jupyter-centric research workbench for crypto trading bots.

The public API is what this module exports. Heavy parts (vectorbt, ccxt, the
database drivers) load on first use, so ``import tcp_lab`` is quick and never
connects to a server or reads configuration.

>>> import tcp_lab
>>> store = tcp_lab.open_store()            # doctest: +SKIP
>>> candles = store.load_candles("binance", "BTC/USDT", "1m")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tcp_lab.errors import ConfigError, DataError, ServiceError, StrategyError, TcpLabError
from tcp_lab.settings import Settings, load_settings
from tcp_lab.timeframes import Timeframe, close_time, parse_timeframe, validate_candles

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "open_store": "tcp_lab.store",
    "Store": "tcp_lab.store",
    "open_bus": "tcp_lab.bus",
    "Bus": "tcp_lab.bus",
    "aggregate_trades": "tcp_lab.data.aggregate",
    "resample_candles": "tcp_lab.data.aggregate",
    "StreamingAggregator": "tcp_lab.data.streaming",
    "DataCollector": "tcp_lab.data.collector",
    "register_provider": "tcp_lab.data.providers",
    "BaseStrategy": "tcp_lab.strategies",
    "Parameter": "tcp_lab.strategies",
    "Signal": "tcp_lab.strategies",
    "get_strategy": "tcp_lab.strategies",
    "check_lookahead": "tcp_lab.strategies",
    "align": "tcp_lab.strategies.informative",
    "run_backtest": "tcp_lab.backtest",
    "BacktestResult": "tcp_lab.backtest",
    "sweep": "tcp_lab.backtest",
    "walk_forward": "tcp_lab.backtest",
    "WalkForwardResult": "tcp_lab.backtest",
    "run_portfolio": "tcp_lab.portfolio",
    "PortfolioResult": "tcp_lab.portfolio",
    "sweep_portfolio": "tcp_lab.portfolio",
    "walk_forward_portfolio": "tcp_lab.portfolio",
    "PortfolioWalkForwardResult": "tcp_lab.portfolio",
    "portfolio_returns": "tcp_lab.portfolio",
    "BotManager": "tcp_lab.bots",
    "BotConfig": "tcp_lab.bots",
    "load_bot_config": "tcp_lab.bots",
    "run_batch": "tcp_lab.batch",
    "load_batch": "tcp_lab.batch",
    "BacktestPanel": "tcp_lab.ui",
    "MarketChartPanel": "tcp_lab.ui",
    "BotPanel": "tcp_lab.ui",
}

__all__ = [
    "TcpLabError",
    "ConfigError",
    "DataError",
    "ServiceError",
    "StrategyError",
    "Settings",
    "load_settings",
    "Timeframe",
    "parse_timeframe",
    "close_time",
    "validate_candles",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tcp_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # ruff: noqa: F401 (re-exported lazily through __getattr__)
    from tcp_lab.backtest import BacktestResult, run_backtest, sweep
    from tcp_lab.bus import Bus, open_bus
    from tcp_lab.data.aggregate import aggregate_trades, resample_candles
    from tcp_lab.portfolio import (
        PortfolioResult,
        PortfolioWalkForwardResult,
        portfolio_returns,
        run_portfolio,
        sweep_portfolio,
        walk_forward_portfolio,
    )
    from tcp_lab.store import Store, open_store
    from tcp_lab.strategies import BaseStrategy, Parameter, Signal, check_lookahead, get_strategy
    from tcp_lab.strategies.informative import align
