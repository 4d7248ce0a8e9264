"""Walk-forward over a portfolio: parameters chosen on each train window, traded on the next.

:func:`walk_forward_portfolio` is :func:`~tcp_lab.walk_forward` for one account
over several symbols. The folds are
:func:`~tcp_lab.backtest.walk_forward_folds.fold_windows` over the union of the
symbols' close times. On each train window every grid combination runs as a
portfolio (:func:`~tcp_lab.portfolio.run_portfolio`) that starts flat on the
window, its indicators warmed on the candles before it (as ``walk_forward``'s
held-out train account), and the best one is chosen with
:func:`~tcp_lab.backtest.walk_forward_analysis.select_combination`'s rule
(:mod:`tcp_lab.portfolio.walk_forward_train`; in process or on a Dask cluster).

The test windows are traded as **one account** by one run of the portfolio
driver: a :class:`~tcp_lab.portfolio.spliced.SplicedStrategy` gives each window
the signals of its fold's choice (computed on the candles up to the window's
end) and none outside, so cash and open positions carry from one window into
the next, exactly as ``walk_forward`` stitches one symbol. A flat fold exits
on its first candle; a window followed by a gap (``step`` > ``test``) closes
its positions on its last candle. With one symbol the folds, choices, equity
and trades equal ``walk_forward``'s.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.engine import candle_timeframe
from tcp_lab.backtest.metrics import compute_metrics
from tcp_lab.backtest.param_sweep import grid_combinations
from tcp_lab.backtest.sweep_chunk import strategy_class
from tcp_lab.backtest.walk_forward_analysis import Selection, check_selection
from tcp_lab.backtest.walk_forward_folds import (
    Window,
    fold_windows,
    stitched_slots,
    stitched_years,
)
from tcp_lab.backtest.walk_forward_result import (
    WalkForwardResult,
    efficiency_series,
    fold_table,
    label_trades,
)
from tcp_lab.errors import ConfigError
from tcp_lab.execution import LEVEL_OPTIONS
from tcp_lab.portfolio.result import PortfolioResult
from tcp_lab.portfolio.run import _universe, run_portfolio, union_index
from tcp_lab.portfolio.spliced import Piece, SplicedStrategy
from tcp_lab.portfolio.sweep import check_grid_options
from tcp_lab.portfolio.walk_forward_train import choose, slice_universe, train_window
from tcp_lab.strategies import BaseStrategy
from tcp_lab.timeframes import Timeframe, validate_candles

__all__ = ["walk_forward_portfolio", "PortfolioWalkForwardResult"]

_OWNER = "walk_forward_portfolio"
_DEFAULTS = inspect.signature(run_portfolio).parameters


class PortfolioWalkForwardResult(WalkForwardResult):
    """A portfolio walk-forward: a :class:`~tcp_lab.WalkForwardResult` over several symbols.

    As its base class, except: ``position`` is the number of open positions at
    each test candle's close, ``trades`` has each round trip's ``symbol`` after
    ``fold`` and the parameters, ``metrics`` adds ``skipped_entries`` and
    ``buy_and_hold_return`` is the symbols' mean over the test span;
    ``symbols`` lists the universe.
    """

    @property
    def symbols(self) -> list[str]:
        """The symbols, sorted by name."""
        return list(self.settings["symbols"])

    @property
    def label(self) -> str:
        """The base label with the number of symbols."""
        return f"{super().label}, {len(self.symbols)} symbols"


def _frames(candles_by_symbol: Any, timeframe: Any) -> dict[str, pd.DataFrame]:
    """The universe's validated candles by symbol (as ``run_portfolio`` validates them)."""
    return {s: validate_candles(c, timeframe, name=f"candles for {s}")
            for s, c in _universe(candles_by_symbol).items()}


