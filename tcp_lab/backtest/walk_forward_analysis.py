"""Walk-forward analysis: choose parameters on each train window, trade the next test window.

:func:`walk_forward` cuts the history into folds (a train window followed by a
test window), runs :func:`~tcp_lab.backtest.param_sweep.sweep` on each train
window (its executor and kernels: in process, or Dask when ``TCP_LAB_SCHEDULER``
is set), picks the best combination there, and trades the test window with it.
Only the test windows make the out-of-sample equity, and they are traded as
**one account** by the execution engine
(:func:`~tcp_lab.backtest.engine.simulate_window`): cash and any open position
carry from one window into the next, so the stitched curve is what a bot that
re-optimised at each fold boundary would have earned.

Signals in a test window come from the chosen strategy computed on the candles
from the first one up to the window's end (indicators warmed up, nothing later
seen); only the window's own signals are acted on. With ``price="next_open"``
a signal on a window's last candle fills at the next window's first open, as it
would in one run. A fold without a qualifying combination is flat: it closes a
carried position on its first candle and trades nothing. With ``step`` longer
than ``test`` the test windows leave gaps; a window followed by a gap closes
its position on its last candle (the cash carries).

>>> from tcp_lab.testing import make_candles                        # doctest: +SKIP
>>> wf = walk_forward("sma_cross", make_candles(20_000), {"fast": [5, 10], "slow": [20, 40]},
...                   train=4000, test=2000)                        # doctest: +SKIP
>>> wf.folds, wf.equity, wf.metrics, wf.efficiency                  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.engine import candle_timeframe, engine_signals, simulate_window
from tcp_lab.backtest.metrics import METRIC_NAMES, compute_metrics
from tcp_lab.backtest.param_sweep import (
    LOWER_IS_BETTER,
    grid_combinations,
    split_combo,
    sweep,
)
from tcp_lab.backtest.result import trades_frame
from tcp_lab.backtest.sweep_chunk import strategy_class
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
from tcp_lab.execution import TradingOptions
from tcp_lab.execution.account import AMBIGUOUS, N_STATE, open_account_nb
from tcp_lab.execution.simulate import ORDER_FIELDS, TRIP_FIELDS, open_trip_nb
from tcp_lab.strategies import BaseStrategy, check_output
from tcp_lab.strategies.informative import keep_informative, with_informative
from tcp_lab.timeframes import Timeframe, validate_candles

__all__ = ["walk_forward", "fold_windows", "select_combination", "WalkForwardResult"]

_FEES = ORDER_FIELDS.index("fees")


# -- selection -------------------------------------------------------------------------
@dataclass
class Selection:
    """The combination chosen on one train window (``combo`` None: none qualified)."""

    combo: int | None
    params: dict[str, Any] = field(default_factory=dict)
    in_sample: float = float("nan")
    n_combos: int = 0
    n_too_few_trades: int = 0
    n_not_finite: int = 0
    note: str = ""


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def select_combination(table: pd.DataFrame, metric: str, min_trades: int,
                       prefix: str = "", keys: Sequence[str] | None = None) -> Selection:
    """The best finite ``metric`` among rows with at least ``min_trades`` trades.

    ``table`` is a sweep's frame (index: position in the grid; metric columns
    ``prefix + name``); a tie goes to the first combination in grid order.
    ``keys``: the parameter columns (default: the columns before the metrics).
    """
    table = table.sort_index()
    values = table[prefix + metric].to_numpy(dtype=np.float64)
    enough = table[prefix + "n_trades"].to_numpy() >= min_trades
    finite = np.isfinite(values)
    ok = enough & finite
    sel = Selection(None, n_combos=len(table), n_too_few_trades=int((~enough).sum()),
                    n_not_finite=int((enough & ~finite).sum()))
    if not ok.any():
        sel.note = (f"flat: none of {len(table)} combination(s) has >= {min_trades} trade(s) and "
                    f"a finite {metric} ({sel.n_too_few_trades} with fewer trades, "
                    f"{sel.n_not_finite} without a finite {metric})")
        return sel
    lower = metric in LOWER_IS_BETTER
    best = int(np.argmin(np.where(ok, values, np.inf)) if lower
               else np.argmax(np.where(ok, values, -np.inf)))
    if keys is None:
        first = min(table.columns.get_loc(c) for c in table.columns
                    if any(c.endswith(m) for m in METRIC_NAMES))
        keys = list(table.columns[:first])
    sel.combo = int(table.index[best])
    sel.params = {c: _py(table[c].iat[best]) for c in keys}
    sel.in_sample = float(values[best])
    return sel


def check_selection(metric: str, min_trades: Any, owner: str) -> None:
    """Check a walk-forward's selection rule: a known ``metric`` and ``min_trades`` >= 0.

    Raises
    ------
    ConfigError
        An unknown metric (with a did-you-mean) or a ``min_trades`` that is not a
        whole number >= 0; the message names ``owner``.

    Examples
    --------
    >>> check_selection("sharpe", 10, "walk_forward")
    >>> check_selection("sharp", 10, "walk_forward")
    Traceback (most recent call last):
    ...
    tcp_lab.errors.ConfigError: walk_forward: unknown metric 'sharp'; did you mean 'sharpe'? ...
    """
    if metric not in METRIC_NAMES:
        guess = difflib.get_close_matches(str(metric), METRIC_NAMES, n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise ConfigError(f"{owner}: unknown metric {metric!r}{dym}",
                          hint="metrics: " + ", ".join(METRIC_NAMES))
    if isinstance(min_trades, bool) or not isinstance(min_trades, int | np.integer) \
            or min_trades < 0:
        raise ConfigError(f"{owner}: min_trades={min_trades!r} must be an integer >= 0",
                          hint="e.g. min_trades=10")


def _train_sweep(cls: type[BaseStrategy], candles: pd.DataFrame, grid: Any, start: int,
                 stop: int, warmup: int, metric: str, min_trades: int, tf: Timeframe,
                 options: Mapping[str, Any], keys: Sequence[str]) -> tuple[Selection, dict]:
    """Sweep the grid on candles ``[start, stop)`` with up to ``warmup`` candles before it.

    The warm-up candles only feed the indicators: the sweep holds the train
    window out as its own account (``holdout=`` its first candle), so the
    train metrics are those of an account that starts flat on the window.
    """
    first = max(0, start - warmup)
    if start - first < 2:  # the sweep's in-sample part needs 2 candles; too few to matter
        first = start
    held = candles.index[start] if first < start else None
    table = sweep(cls, candles.iloc[first:stop], grid, metric=metric, holdout=held,
                  progress=False, timeframe=tf.name, deflate=0, **options)
    prefix = "oos_" if held is not None else ""
    return select_combination(table, metric, min_trades, prefix, keys), table.attrs


# -- the test windows, one account -----------------------------------------------------
def _act(own: list[np.ndarray], levels: list[np.ndarray], carry: tuple | None,
         at_open: bool, close_out: bool) -> tuple[list[np.ndarray], list[np.ndarray], tuple]:
    """What the engine acts on in each bar of a window, and what the next window inherits.

    ``own``: the fold's four routed signals on the window's bars; ``levels``
    its stop/target (empty or per bar). With ``at_open`` each bar acts on the
    bar before: the first on ``carry`` (the previous window's last signals
    and levels, None after a gap or at the start). ``close_out``: exit on
    the last bar, enter nothing there (a gap follows).
    """
    m = len(own[0])
    has_levels = len(levels[0]) > 0 or (at_open and carry is not None and len(carry[1]) > 0)
    if has_levels and not len(levels[0]):
        levels = [np.full(m, np.nan), np.full(m, np.nan)]
    nxt = (tuple(bool(f[-1]) for f in own), tuple(float(x[-1]) for x in levels)
           if has_levels else ())
    if at_open:
        flags = tuple(bool(x) for x in carry[0]) if carry is not None else (False,) * 4
        prev_levels = carry[1] if carry is not None and len(carry[1]) else (np.nan, np.nan)
        own = [np.concatenate(([f0], f[:-1])) for f0, f in zip(flags, own, strict=True)]
        if has_levels:
            levels = [np.concatenate(([x0], x[:-1])) for x0, x in zip(prev_levels, levels,
                                                                       strict=True)]
    else:
        own = [f.copy() for f in own]
    if close_out:
        own[0][-1] = own[2][-1] = False
        own[1][-1] = own[3][-1] = True
    return own, levels, nxt


def _fold_signals(cls: type[BaseStrategy], sel: Selection, candles: pd.DataFrame, start: int,
                  stop: int, base: TradingOptions) -> tuple[list, list, TradingOptions]:
    """The chosen strategy's routed signals and levels on bars ``[start, stop)``, computed
    on the candles up to ``stop`` (warm, causal); a flat fold exits on its first bar."""
    m = stop - start
    if sel.combo is None:
        flat = [np.zeros(m, dtype=bool) for _ in range(4)]
        flat[1][0] = flat[3][0] = True
        return flat, [np.zeros(0), np.zeros(0)], base
    params, levels = split_combo(sel.params)
    opts = base.with_(**levels) if levels else base
    strategy = cls(params)
    upto = candles.iloc[:stop]
    output = check_output(strategy.compute(upto), upto, repr(strategy))
    flags, stop_p, target_p = engine_signals(output, opts, shift=False)
    own = [f[start:stop] for f in flags]
    lv = [x[start:stop] if len(x) else x for x in (stop_p, target_p)]
    return own, lv, opts


# -- the public function ---------------------------------------------------------------
def walk_forward(
    strategy: str | type[BaseStrategy],
    candles: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    train: Window,
    test: Window,
    step: Window | None = None,
    anchored: bool = False,
    metric: str = "sharpe",
    min_trades: int = 10,
    progress: bool = True,
    informative: Mapping[str, pd.DataFrame] | None = None,
    **trading_options: Any,
) -> WalkForwardResult:
    """Walk-forward: parameters chosen on each train window, traded on the next test window.

    Parameters
    ----------
    strategy
        Registry name, dotted path or strategy class (as :func:`sweep`).
    candles
        Candle frame (validated).
    grid
        Values per parameter, as :func:`sweep` (stops and targets may be swept).
    train, test, step
        Window lengths: candle counts (``int``) or durations (``"90D"``,
        ``"12h"``, ``pd.Timedelta``), all of one kind. ``step`` (default
        ``test``; not shorter than it) moves each fold on. See
        :func:`fold_windows`.
    anchored
        Train windows all start at the first candle (else they slide).
    metric
        What the selection maximises (minimises ``max_drawdown``); one of
        :data:`~tcp_lab.backtest.metrics.METRIC_NAMES`.
    min_trades
        Combinations with fewer closed trades on the train window are not
        eligible; a fold where none is eligible (or none has a finite metric)
        is flat.
    progress
        Show a ``tqdm`` bar, one step per fold.
    informative
        Candles of the other symbols the strategy declares in ``informative`` (as
        :func:`run_backtest` takes them); the series are aligned once over the whole
        history.
    **trading_options
        The trading options of :func:`run_backtest` (``fees``, ``slippage``,
        ``init_cash``, ``size``, ``size_type``, ``direction``, ``price``,
        ``stop_loss``, ``take_profit``, ``trailing_stop``); stops resolve on
        candles (the OHLC rule).

    Returns
    -------
    WalkForwardResult
        ``folds``, ``equity`` (stitched out of sample, one account),
        ``trades``, ``metrics``, ``efficiency``, ``plot()``, ``to_html()``.

    Raises
    ------
    ConfigError
        Invalid windows, an unknown metric (with a did-you-mean), invalid
        ``min_trades`` or trading options.
    StrategyError
        Unknown strategy or invalid grid.
    DataError
        Invalid candles.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> wf = walk_forward("sma_cross", make_candles(6000), {"fast": [5, 10], "slow": [20, 40]},
    ...                   train=2000, test=1000, progress=False)
    >>> len(wf.folds), len(wf.equity)
    (4, 4000)
    """
    started = time.perf_counter()
    cls = strategy_class(strategy)
    base = TradingOptions.from_mapping(trading_options, owner="walk_forward")
    if base.needs_trade_times:
        raise ConfigError("walk_forward: latency_ms and max_volume_share act on market trades; "
                          "walk_forward resolves stops on candles",
                          hint="leave latency_ms and max_volume_share unset")
    check_selection(metric, min_trades, "walk_forward")
    given, candles = candles, validate_candles(candles)
    tf = candle_timeframe(candles.index)
    # informative series aligned once over the whole history (each fold's sweep keeps them)
    candles = with_informative(cls, keep_informative(given, candles), timeframe=tf,
                               others=informative)
    windows = fold_windows(candles.index, train=train, test=test, step=step,
                           anchored=bool(anchored), timeframe=tf)
    _, combos = grid_combinations(cls, grid, None, 0)  # the grid checked once, before any fold
    strategy_keys = {p.name for p in cls.parameters}
    warmup = max(cls({k: v for k, v in c.items() if k in strategy_keys}).warmup for c in combos)
    keys = list(combos[0])
    swept = [k for k in keys if (k in strategy_keys if grid is None else k in grid)]
    options = {k: v for k, v in base.to_dict().items() if k in trading_options}

    from tqdm.auto import tqdm

    at_open = base.price == "next_open"
    o, h, lo, c = (np.ascontiguousarray(candles[k].to_numpy(), dtype=np.float64)
                   for k in ("open", "high", "low", "close"))
    ts = candles.index.as_unit("us").asi8
    state = np.empty(N_STATE)
    open_account_nb(state, float(base.init_cash))
    entry_idx, carry = -1, None
    selections, equity, position, trips, fees, swept_s = [], [], [], [], 0.0, 0.0
    scheduler = None
    with tqdm(total=len(windows), unit="fold", desc=f"walk-forward {cls.name}",
              disable=not progress) as bar:
        for k, (ta, tb, sa, sb) in enumerate(windows):
            sel, attrs = _train_sweep(cls, candles, grid, ta, tb, warmup, metric,
                                      int(min_trades), tf, options, keys)
            scheduler, swept_s = attrs["scheduler"], swept_s + attrs["elapsed_s"]
            own, levels, opts = _fold_signals(cls, sel, candles, sa, sb, base)
            gap_after = k + 1 < len(windows) and windows[k + 1][2] != sb
            act, act_levels, carry = _act(own, levels, carry, at_open, gap_after)
            eq, pos, orders, closed, entry_idx = simulate_window(
                state, sa, (o[sa:sb], h[sa:sb], lo[sa:sb], c[sa:sb]), act, *act_levels, opts,
                entry_idx=entry_idx)
            if gap_after:
                carry = None
            selections.append(sel)
            equity.append(eq)
            position.append(pos)
            trips.append(closed)
            fees += float(orders[:, _FEES].sum())
            bar.update(1)
    last = windows[-1][3] - 1
    trips.append(open_trip_nb(state, entry_idx, last, c[last]))
    return _result(cls, candles, tf, base, metric, windows, selections, swept,
                   np.concatenate(equity), np.concatenate(position),
                   np.concatenate(trips), fees, state, ts,
                   settings={"train": train, "test": test, "step": test if step is None else step,
                             "anchored": bool(anchored), "min_trades": int(min_trades),
                             "warmup": warmup, "scheduler": scheduler, "sweep_s": swept_s,
                             "elapsed_s": time.perf_counter() - started})


def _result(cls: type[BaseStrategy], candles: pd.DataFrame, tf: Timeframe,
            base: TradingOptions, metric: str, windows: list[tuple[int, int, int, int]],
            selections: list[Selection], swept: list[str], equity: np.ndarray,
            position: np.ndarray, trips: np.ndarray, fees: float, state: np.ndarray,
            ts: np.ndarray, settings: dict[str, Any]) -> WalkForwardResult:
    """Assemble the folds table, the stitched series and trades, and their metrics."""
    index = candles.index
    rows = np.concatenate([np.arange(c, d) for _, _, c, d in windows])
    init_cash = float(base.init_cash)
    f = {name: trips[:, i] for i, name in enumerate(TRIP_FIELDS)}
    closed = f["closed"] == 1.0
    close = candles["close"].to_numpy()
    metrics: dict[str, Any] = compute_metrics(
        np.concatenate(([init_cash], equity)), f["pnl"][closed], f["return"][closed],
        position != 0.0, tf.per_year, stitched_years(ts, windows, tf),
        slots=stitched_slots(ts, windows, tf))
    metrics.update(n_open_trades=int((~closed).sum()), fees_paid=fees,
                   final_equity=float(equity[-1]),
                   buy_and_hold_return=float(close[rows[-1]] / close[rows[0]] - 1.0),
                   ambiguous_bars=int(state[AMBIGUOUS]), n_folds=len(windows),
                   n_flat_folds=sum(s.combo is None for s in selections))
    folds = fold_table(windows, selections, swept, metric, index, equity, position != 0.0,
                       f["pnl"][closed], f["return"][closed], f["exit_idx"][closed], init_cash,
                       tf)
    trades = label_trades(trades_frame(trips, index), f["entry_idx"], windows, folds, swept,
                          base.price == "next_open")
    efficiency = efficiency_series(folds, metric)
    stitched = index[rows]
    return WalkForwardResult(
        strategy_name=cls.name or cls.__qualname__, metric=metric, options=base.to_dict(),
        timeframe=tf, parameters=swept, folds=folds,
        equity=pd.Series(equity, index=stitched, name="equity"),
        position=pd.Series(position, index=stitched, name="position"),
        trades=trades, metrics=metrics, efficiency=efficiency, settings=settings)
