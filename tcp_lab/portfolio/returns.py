"""Per-period returns of every grid combination's portfolio: the input of the overfitting tests.

:func:`portfolio_returns` runs :func:`~tcp_lab.portfolio.run_portfolio` once per
combination of a grid (read as :func:`~tcp_lab.portfolio.sweep_portfolio` reads
it) and keeps each run's equity returns as one column of a ``T × N`` frame,
which :func:`tcp_lab.stats.pbo`, :func:`tcp_lab.stats.sharpe_moments` and
:func:`tcp_lab.stats.deflated_sharpe` take as they are. The ranking table stays
:func:`~tcp_lab.portfolio.sweep_portfolio`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.metrics import bar_returns
from tcp_lab.backtest.param_sweep import grid_combinations
from tcp_lab.backtest.sweep_chunk import strategy_class
from tcp_lab.portfolio.result import PortfolioResult
from tcp_lab.portfolio.run import _universe
from tcp_lab.portfolio.sweep import check_grid_options, run_combo
from tcp_lab.strategies import BaseStrategy

__all__ = ["portfolio_returns", "equity_returns"]


def equity_returns(result: PortfolioResult) -> pd.Series:
    """A portfolio's return at each close time: ``equity / previous equity - 1``, the first
    against ``init_cash`` (no NaN; :func:`~tcp_lab.backtest.metrics.bar_returns`).

    Examples
    --------
    >>> from tcp_lab import run_portfolio
    >>> from tcp_lab.testing import make_candles
    >>> r = run_portfolio("sma_cross", {"BTC/USDT": make_candles(300)},
    ...                   parameters={"fast": 5, "slow": 20})
    >>> r2 = equity_returns(r)
    >>> bool(np.isclose((1 + r2).prod() * 10_000, r.equity.iloc[-1]))
    True
    """
    start = float(result.options["init_cash"])
    return pd.Series(bar_returns(np.concatenate(([start], result.equity.to_numpy()))),
                     index=result.equity.index, name="return")


def portfolio_returns(
    strategy: str | type[BaseStrategy],
    candles_by_symbol: Mapping[str, pd.DataFrame] | pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    n_random: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **portfolio_options: Any,
) -> pd.DataFrame:
    """Per-period returns of the portfolio of every grid combination, one column each.

    Parameters
    ----------
    strategy, candles_by_symbol, grid, n_random, seed
        As for :func:`~tcp_lab.portfolio.sweep_portfolio` (the same combinations,
        the same positions in the grid).
    progress
        Show a ``tqdm`` bar (one step per combination).
    **portfolio_options
        :func:`~tcp_lab.portfolio.run_portfolio`'s options, the same for every column.

    Returns
    -------
    DataFrame
        Index: the union of the symbols' close times; columns ``combo`` (positions
        in the grid, as :func:`sweep_portfolio`'s index); each column is
        :func:`equity_returns` of ``run_portfolio`` with that combination.
        ``attrs["combos"]`` maps each column to its parameters. Pass it to
        :func:`tcp_lab.stats.pbo` as it is.

    Raises
    ------
    ConfigError, StrategyError, DataError
        As :func:`~tcp_lab.portfolio.sweep_portfolio`.

    Examples
    --------
    >>> from tcp_lab.stats import pbo
    >>> from tcp_lab.testing import make_candles
    >>> universe = {"BTC/USDT": make_candles(800, seed=1), "ETH/USDT": make_candles(800, seed=2)}
    >>> R = portfolio_returns("sma_cross", universe, {"fast": [5, 10], "slow": [30, 60]},
    ...                       sizing="equal", progress=False)
    >>> R.shape, R.attrs["combos"][3]
    ((800, 4), {'fast': 10, 'slow': 60})
    >>> 0.0 <= pbo(R, n_splits=8).probability <= 1.0
    True
    """
    check_grid_options(portfolio_options, "portfolio_returns")
    cls = strategy_class(strategy)
    universe = _universe(candles_by_symbol)
    ids, combos = grid_combinations(cls, grid, n_random, seed)

    from tqdm.auto import tqdm

    columns = []
    for combo in tqdm(combos, unit="combo", desc=f"portfolio_returns {cls.name}",
                      disable=not progress):
        columns.append(equity_returns(run_combo(cls, universe, combo, portfolio_options)))
    out = pd.concat(columns, axis=1)
    out.columns = pd.Index(ids.tolist(), name="combo")
    out.attrs = {"strategy": cls.name, "symbols": list(universe),
                 "combos": {int(i): dict(c) for i, c in zip(ids, combos, strict=True)}}
    return out