def walk_forward_portfolio(
    strategy: str | type[BaseStrategy],
    candles_by_symbol: Mapping[str, pd.DataFrame] | pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    train: Window,
    test: Window,
    step: Window | None = None,
    anchored: bool = False,
    metric: str = "sharpe",
    min_trades: int = 10,
    progress: bool = True,
    **portfolio_options: Any,
) -> PortfolioWalkForwardResult:
    """Walk-forward over a portfolio: parameters chosen on each train window, traded on the next.

    Parameters
    ----------
    strategy
        Registry name, dotted path or strategy class.
    candles_by_symbol
        The universe, as for :func:`~tcp_lab.portfolio.run_portfolio`.
    grid
        Values per parameter, as for :func:`~tcp_lab.portfolio.sweep_portfolio`
        (``None``: every parameter's default grid). Stops and targets cannot be
        swept here (one run trades every test window); pass them as options.
    train, test, step, anchored
        The folds, as for :func:`~tcp_lab.walk_forward`, counted on the union of
        the symbols' close times (candle counts or durations).
    metric
        What the selection maximises on each train window (minimises
        ``max_drawdown``): one of :data:`~tcp_lab.backtest.metrics.METRIC_NAMES`.
    min_trades
        Combinations with fewer closed round trips over the universe on the train
        window are not eligible; a fold with none eligible is flat.
    progress
        Show a ``tqdm`` bar, one step per fold.
    **portfolio_options
        :func:`~tcp_lab.portfolio.run_portfolio`'s options (``sizing``, ``size``,
        ``max_positions``, ``fees``, ``init_cash``, ``price``, ``stop_loss``, …),
        the same on every window. The train runs use a Dask cluster when
        ``TCP_LAB_SCHEDULER`` names one (:mod:`tcp_lab.portfolio.walk_forward_train`).

    Returns
    -------
    PortfolioWalkForwardResult
        ``folds``, ``equity`` (stitched out of sample, one account over the
        symbols), ``trades`` (with ``fold`` and ``symbol``), ``metrics``,
        ``efficiency``, ``plot()``, ``to_html()``.

    Raises
    ------
    ConfigError
        Invalid windows (e.g. longer than the data), an unknown metric, invalid
        ``min_trades``, a swept stop or target, or options ``run_portfolio``
        rejects.
    StrategyError
        Unknown strategy, or a grid without a valid combination (an empty one).
    DataError
        Invalid candles.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> universe = {"BTC/USDT": make_candles(1500, seed=1), "ETH/USDT": make_candles(1500, seed=2)}
    >>> wf = walk_forward_portfolio("sma_cross", universe, {"fast": [5, 10], "slow": [30]},
    ...                             train=500, test=250, min_trades=1, sizing="equal",
    ...                             progress=False)
    >>> len(wf.folds), len(wf.equity), wf.symbols
    (4, 1000, ['BTC/USDT', 'ETH/USDT'])
    """
    started = time.perf_counter()
    check_selection(metric, min_trades, _OWNER)
    check_grid_options(portfolio_options, _OWNER)
    swept_levels = [k for k in LEVEL_OPTIONS if k in (grid or {})]
    if swept_levels:
        raise ConfigError(f"{_OWNER}: the grid sweeps {', '.join(swept_levels)}: the test "
                          "windows are one run of the portfolio with one set of stops",
                          hint=f"pass {swept_levels[0]}= as an option, or let the strategy "
                               "set stop_price / target_price")
    cls = strategy_class(strategy)
    frames = _frames(candles_by_symbol, portfolio_options.get("timeframe"))
    symbols = list(frames)
    index = union_index(frames)
    tf = candle_timeframe(frames[symbols[0]].index, portfolio_options.get("timeframe"))
    windows = fold_windows(index, train=train, test=test, step=step, anchored=bool(anchored),
                           timeframe=tf, owner=_OWNER)
    _, combos = grid_combinations(cls, grid, None, 0)  # the grid checked once, before any fold
    keys = list(combos[0])
    names = {p.name for p in cls.parameters}
    warmup = max(cls({k: v for k, v in c.items() if k in names}).warmup for c in combos)
    swept = [k for k in keys if (k in names if grid is None else k in grid)]
    route = {"at_open": portfolio_options.get("price", _DEFAULTS["price"].default) == "next_open",
             "direction": portfolio_options.get("direction", _DEFAULTS["direction"].default),
             "informative": cls.informative}

    selections, scheduler = choose(
        cls, frames, [train_window(index, ta, tb, warmup, route["at_open"])
                      for ta, tb, _, _ in windows],
        combos, portfolio_options, route, metric, int(min_trades), keys, progress)
    pieces = [Piece(None if sel.combo is None else cls(sel.params), index[sa], index[sb - 1],
                    close_out=k + 1 < len(windows) and windows[k + 1][2] != sb)
              for k, ((_, _, sa, sb), sel) in enumerate(zip(windows, selections, strict=True))]
    sweep_s = time.perf_counter() - started
    stop = windows[-1][3]
    pf = run_portfolio(SplicedStrategy(pieces, **route),
                       slice_universe(frames, index[0], index[stop - 1]), **portfolio_options)
    return _result(cls, pf, frames, index[:stop], tf, metric, windows, selections, swept,
                   settings={"train": train, "test": test, "step": test if step is None else step,
                             "anchored": bool(anchored), "min_trades": int(min_trades),
                             "warmup": warmup, "scheduler": scheduler, "sweep_s": sweep_s,
                             "elapsed_s": time.perf_counter() - started,
                             "symbols": symbols})


