"""Portfolios: one strategy over several symbols, one account with shared cash.

:func:`run_portfolio` drives the execution engine's kernel once per symbol bar,
with the shared cash loaded into that symbol's engine state (see
:mod:`tcp_lab.execution.portfolio`); sizing in :mod:`tcp_lab.execution.sizing`,
the result in :mod:`tcp_lab.portfolio.result`; universe sweeps
(:func:`sweep_portfolio`) in :mod:`tcp_lab.portfolio.sweep`; out of sample, the
walk-forward (:func:`walk_forward_portfolio`) in :mod:`tcp_lab.portfolio.walk_forward`
and every combination's returns for :func:`tcp_lab.stats.pbo`
(:func:`portfolio_returns`) in :mod:`tcp_lab.portfolio.returns`.
"""

from tcp_lab.execution.sizing import SIZINGS
from tcp_lab.portfolio.result import PORTFOLIO_TRADE_COLUMNS, PortfolioResult
from tcp_lab.portfolio.returns import equity_returns, portfolio_returns
from tcp_lab.portfolio.run import run_portfolio
from tcp_lab.portfolio.sweep import PORTFOLIO_METRIC_NAMES, sweep_portfolio
from tcp_lab.portfolio.walk_forward import PortfolioWalkForwardResult, walk_forward_portfolio

__all__ = ["run_portfolio", "PortfolioResult", "PORTFOLIO_TRADE_COLUMNS", "SIZINGS",
           "sweep_portfolio", "PORTFOLIO_METRIC_NAMES", "walk_forward_portfolio",
           "PortfolioWalkForwardResult", "portfolio_returns", "equity_returns"]
