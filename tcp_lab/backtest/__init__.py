"""Backtests: the execution engine over a candle history, honest metrics, stored runs, sweeps.

The fills are :mod:`tcp_lab.execution`'s; vectorbt lives here and nowhere else, as
the reference the tests compare with and the export of
:meth:`BacktestResult.to_vectorbt`. ``sweep`` loads lazily from
:mod:`tcp_lab.backtest.param_sweep`, ``walk_forward`` from
:mod:`tcp_lab.backtest.walk_forward_analysis`.

>>> from tcp_lab.backtest import run_backtest          # doctest: +SKIP
>>> result = run_backtest("sma_cross", candles)         # doctest: +SKIP
>>> result.metrics["sharpe"]                            # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tcp_lab.backtest.engine import run_backtest
from tcp_lab.backtest.result import BacktestResult

__all__ = ["run_backtest", "BacktestResult", "sweep", "walk_forward", "WalkForwardResult",
           "save_sweep", "load_sweep", "list_sweeps"]

_LAZY = {"sweep": "tcp_lab.backtest.param_sweep",
         "save_sweep": "tcp_lab.backtest.sweep_store",
         "load_sweep": "tcp_lab.backtest.sweep_store",
         "list_sweeps": "tcp_lab.backtest.sweep_store",
         "walk_forward": "tcp_lab.backtest.walk_forward_analysis",
         "WalkForwardResult": "tcp_lab.backtest.walk_forward_result"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tcp_lab.backtest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.backtest.param_sweep import sweep
    from tcp_lab.backtest.sweep_store import list_sweeps, load_sweep, save_sweep
    from tcp_lab.backtest.walk_forward_analysis import walk_forward
    from tcp_lab.backtest.walk_forward_result import WalkForwardResult
