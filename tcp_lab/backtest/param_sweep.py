"""Parameter sweeps: every combination of a grid backtested, one row of metrics each.

:func:`sweep` backtests a strategy for each parameter combination with the
execution engine of :func:`~tcp_lab.backtest.engine.run_backtest` and the metrics
of :mod:`tcp_lab.backtest.metrics`, without keeping an equity curve per
combination. Two paths:

* **fused** (``sma_cross``, ``ema_cross``; :data:`~tcp_lab.backtest.fused.FUSED_KERNELS`):
  moving averages, crosses and fills in one numba pass per combination;
* **generic** (any strategy): ``strategy.compute`` per combination (shared
  indicators computed once, :mod:`~tcp_lab.backtest.indicator_cache`), then
  the numba fill kernel over the signal columns.

Work is cut into chunks of combinations so memory stays bounded; each chunk is
one call of :func:`~tcp_lab.backtest.sweep_chunk.run_chunk`, a pure function
of picklable arguments. In process (the default), chunks run one after
another and numba uses every core within a chunk. When the ``scheduler``
setting (``TCP_LAB_SCHEDULER``) names a Dask cluster, the chunks become its
tasks (:mod:`tcp_lab.distributed`): at least four chunks per worker thread
when the grid allows, the candle arrays shipped to every worker once, one
numba thread per task. Either way the result is the same frame, row for row and bit for bit.

Signals are computed once on the whole history (they are causal, so this
never looks ahead) and each *segment* — the whole run, or the in-sample and
held-out parts, or walk-forward folds — is traded as its own account that
starts flat with ``init_cash``.
"""

from __future__ import annotations

import difflib
import itertools
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.engine import candle_timeframe
from tcp_lab.backtest.fused import tile_order
from tcp_lab.backtest.metrics import METRIC_NAMES
from tcp_lab.backtest.run_metrics import RUN_METRIC_NAMES
from tcp_lab.backtest.sweep_chunk import (
    TRADE_KEYS,
    candles_to_arrays,
    fused_name,
    run_chunk,
    strategy_class,
)
from tcp_lab.backtest.sweep_rank import deflate_best, rank_rows
from tcp_lab.backtest.trade_source import TradeChunks
from tcp_lab.distributed import (
    Task,
    broadcast,
    describe_executor,
    get_executor,
    run_tasks,
    worker_threads,
)
from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.execution import LEVEL_OPTIONS, TradingOptions
from tcp_lab.remote_code import check_importable
from tcp_lab.strategies import BaseStrategy
from tcp_lab.strategies.informative import keep_informative, with_informative
from tcp_lab.timeframes import to_utc_timestamp, validate_candles

__all__ = ["sweep", "run_chunk", "candles_to_arrays", "grid_combinations", "split_combo",
           "LOWER_IS_BETTER"]

#: Metrics where smaller is better (sorted ascending).
LOWER_IS_BETTER = frozenset({"max_drawdown"})
#: Memory a chunk may use for signal columns or moving-average tables.
CHUNK_BYTES = 256 * 2**20
_YEAR_US = 365 * 86400 * 1_000_000
#: Candle-combinations of work in the smallest cluster task (about 0.1 s on one core,
#: measured: ~10 ns per candle and combination fused, ~33 ns generic).
TASK_MIN_WORK = {"fused": 10_000_000, "generic": 3_000_000}


