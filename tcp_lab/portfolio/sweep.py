"""Universe sweeps: every combination of a grid run as one portfolio, one row of metrics each.

:func:`sweep_portfolio` runs :func:`~tcp_lab.portfolio.run_portfolio` once per
parameter combination on the same universe and ranks the rows on a portfolio
metric with the sweep's rule (:func:`~tcp_lab.backtest.sweep_rank.rank_rows`:
best first; a non-finite metric, or fewer than ``min_trades`` round trips, last).
The grid is read as :func:`~tcp_lab.backtest.sweep` reads it (stops and targets
may be swept). Combinations run in this process one after another, or, when the
``scheduler`` setting (``TCP_LAB_SCHEDULER``) names a Dask cluster, as its tasks
(:mod:`tcp_lab.distributed`, the sweep's executor; the universe is shipped to every
worker once). Either way the frame is the same.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tcp_lab.backtest.metrics import METRIC_NAMES
from tcp_lab.backtest.param_sweep import LOWER_IS_BETTER, grid_combinations, split_combo
from tcp_lab.backtest.sweep_chunk import strategy_class
from tcp_lab.backtest.sweep_rank import rank_rows
from tcp_lab.distributed import Task, broadcast, describe_executor, get_executor, run_tasks
from tcp_lab.errors import ConfigError
from tcp_lab.portfolio.result import PortfolioResult
from tcp_lab.portfolio.run import _universe, run_portfolio
from tcp_lab.remote_code import check_importable
from tcp_lab.strategies import BaseStrategy

__all__ = ["sweep_portfolio", "PORTFOLIO_METRIC_NAMES", "check_grid_options"]

#: Metrics of a portfolio row (the sweep's, then the portfolio's own counts and sums).
PORTFOLIO_METRIC_NAMES = (*METRIC_NAMES, "n_open_trades", "fees_paid", "final_equity",
                          "skipped_entries", "ambiguous_bars")
_LOWER_IS_BETTER = LOWER_IS_BETTER | {"fees_paid", "skipped_entries", "ambiguous_bars"}
#: Combinations per cluster task (each is a whole portfolio run).
TASK_COMBOS = 4


def check_grid_options(options: Mapping[str, Any], owner: str) -> None:
    """Reject ``parameters=`` among the options of a function that takes a grid.

    Examples
    --------
    >>> check_grid_options({"parameters": {"fast": 5}}, "sweep_portfolio")
    Traceback (most recent call last):
    ...
    tcp_lab.errors.ConfigError: sweep_portfolio: parameters= is not an option with a grid ...
    """
    if "parameters" in options:
        raise ConfigError(f"{owner}: parameters= is not an option with a grid",
                          hint="put the parameter values in grid=, e.g. {'fast': [5, 10]}")


def run_portfolio_combos(cls: type[BaseStrategy], universe: Mapping[str, pd.DataFrame],
                         combos: Sequence[Mapping[str, Any]],
                         options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per combination: its parameters and levels, then the portfolio's metrics.

    Pure, and every argument pickles (a cluster task).
    """
    rows = []
    for combo in combos:
        pf = run_combo(cls, universe, combo, options)
        rows.append(dict(combo) | {k: pf.metrics[k] for k in PORTFOLIO_METRIC_NAMES})
    return rows


def run_combo(cls: type[BaseStrategy], universe: Mapping[str, pd.DataFrame],
              combo: Mapping[str, Any], options: Mapping[str, Any]) -> PortfolioResult:
    """``run_portfolio`` of one grid combination: its strategy parameters go to the
    strategy, its swept stops and targets (:data:`~tcp_lab.execution.LEVEL_OPTIONS`) to
    the options."""
    params, levels = split_combo(combo)
    return run_portfolio(cls(params), universe, **{**options, **levels})