def _result(cls: type[BaseStrategy], pf: PortfolioResult, frames: Mapping[str, pd.DataFrame],
            index: pd.DatetimeIndex, tf: Timeframe, metric: str,
            windows: list[tuple[int, int, int, int]], selections: list[Selection],
            swept: list[str], settings: dict[str, Any]) -> PortfolioWalkForwardResult:
    """The folds table, the stitched series and trades of the one run, and their metrics."""
    rows = np.concatenate([np.arange(c, d) for _, _, c, d in windows])
    init_cash = float(pf.options["init_cash"])
    rf = float(pf.options["risk_free_rate"])
    equity = pf.equity.reindex(index).ffill().fillna(init_cash).to_numpy()[rows]
    n_open = pf.n_open.reindex(index).ffill().fillna(0).to_numpy().astype(np.int64)[rows]
    trades = pf.trades.copy()
    closed = (trades["status"] == "closed").to_numpy()
    exit_at = index.get_indexer(trades["exit_time"])[closed]
    ts = index.as_unit("us").asi8
    metrics: dict[str, Any] = compute_metrics(
        np.concatenate(([init_cash], equity)), trades["pnl"].to_numpy()[closed],
        trades["return"].to_numpy()[closed], n_open > 0, tf.per_year,
        stitched_years(ts, windows, tf), slots=stitched_slots(ts, windows, tf),
        risk_free_rate=rf)
    span = (index[rows[0]], index[rows[-1]])
    hold = [c["close"].loc[span[0]:span[1]] for c in frames.values()]
    metrics.update(n_open_trades=int((~closed).sum()), fees_paid=pf.metrics["fees_paid"],
                   final_equity=float(equity[-1]),
                   buy_and_hold_return=float(np.mean([h.iloc[-1] / h.iloc[0] - 1.0
                                                      for h in hold if len(h)])),
                   ambiguous_bars=pf.metrics["ambiguous_bars"], n_folds=len(windows),
                   n_flat_folds=sum(s.combo is None for s in selections),
                   skipped_entries=pf.metrics["skipped_entries"])
    folds = fold_table(windows, selections, swept, metric, index, equity, n_open > 0,
                       trades["pnl"].to_numpy()[closed], trades["return"].to_numpy()[closed],
                       exit_at, init_cash, tf, rf)
    symbol = trades.pop("symbol")
    trades = label_trades(trades, index.get_indexer(trades["entry_time"]), windows, folds,
                          swept, pf.options["price"] == "next_open")
    trades.insert(1 + len(swept), "symbol", symbol)
    stitched = index[rows]
    return PortfolioWalkForwardResult(
        strategy_name=cls.name or cls.__qualname__, metric=metric, options=pf.options,
        timeframe=tf, parameters=swept, folds=folds,
        equity=pd.Series(equity, index=stitched, name="equity"),
        position=pd.Series(n_open, index=stitched, name="n_open"),
        trades=trades, metrics=metrics, efficiency=efficiency_series(folds, metric),
        settings=settings)