# -- the public sweep -------------------------------------------------------------------
def _segments(
    index: pd.DatetimeIndex, holdout: float | str | pd.Timestamp | None, walk_forward: int | None
) -> tuple[list[tuple[int, int]], list[str]]:
    n = len(index)
    if holdout is not None and walk_forward is not None:
        raise ConfigError("sweep: holdout= and walk_forward= cannot be combined",
                          hint="use one of them")
    if holdout is not None:
        if isinstance(holdout, float | int) and not isinstance(holdout, bool):
            if not 0 < holdout < 1:
                raise ConfigError(f"sweep: holdout={holdout!r} must be a fraction in (0, 1)",
                                  hint="e.g. holdout=0.3 keeps the last 30 % out of sample")
            split = n - int(round(n * float(holdout)))
        else:
            split = int(index.searchsorted(to_utc_timestamp(holdout, name="holdout")))
        if not 2 <= split <= n - 2:
            raise ConfigError(
                f"sweep: holdout={holdout!r} leaves {split} in-sample and {n - split} "
                "out-of-sample candle(s); each part needs at least 2",
                hint=f"candles run from {index[0]} to {index[-1]}",
            )
        return [(0, split), (split, n)], ["is_", "oos_"]
    if walk_forward is not None:
        k = int(walk_forward)
        if k < 2 or k != walk_forward or n < 2 * k:
            raise ConfigError(
                f"sweep: walk_forward={walk_forward!r} must be an integer >= 2 with at least "
                f"2 candles per fold ({n} candles)",
                hint="e.g. walk_forward=4",
            )
        bounds = np.linspace(0, n, k + 1).round().astype(int)
        return ([(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                [f"wf{i + 1}_" for i in range(k)])
    return [(0, n)], [""]


def split_combo(combo: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A grid combination as (strategy parameters, swept stops and targets: the
    :data:`~tcp_lab.execution.LEVEL_OPTIONS`, trading options rather than parameters).

    Examples
    --------
    >>> split_combo({"fast": 5, "stop_loss": 0.02})
    ({'fast': 5}, {'stop_loss': 0.02})
    """
    params = {k: v for k, v in combo.items() if k not in LEVEL_OPTIONS}
    return params, {k: v for k, v in combo.items() if k in LEVEL_OPTIONS}


def grid_combinations(
    cls: type[BaseStrategy], grid: Mapping[str, Any] | None, n_random: int | None, seed: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The combinations to run and their positions in the full (filtered) grid.

    The one reading of a grid that :func:`sweep`, :func:`~tcp_lab.walk_forward`
    and the portfolio sweeps share. Trading options in the grid
    (:data:`~tcp_lab.execution.LEVEL_OPTIONS`: ``stop_loss``, ``take_profit``,
    ``trailing_stop``) multiply the strategy's combinations; they are columns
    like the parameters.

    Parameters
    ----------
    cls
        Strategy class.
    grid
        Values per parameter (``...``: its default grid), or None for every
        parameter's default grid.
    n_random, seed
        Keep only this many combinations, drawn without replacement (None: all).

    Returns
    -------
    tuple
        Positions in the full grid (int array) and the combinations (dicts).

    Raises
    ------
    StrategyError
        The grid has no valid combination.
    ConfigError
        ``n_random`` below 1.

    Examples
    --------
    >>> from tcp_lab.backtest.sweep_chunk import strategy_class
    >>> ids, combos = grid_combinations(strategy_class("sma_cross"),
    ...                                 {"fast": [5, 10], "slow": [20]}, None, 0)
    >>> ids.tolist(), combos[1]
    ([0, 1], {'fast': 10, 'slow': 20})
    """
    ranges = dict(grid) if grid is not None else {p.name: ... for p in cls.parameters}
    levels = {k: list(ranges.pop(k)) for k in LEVEL_OPTIONS if k in ranges}
    combos = cls.parameter_grid(**ranges)
    if levels:
        combos = [c | dict(zip(levels, values, strict=True)) for c in combos
                  for values in itertools.product(*levels.values())]
    if not combos:
        raise StrategyError(
            f"sweep of {cls.name!r}: the grid {ranges} has no valid combination",
            hint="check_parameters rejected every combination (e.g. fast >= slow)",
        )
    if n_random is not None:
        if n_random < 1:
            raise ConfigError(f"sweep: n_random={n_random!r} must be >= 1")
        pick = np.sort(np.random.default_rng(seed).choice(
            len(combos), min(n_random, len(combos)), replace=False))
        return pick, [combos[i] for i in pick]
    return np.arange(len(combos)), combos


#: The former private name, kept for callers that still use it.
_combos = grid_combinations


def _task_size(n_combos: int, n_bars: int, threads: int, fused: bool) -> int:
    """Most combinations per cluster task: 4 tasks per worker thread, none under ~0.1 s.

    Larger tasks (up to the memory-bound in-process chunk) waste less: each fused
    chunk computes its moving averages afresh, so small chunks cost more per
    combination (measured on 1M candles: 49 per chunk +30 % CPU, 256 per chunk +10 %).
    """
    least = max(1, TASK_MIN_WORK["fused" if fused else "generic"] // max(n_bars, 1))
    return max(least, -(-n_combos // (4 * threads)))


def _chunks(cls: type[BaseStrategy], combos: list[dict], n_bars: int, options: dict,
            chunk_size: int | None, threads: int | None = None,
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """An order of the combinations and the chunks (index arrays into ``combos``).

    ``threads``: worker threads of a cluster (chunks become tasks sized for it).
    """
    fused = fused_name(cls)
    per_task = None if threads is None else _task_size(len(combos), n_bars, threads,
                                                       fused is not None)
    if fused is not None:
        # a chunk of tile x tile combinations needs at most 2 * tile averages in memory;
        # tiles of <= 48 keep several chunks (progress steps) per typical grid
        windows = max(4, CHUNK_BYTES // (8 * n_bars))
        tile = max(2, min(48, windows // 2))
        if per_task is not None:  # square tiles of at most one task's size
            tile = max(2, min(tile, math.isqrt(per_task)))
        order = tile_order(combos, fused, tile)
        default = tile * tile
    else:
        order = np.arange(len(combos))
        arrays = 4 if options["direction"] == "longshort" else 2
        default = max(1, min(4096, CHUNK_BYTES // (arrays * n_bars), per_task or 4096))
    size = default if chunk_size is None else int(chunk_size)
    if size < 1:
        raise ConfigError(f"sweep: chunk_size={chunk_size!r} must be >= 1")
    return order, [order[i:i + size] for i in range(0, len(order), size)]


def sweep(
    strategy: str | type[BaseStrategy],
    candles: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    n_random: int | None = None,
    seed: int = 0,
    metric: str = "sharpe",
    holdout: float | str | pd.Timestamp | None = None,
    walk_forward: int | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    timeframe: str | None = None,
    trades: pd.DataFrame | str | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
    min_trades: int | None = 10,
    deflate: int = 3,
    informative: Mapping[str, pd.DataFrame] | None = None,
    **backtest_options: Any,
) -> pd.DataFrame:
    """Backtest every parameter combination of a grid; one row of metrics per combination.

    Parameters
    ----------
    strategy
        Registry name, dotted path or strategy class.
    candles
        Candle frame (validated).
    grid
        Values per parameter (``{"fast": range(5, 50), "slow": [50, 100]}``;
        ``...`` for a parameter's default grid). Parameters not named keep
        their default; ``None`` sweeps every parameter's default grid.
        Combinations the strategy's ``check_parameters`` rejects are dropped.
    n_random
        Backtest only this many combinations, drawn without replacement
        (reproducible with ``seed``).
    seed
        Seed of the random draw.
    metric
        Sort key (best first; one of :data:`~tcp_lab.backtest.metrics.METRIC_NAMES`).
    holdout
        Keep the last part out of sample: a fraction (``0.3``) or the UTC
        timestamp where it starts. Columns ``is_<metric>`` and
        ``oos_<metric>`` side by side; rows sorted by the in-sample metric.
    walk_forward
        Deprecated (a ``FutureWarning``; use :func:`tcp_lab.walk_forward`, which picks
        on each train window and trades the next test window). Split the history into
        this many consecutive folds, each its own
        account: columns ``wf1_<metric>``…, ``wf_mean_<metric>`` and
        ``wf_min_<metric>`` for the sort metric; rows sorted by the mean.
        ``df.attrs["walk_forward"]`` lists, for each fold after the first,
        the combination that was best on the previous fold and how it did.
    chunk_size
        Combinations per chunk (default: what fits in about 256 MB; on a Dask
        cluster, smaller when that leaves fewer than four chunks per worker
        thread, but not under about 0.1 s of work).
    progress
        Show a ``tqdm`` bar (one step per chunk, as chunks complete).
    timeframe
        Candle timeframe; inferred from the index when omitted.
    trades, exchange, symbol
        Resolve stops and targets on market trades, as :func:`run_backtest`
        does (a frame of ``ts, price, amount``, or ``"store"`` for the stored
        trades of ``exchange``/``symbol``); they are read into memory once.
    min_trades
        Rank rows with fewer trades than this (in the ranked segment; default 10, as
        :func:`~tcp_lab.walk_forward`; ``None`` or 0: no such rule) after all others:
        one lucky trade makes an extreme Sharpe ratio. Rows whose
        sort metric is not finite (``inf`` Sortino or profit factor, NaN) come
        last too, whatever this is.
    informative
        Candles of the other symbols the strategy declares in ``informative``, by
        symbol (as :func:`~tcp_lab.backtest.run_backtest` takes them).
    deflate
        Give the best this many rows (not with ``walk_forward``) the
        probabilistic and the deflated Sharpe ratio, columns ``psr`` and
        ``dsr`` (NaN for the others): each is re-run with :func:`run_backtest`
        on the ranked segment for the skewness and kurtosis of its returns, and
        deflated by the sweep's own number of trials and the spread of their
        Sharpe ratios (:mod:`tcp_lab.backtest.sweep_rank`). ``0``: none.
    **backtest_options
        The trading options of :func:`run_backtest` (``fees``, ``slippage``,
        ``init_cash``, ``size``, ``size_type``, ``direction``, ``price``,
        ``stop_loss``, ``take_profit``, ``trailing_stop``). Stop, target and
        trailing stop may also be swept: put a list of them in ``grid``.

    Returns
    -------
    DataFrame
        Index ``combo`` (position in the grid), parameter columns, then
        metric columns, then ``psr`` and ``dsr``; ``attrs`` holds the strategy,
        options, segments, timing, ``deflated`` (trials, their Sharpe spread)
        and ``scheduler`` (the Dask scheduler's address, or ``None`` in
        process). The frame does not depend on where it ran.

    Raises
    ------
    StrategyError
        Unknown strategy, invalid grid values, or a failing combination (the
        message names it; on a cluster, the note names the chunk).
    ConfigError
        Unknown or invalid options, or a malformed ``TCP_LAB_SCHEDULER``.
    ServiceError
        ``TCP_LAB_SCHEDULER`` is set but the scheduler is unreachable or has
        no worker, or a worker died.

    Notes
    -----
    With ``TCP_LAB_SCHEDULER`` set (``local`` or ``tcp://host:8786``) the
    chunks run as tasks of that Dask cluster (:mod:`tcp_lab.distributed`).

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> df = sweep("sma_cross", make_candles(5000), {"fast": [5, 10], "slow": [20, 40]},
    ...            progress=False)
    >>> list(df.columns[:4]), len(df)
    (['fast', 'slow', 'total_return', 'cagr'], 4)
    """
    started = time.perf_counter()
    cls = strategy_class(strategy)
    base = TradingOptions.from_mapping(backtest_options, owner="sweep")
    if metric in RUN_METRIC_NAMES:
        raise ConfigError(f"sweep: metric={metric!r} is one of run_backtest's own metrics; "
                          "a sweep does not compute it for every combination",
                          hint="rank by one of " + ", ".join(METRIC_NAMES) + ", then "
                          "run_backtest the best rows")
    if metric not in METRIC_NAMES:
        guess = difflib.get_close_matches(metric, METRIC_NAMES, n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise ConfigError(f"sweep: unknown metric {metric!r}{dym}",
                          hint="metrics: " + ", ".join(METRIC_NAMES))
    opts = base.to_dict()
    for key in LEVEL_OPTIONS:  # swept stops and targets: each value checked once, here
        for value in (grid or {}).get(key, ()):
            TradingOptions.from_mapping(opts | {key: value}, owner=f"sweep grid {key}")
    given, candles = candles, validate_candles(candles, timeframe)
    tf = candle_timeframe(candles.index, timeframe)  # the close grid checked, as run_backtest
    # the strategy's informative series, as run_backtest adds them (once: they do not
    # depend on the parameters)
    candles = with_informative(cls, keep_informative(given, candles), timeframe=tf,
                               others=informative, symbol=symbol)
    segments, prefixes = _segments(candles.index, holdout, walk_forward)
    if walk_forward is not None:
        warnings.warn(
            "sweep(walk_forward=k) ranks combinations by their mean over all folds, a choice "
            "that sees the whole history, and will be removed; use tcp_lab.walk_forward("
            "strategy, candles, grid, train=..., test=...) for the out-of-sample walk-forward",
            FutureWarning, stacklevel=2)
    ts = candles.index.asi8
    options = {
        **opts,
        "segments": segments,
        "prefixes": prefixes,
        "years": [float((ts[b - 1] - ts[a]) / _YEAR_US) for a, b in segments],
        "bars_per_year": tf.per_year,
    }
    ids, combos = grid_combinations(cls, grid, n_random, seed)
    client = get_executor()  # None unless a Dask scheduler is set
    threads = None if client is None else worker_threads(client)
    order, chunks = _chunks(cls, combos, len(candles), options, chunk_size, threads)
    arrays = candles_to_arrays(candles)
    if trades is not None:
        arrays |= sweep_trade_arrays(trades, candles, base, exchange, symbol)
    ref: str | type[BaseStrategy] = cls.name if fused_name(cls) else cls
    run = _run_here if client is None else _run_on_cluster
    parts = run(client, cls, ref, arrays, combos, chunks, options, progress)
    for part, idx in zip(parts, chunks, strict=True):
        part.index = ids[idx]
    df = pd.concat(parts).sort_index()
    df.index.name = "combo"
    key = _summarize(df, prefixes, metric, walk_forward)
    trades_column = None if walk_forward else prefixes[0] + "n_trades"
    df = rank_rows(df, key, metric in LOWER_IS_BETTER, min_trades, trades_column)
    elapsed = time.perf_counter() - started
    deflated = None
    df["psr"] = np.nan  # the same columns whether or not any row is deflated
    df["dsr"] = np.nan
    if deflate and not walk_forward:
        inputs = {"trades": trades, "exchange": exchange, "symbol": symbol} \
            if trades is not None else {}
        if informative is not None or symbol is not None:
            inputs |= {"informative": informative, "symbol": symbol}
        deflated = deflate_best(df, cls, candles, segments[0], prefixes[0], tf.per_year, deflate,
                                opts, [p.name for p in cls.parameters], timeframe=tf.name,
                                **inputs)
    deflate_s = time.perf_counter() - started - elapsed
    df.attrs = {
        "strategy": cls.name,
        "metric": metric,
        "sort_by": key,
        "timeframe": tf.name,
        "options": opts,
        "segments": [(str(candles.index[a]), str(candles.index[b - 1])) for a, b in segments],
        "holdout": None if holdout is None else str(holdout),
        "walk_forward": _walk_forward_table(df, prefixes, metric) if walk_forward else None,
        "min_trades": min_trades,
        "deflated": deflated,
        "n_combos": len(df),
        "n_chunks": len(chunks),
        "path": "fused" if fused_name(cls) else "generic",
        "scheduler": describe_executor(client),
        "elapsed_s": elapsed,
        "deflate_s": deflate_s,
        "combos_per_s": len(df) / elapsed if elapsed > 0 else float("nan"),
    }
    return df


def sweep_trade_arrays(trades: pd.DataFrame | str, candles: pd.DataFrame,
                       opts: TradingOptions, exchange: str | None, symbol: str | None,
                       ) -> dict[str, np.ndarray]:
    """The market trades of a sweep, indexed by bar, as arrays that ship with the candles."""
    if opts.price != "close":
        raise ConfigError("sweep: trades resolve stops for entries at the close; "
                          f"price={opts.price!r} is not supported with trades",
                          hint="use price='close' with trades=")
    whole = TradeChunks(trades, candles, exchange=exchange, symbol=symbol,
                        timed=opts.needs_trade_times).whole()
    return dict(zip(TRADE_KEYS, whole, strict=True))


def _run_here(client: None, cls: type[BaseStrategy], ref: str | type[BaseStrategy],
              arrays: dict[str, np.ndarray], combos: list[dict], chunks: list[np.ndarray],
              options: dict, progress: bool) -> list[pd.DataFrame]:
    """The chunks one after another in this process (numba threads within each)."""
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(combos), unit="combo", desc=f"sweep {cls.name}",
              disable=not progress) as bar:
        for idx in chunks:
            parts.append(run_chunk(ref, arrays, [combos[i] for i in idx], options))
            bar.update(len(idx))
    return parts


def _run_on_cluster(client: Any, cls: type[BaseStrategy], ref: str | type[BaseStrategy],
                    arrays: dict[str, np.ndarray], combos: list[dict],
                    chunks: list[np.ndarray], options: dict,
                    progress: bool) -> list[pd.DataFrame]:
    """The chunks as Dask tasks; the candle arrays go to every worker once."""
    if not isinstance(ref, str):  # a class by reference: its module must be there
        check_importable(client, ref)
    shared = broadcast(client, arrays)
    tasks = []
    for k, idx in enumerate(chunks):
        chunk = [combos[i] for i in idx]
        tasks.append(Task(
            (ref, shared, chunk, options),
            f"chunk {k + 1}/{len(chunks)} of the {cls.name} sweep ({len(chunk)} "
            f"combination(s) from {dict(chunk[0])} to {dict(chunk[-1])})",
            weight=len(chunk)))
    try:
        return run_tasks(client, run_chunk, tasks, desc=f"sweep {cls.name}", unit="combo",
                         progress=progress)
    finally:
        shared.release()


def _summarize(df: pd.DataFrame, prefixes: list[str], metric: str,
               walk_forward: int | None) -> str:
    """Add walk-forward summary columns; return the column to sort by."""
    if walk_forward:
        folds = df[[p + metric for p in prefixes]]
        df[f"wf_mean_{metric}"] = folds.mean(axis=1)
        worst = folds.max(axis=1) if metric in LOWER_IS_BETTER else folds.min(axis=1)
        df[f"wf_min_{metric}"] = worst
        return f"wf_mean_{metric}"
    return prefixes[0] + metric


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _walk_forward_table(df: pd.DataFrame, prefixes: list[str], metric: str) -> list[dict]:
    """For each fold after the first: the best combination on the fold before, and its result."""
    params = [c for c in df.columns if not any(c.startswith(p) for p in prefixes)
              and not c.startswith("wf_") and c not in ("psr", "dsr")]
    rows = []
    for i in range(1, len(prefixes)):
        past = df[prefixes[i - 1] + metric]
        if past.notna().sum() == 0:
            continue
        best = past.idxmin() if metric in LOWER_IS_BETTER else past.idxmax()
        rows.append({
            "fold": i + 1,
            "params": {p: _py(df.at[best, p]) for p in params},
            f"is_{metric}": float(past[best]),
            f"oos_{metric}": float(df.at[best, prefixes[i] + metric]),
        })
    return rows