def sweep_portfolio(
    strategy: str | type[BaseStrategy],
    candles_by_symbol: Mapping[str, pd.DataFrame] | pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    metric: str = "sharpe",
    min_trades: int | None = None,
    n_random: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **portfolio_options: Any,
) -> pd.DataFrame:
    """Run a portfolio for every combination of a grid; one row of portfolio metrics each.

    Parameters
    ----------
    strategy
        Registry name, dotted path or strategy class.
    candles_by_symbol
        The universe, as for :func:`~tcp_lab.portfolio.run_portfolio`
        (``{symbol: candles}`` or ``store.load_candles_many(...)``).
    grid
        Values per parameter, as for :func:`~tcp_lab.backtest.sweep` (``...`` for a
        parameter's default grid; ``stop_loss``, ``take_profit``, ``trailing_stop``
        may be swept too); ``None`` sweeps every parameter's default grid.
    metric
        Sort key, best first (one of :data:`PORTFOLIO_METRIC_NAMES`; lower is
        better for ``max_drawdown``, ``fees_paid``, ``skipped_entries``, ``ambiguous_bars``).
    min_trades
        Rank rows with fewer closed round trips (over the whole universe) than this
        after all others. Rows whose metric is not finite come last too, whatever
        this is (the sweep's rule, one copy).
    n_random, seed
        Run only this many combinations, drawn without replacement (reproducible).
    progress
        Show a ``tqdm`` bar (one step per combination).
    **portfolio_options
        :func:`~tcp_lab.portfolio.run_portfolio`'s options (``sizing``, ``size``,
        ``max_positions``, ``fees``, ``init_cash``, …), the same for every row.

    Returns
    -------
    DataFrame
        Index ``combo`` (position in the grid), parameter columns, then the metric
        columns; ``attrs`` holds the strategy, metric, symbols, options, ``min_trades``,
        ``scheduler`` (the Dask scheduler's address, or ``None`` in process) and timing.
        Each row's metrics are ``run_portfolio``'s with those parameters.

    Raises
    ------
    ConfigError
        Unknown metric, options or grid keys that ``run_portfolio`` does not take, or a
        malformed ``TCP_LAB_SCHEDULER``.
    StrategyError, DataError
        As :func:`~tcp_lab.portfolio.run_portfolio` (the first combination fails first).
    ServiceError
        ``TCP_LAB_SCHEDULER`` is set but the cluster cannot be reached.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> universe = {"BTC/USDT": make_candles(800, seed=1), "ETH/USDT": make_candles(800, seed=2)}
    >>> df = sweep_portfolio("sma_cross", universe, {"fast": [5, 10], "slow": [30]},
    ...                      sizing="equal", progress=False)
    >>> list(df.columns[:3]), len(df)
    (['fast', 'slow', 'total_return'], 2)
    """
    started = time.perf_counter()
    owner = "sweep_portfolio"
    if metric not in PORTFOLIO_METRIC_NAMES:
        guess = difflib.get_close_matches(str(metric), PORTFOLIO_METRIC_NAMES, n=1)
        raise ConfigError(f"{owner}: unknown metric {metric!r}"
                          + (f"; did you mean {guess[0]!r}?" if guess else ""),
                          hint="metrics: " + ", ".join(PORTFOLIO_METRIC_NAMES))
    check_grid_options(portfolio_options, owner)
    cls = strategy_class(strategy)
    universe = _universe(candles_by_symbol)
    ids, combos = grid_combinations(cls, grid, n_random, seed)
    options = dict(portfolio_options)
    # the first combination runs here first: a bad option or universe fails at once,
    # with run_portfolio's own message
    first = run_portfolio_combos(cls, universe, combos[:1], options)
    client = get_executor()  # None unless a Dask scheduler is set
    rest = combos[1:]
    if client is None:
        rows = first + _run_here(cls, universe, rest, options, progress, len(combos))
    else:
        rows = first + _run_on_cluster(client, cls, universe, rest, options, progress)
    df = pd.DataFrame(rows, index=pd.Index(ids, name="combo"))
    df = rank_rows(df, metric, metric in _LOWER_IS_BETTER, min_trades, "n_trades")
    elapsed = time.perf_counter() - started
    df.attrs = {
        "strategy": cls.name,
        "metric": metric,
        "sort_by": metric,
        "symbols": list(universe),
        "options": {k: v for k, v in options.items() if not callable(v)},
        "min_trades": min_trades,
        "n_combos": len(df),
        "scheduler": describe_executor(client),
        "elapsed_s": elapsed,
        "combos_per_s": len(df) / elapsed if elapsed > 0 else float("nan"),
    }
    return df


def _run_here(cls: type[BaseStrategy], universe: Mapping[str, pd.DataFrame],
              combos: list[dict[str, Any]], options: dict[str, Any], progress: bool,
              total: int) -> list[dict[str, Any]]:
    """The combinations one after another in this process."""
    from tqdm.auto import tqdm

    rows = []
    with tqdm(total=total, initial=total - len(combos), unit="combo",
              desc=f"sweep_portfolio {cls.name}", disable=not progress) as bar:
        for combo in combos:
            rows += run_portfolio_combos(cls, universe, [combo], options)
            bar.update()
    return rows


def _run_on_cluster(client: Any, cls: type[BaseStrategy],
                    universe: Mapping[str, pd.DataFrame], combos: list[dict[str, Any]],
                    options: dict[str, Any], progress: bool) -> list[dict[str, Any]]:
    """The combinations as Dask tasks of a few each; the universe goes to every worker once."""
    if not combos:
        return []
    check_importable(client, cls)
    shared = broadcast(client, dict(universe))
    tasks = []
    chunks = [combos[i:i + TASK_COMBOS] for i in range(0, len(combos), TASK_COMBOS)]
    for k, chunk in enumerate(chunks):
        tasks.append(Task((cls, shared, chunk, options),
                          f"task {k + 1}/{len(chunks)} of the {cls.name} portfolio sweep "
                          f"({len(chunk)} combination(s) from {chunk[0]} to {chunk[-1]})",
                          weight=len(chunk)))
    try:
        parts = run_tasks(client, run_portfolio_combos, tasks,
                          desc=f"sweep_portfolio {cls.name}", unit="combo", progress=progress)
    finally:
        shared.release()
    return [row for part in parts for row in part]
