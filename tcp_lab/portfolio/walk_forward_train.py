"""The train step of a portfolio walk-forward: every combination on every train window.

Each train window is a portfolio run per combination that starts flat on the
window, its indicators warmed on the candles before it (a
:class:`~tcp_lab.portfolio.spliced.SplicedStrategy` with one piece), measured on
the window's close times only. The windows are independent: they run in this
process one after another, or, when the ``scheduler`` setting
(``TCP_LAB_SCHEDULER``) names a Dask cluster, as its tasks (the universe is
shipped to every worker once, as :func:`~tcp_lab.portfolio.sweep_portfolio` does).
Either way the choices are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.metrics import compute_metrics, grid_slots
from tcp_lab.backtest.param_sweep import split_combo
from tcp_lab.backtest.walk_forward_analysis import Selection, select_combination
from tcp_lab.distributed import Task, broadcast, describe_executor, get_executor, run_tasks
from tcp_lab.errors import DataError
from tcp_lab.portfolio.result import PortfolioResult
from tcp_lab.portfolio.run import run_portfolio
from tcp_lab.portfolio.spliced import Piece, SplicedStrategy
from tcp_lab.portfolio.sweep import TASK_COMBOS
from tcp_lab.remote_code import check_importable
from tcp_lab.strategies import BaseStrategy

__all__ = ["TrainWindow", "train_window", "train_rows", "choose", "slice_universe"]

_YEAR = pd.Timedelta(days=365)


@dataclass(frozen=True)
class TrainWindow:
    """One train window: candles from ``first`` feed the indicators, signals from ``start``
    count, the account is measured on ``rows`` (the window's close times)."""

    first: pd.Timestamp
    start: pd.Timestamp
    rows: pd.DatetimeIndex


def train_window(index: pd.DatetimeIndex, ta: int, tb: int, warmup: int,
                 at_open: bool) -> TrainWindow:
    """Train window ``[ta, tb)`` of ``index`` with up to ``warmup`` candles before it.

    As ``walk_forward``'s train sweep: fewer than 2 warm-up candles are dropped;
    with orders at the next open the window's first bar acts on the signal of
    the bar before it.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> w = train_window(make_candles(10).index, 4, 8, 3, at_open=True)
    >>> [t.minute for t in (w.first, w.start, w.rows[0], w.rows[-1])]
    [2, 4, 5, 8]
    """
    first = max(0, ta - warmup)
    if ta - first < 2:
        first = ta
    start = index[ta - 1] if at_open and first < ta else index[ta]
    return TrainWindow(index[first], start, index[ta:tb])


def slice_universe(frames: Mapping[str, pd.DataFrame], first: pd.Timestamp,
                   last: pd.Timestamp, owner: str = "walk_forward_portfolio",
                   ) -> dict[str, pd.DataFrame]:
    """Each symbol's candles closing in ``[first, last]``; symbols with fewer than 2 left out
    (too few for a portfolio run, and nothing to trade).

    Raises
    ------
    DataError
        No symbol has 2 candles there.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> c = make_candles(10)
    >>> {s: len(f) for s, f in slice_universe({"A": c, "B": c.iloc[:5]}, c.index[4],
    ...                                       c.index[7]).items()}
    {'A': 4}
    """
    out = {s: c.loc[first:last] for s, c in frames.items()}
    out = {s: c for s, c in out.items() if len(c) >= 2}
    if not out:
        raise DataError(f"{owner}: no symbol has 2 candles between {first} and {last}",
                        hint="use longer windows")
    return out


def _window_metrics(pf: PortfolioResult, rows: pd.DatetimeIndex) -> dict[str, Any]:
    """Metrics of a run that is flat before ``rows``, on ``rows`` only."""
    init_cash = float(pf.options["init_cash"])
    eq = pf.equity.reindex(rows).ffill().fillna(init_cash).to_numpy()
    held = pf.n_open.reindex(rows).ffill().fillna(0).to_numpy() > 0
    t = pf.trades[pf.trades["status"] == "closed"]
    return compute_metrics(np.concatenate(([init_cash], eq)), t["pnl"].to_numpy(),
                           t["return"].to_numpy(), held, pf.timeframe.per_year,
                           (rows[-1] - rows[0]) / _YEAR,
                           slots=grid_slots(rows.as_unit("us").asi8, pf.timeframe.us),
                           risk_free_rate=float(pf.options["risk_free_rate"]))


def train_rows(cls: type[BaseStrategy], frames: Mapping[str, pd.DataFrame],
               combos: Sequence[Mapping[str, Any]], options: Mapping[str, Any],
               route: Mapping[str, Any], window: TrainWindow) -> list[dict[str, Any]]:
    """One row per combination: its parameters, then its metrics on ``window``.

    Pure, and every argument pickles (a cluster task). ``route``: the
    :class:`SplicedStrategy` keywords (``at_open``, ``direction``, ``informative``).
    """
    universe = slice_universe(frames, window.first, window.rows[-1])
    out = []
    for combo in combos:
        params, levels = split_combo(combo)
        spliced = SplicedStrategy([Piece(cls(params), window.start, window.rows[-1])], **route)
        pf = run_portfolio(spliced, universe, **{**options, **levels})
        out.append(dict(combo) | _window_metrics(pf, window.rows))
    return out


def choose(cls: type[BaseStrategy], frames: Mapping[str, pd.DataFrame],
           windows: Sequence[TrainWindow], combos: Sequence[dict[str, Any]],
           options: Mapping[str, Any], route: Mapping[str, Any], metric: str,
           min_trades: int, keys: Sequence[str], progress: bool,
           ) -> tuple[list[Selection], str | None]:
    """The choice on each train window, and the scheduler that ran them (None: here).

    Examples
    --------
    >>> sels, scheduler = choose(cls, frames, windows, combos, {}, route, "sharpe", 10,
    ...                          ["fast", "slow"], False)  # doctest: +SKIP
    """
    client = get_executor()  # None unless a Dask scheduler is set
    if client is None:
        from tqdm.auto import tqdm

        tables = []
        for w in tqdm(windows, unit="fold", desc=f"walk-forward portfolio {cls.name}",
                      disable=not progress):
            tables.append(train_rows(cls, frames, combos, options, route, w))
    else:
        tables = _on_cluster(client, cls, frames, windows, combos, options, route, progress)
    sels = [select_combination(pd.DataFrame(t), metric, min_trades, keys=keys) for t in tables]
    return sels, describe_executor(client)


def _on_cluster(client: Any, cls: type[BaseStrategy], frames: Mapping[str, pd.DataFrame],
                windows: Sequence[TrainWindow], combos: Sequence[dict[str, Any]],
                options: Mapping[str, Any], route: Mapping[str, Any],
                progress: bool) -> list[list[dict[str, Any]]]:
    """Every window's combinations as Dask tasks of a few each; rows regrouped per window."""
    check_importable(client, cls)
    shared = broadcast(client, dict(frames))
    tasks, owner = [], []
    for k, w in enumerate(windows):
        for i in range(0, len(combos), TASK_COMBOS):
            chunk = list(combos[i:i + TASK_COMBOS])
            tasks.append(Task((cls, shared, chunk, dict(options), dict(route), w),
                              f"fold {k + 1} train window ({w.rows[0]} – {w.rows[-1]}), "
                              f"combinations {chunk[0]} to {chunk[-1]}", weight=len(chunk)))
            owner.append(k)
    try:
        parts = run_tasks(client, train_rows, tasks, desc=f"walk-forward portfolio {cls.name}",
                          unit="combo", progress=progress)
    finally:
        shared.release()
    tables: list[list[dict[str, Any]]] = [[] for _ in windows]
    for k, part in zip(owner, parts, strict=True):
        tables[k] += part
    return tables
