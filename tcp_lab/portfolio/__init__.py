"""Portfolios: one strategy over several symbols, one account with shared cash.

:func:`run_portfolio` drives the execution engine's kernel once per symbol bar,
with the shared cash loaded into that symbol's engine state (see
:mod:`tcp_lab.portfolio.driver`); sizing in :mod:`tcp_lab.portfolio.sizing`,
the result in :mod:`tcp_lab.portfolio.result`.
"""

from tcp_lab.portfolio.result import PORTFOLIO_TRADE_COLUMNS, PortfolioResult
from tcp_lab.portfolio.run import run_portfolio
from tcp_lab.portfolio.sizing import SIZINGS

__all__ = ["run_portfolio", "PortfolioResult", "PORTFOLIO_TRADE_COLUMNS", "SIZINGS"]
