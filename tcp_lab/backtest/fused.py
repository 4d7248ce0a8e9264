"""Fused sweep kernels for moving-average crosses: averages, crosses and fills in one pass.

For ``sma_cross`` and ``ema_cross`` a sweep need not materialise any signal
array: each distinct window's average is computed once per chunk, and one
pass per combination detects the crosses and runs them through the execution
engine's bar step (:func:`tcp_lab.backtest.kernels.step_nb`), in parallel over
combinations.

The averages come from the strategies' own indicator functions
(:mod:`tcp_lab.strategies.indicators`), not from a faster formula: a cross
compares two floats, and on flat stretches (a 1m close often repeats) the
fast and slow means are *equal*; a mean computed another way (differences of
a cumulative sum) lands an ulp above or below and invents crosses the
strategy does not have. Same function, same bits, same crosses.

:data:`FUSED_KERNELS` maps a strategy name to its :class:`FusedKernel`; the
sweep uses it only when the strategy class *is* the registered built-in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange
from numba.typed import List

from tcp_lab.backtest.kernels import (
    N_ACC,
    hold_nb,
    mark_nb,
    start_marks_nb,
    step_nb,
    write_acc_nb,
)
from tcp_lab.execution.account import (
    CASH,
    EXIT_READY,
    EXTREME,
    N_FILL,
    N_STATE,
    POSITION,
    STOP,
    T_LONG,
    TARGET,
    open_account_nb,
)
from tcp_lab.execution.kernel import (
    O_TRAIL,
    level_ranges_nb,
    levels_on_nb,
    quiet_bar_nb,
    quiet_extreme_nb,
)
from tcp_lab.strategies import indicators

__all__ = ["FusedKernel", "FUSED_KERNELS", "ma_cross_nb", "run_fused"]


#: Bars per time block of :func:`ma_cross_nb`: a chunk's averages (at most ~48
#: windows) over one block take 48 x 4096 x 8 B = 1.5 MB, within a core's L2 cache.
BLOCK_BARS = 4096
#: One combination's running state between blocks: the engine's account, then the marks (8).
_N_STATE = N_STATE + 8


@njit(cache=True, parallel=True)
def ma_cross_nb(
    bars: np.ndarray,
    slot: np.ndarray,
    table: List,
    fast_row: np.ndarray,
    slow_row: np.ndarray,
    valid_from: np.ndarray,
    segments: np.ndarray,
    shift: int,
    reverse: bool,
    opts: np.ndarray,
    init_cash: float,
    trades: tuple,
) -> np.ndarray:
    """Backtest MA crosses for every combination; accumulators ``(n_combos, n_segments, N_ACC)``.

    ``bars`` is float64 ``(4, n)`` (open, high, low, close), ``slot`` each
    bar's position on the timeframe's grid (see
    :func:`~tcp_lab.backtest.kernels.simulate_signals_nb`); ``table`` holds
    one array of averages per window (:meth:`FusedKernel.table`).
    Combination ``k`` enters when ``table[fast_row[k]]`` crosses above
    ``table[slow_row[k]]`` (``a[t] > b[t]`` and ``a[t-1] <= b[t-1]``) and
    exits when it crosses below; rows before ``valid_from[k]`` are undefined
    (NaN in the strategy) and never cross. ``shift=1`` acts on the previous
    bar's signal at this bar's open (``price="next_open"``). ``reverse`` maps
    exits to short entries (``direction="longshort"``). ``opts[k]`` are
    combination ``k``'s trading options; ``trades`` the market trades to
    resolve stops and targets on (see :func:`~tcp_lab.backtest.kernels.simulate_signals_nb`).

    Time runs in blocks of :data:`BLOCK_BARS`: every combination (in parallel)
    trades one block, its account carried to the next, so the averages a
    block reads stay in cache while all the combinations that share them
    pass; streaming each combination's averages from memory instead made
    two cores slow each other down. Each account sees the same bars in the
    same order as in one pass, so the sums are bit for bit the same.
    """
    n_combos = fast_row.shape[0]
    out = np.empty((n_combos, segments.shape[0], N_ACC), dtype=np.float64)
    state = np.empty((n_combos, _N_STATE), dtype=np.float64)
    for s in range(segments.shape[0]):
        start, stop = segments[s, 0], segments[s, 1]
        for k in range(n_combos):
            _open_nb(state[k], init_cash)
        for block in range(start, stop, BLOCK_BARS):
            end = min(block + BLOCK_BARS, stop)
            for k in prange(n_combos):
                # before row valid_from + 1 nothing crosses: the account stays flat and unmarked
                first = max(block, valid_from[k] + 1 + shift)
                if first < end:
                    _ma_cross_bars_nb(
                        bars, slot, table[fast_row[k]], table[slow_row[k]], first, end, shift,
                        reverse, opts[k], state[k], trades,
                    )
        for k in range(n_combos):
            st = state[k]
            write_acc_nb(out[k, s], init_cash, slot[start], slot[stop - 1], _marks(st),
                         st[:N_STATE])
    return out


@njit(cache=True, inline="always")
def _marks(st):
    m = N_STATE
    return (st[m], st[m + 1], st[m + 2], st[m + 3], st[m + 4], st[m + 5], st[m + 6], st[m + 7])


@njit(cache=True)
def _open_nb(state, init_cash):
    """A flat account with ``init_cash`` and fresh marks in ``state`` (see :data:`_N_STATE`)."""
    open_account_nb(state[:N_STATE], init_cash)
    marks = start_marks_nb(init_cash)
    for q in range(8):
        state[N_STATE + q] = marks[q]


@njit(cache=True, inline="always")
def _side_nb(fast, slow, t):
    """Row ``t``'s side: 1 when the fast average is above the slow one, -1 below, 0 equal."""
    a, b = fast[t], slow[t]
    return 1 if a > b else (-1 if a < b else 0)


@njit(cache=True, inline="always")
def _side_run_end_nb(fast, slow, i, end, shift, side):
    """The first bar ``>= i`` (before ``end``) whose side is not ``side``: one comparison
    per bar."""
    if side == 1:
        while i < end and fast[i - shift] > slow[i - shift]:
            i += 1
    elif side == -1:
        while i < end and fast[i - shift] < slow[i - shift]:
            i += 1
    else:
        while i < end and fast[i - shift] == slow[i - shift]:
            i += 1
    return i


@njit(cache=True)
def _ma_cross_bars_nb(bars, slot, fast, slow, first, end, shift, reverse, opts, state, trades):
    """Trade bars ``[first, end)`` of one combination, its account carried in ``state``.

    A signal needs the side (:func:`_side_nb`) to change: up when it becomes
    1 (``a[t] > b[t]`` and not ``a[t-1] > b[t-1]``), down when it becomes -1.
    Between changes of side the loop takes one of three tight paths (only
    the comparisons while flat; the comparisons and the marks while holding
    a position without stops or targets; and, with them, the marks while
    the bar's range cannot reach a level, the levels in registers) and
    leaves them on the bar where the side changes or a level is in reach;
    the engine then runs exactly where one generic loop would run it, with
    the same sums.
    """
    account = state[:N_STATE]
    fills = np.empty((2, N_FILL))
    use_levels = levels_on_nb(opts, False)
    marks = _marks(state)
    cash, pos = account[CASH], account[POSITION]  # in registers between the engine's steps
    close = bars[3]
    lows, highs = level_ranges_nb(bars[2], bars[1], trades)
    trail = opts[O_TRAIL]
    # rows >= valid_from are defined (no NaN)
    side = _side_nb(fast, slow, first - 1 - shift)
    i = first
    while i < end:
        if pos == 0.0:  # flat: nothing happens until the side changes
            i = _side_run_end_nb(fast, slow, i, end, shift, side)
        elif not use_levels:  # in the market: mark each bar until the side changes
            while i < end and _side_nb(fast, slow, i - shift) == side:
                marks = mark_nb(marks, cash + pos * close[i])
                i += 1
        elif account[EXIT_READY] != account[EXIT_READY]:  # levels live, no exit under way:
            long = account[T_LONG] == 1.0  # mark each bar that cannot reach them
            stop, target, extreme = account[STOP], account[TARGET], account[EXTREME]
            while i < end and _side_nb(fast, slow, i - shift) == side:
                moved = quiet_extreme_nb(long, stop, target, extreme, lows[i], highs[i], trail)
                if moved != moved:
                    break
                extreme = moved
                marks = mark_nb(marks, cash + pos * close[i])
                i += 1
            account[EXTREME] = extreme
        if i >= end:
            break
        now = _side_nb(fast, slow, i - shift)
        up, down = now == 1 and side != 1, now == -1 and side != -1
        side = now
        signal = up or down
        was_in = pos != 0.0
        if signal or (use_levels and was_in
                       and not quiet_bar_nb(account, lows[i], highs[i], trail)):
            step_nb(bars, i, up, down and not reverse, down and reverse, False, np.nan, np.nan,
                    shift == 1, use_levels, opts, account, fills, trades)
            cash, pos = account[CASH], account[POSITION]
            if was_in != (pos != 0.0):
                marks = hold_nb(marks, was_in, slot[i])
        if was_in or signal or pos != 0.0:
            marks = mark_nb(marks, cash + pos * close[i])
        i += 1
    for q in range(8):
        state[N_STATE + q] = marks[q]


@dataclass(frozen=True)
class FusedKernel:
    """How to sweep one MA-cross strategy without materialising signals.

    Attributes
    ----------
    average
        ``(close, window) -> averages``: the strategy's own indicator, without
        NaN masking beyond its own warm-up.
    valid_from
        ``(fast, slow) -> first row`` where both of the strategy's averages
        are defined (arrays of windows in, array of rows out).
    params
        Names of the fast and slow window parameters.
    averages
        ``(close, windows) -> 2-D array``, row ``j`` bit for bit
        ``average(close, windows[j])``, in one pass (optional; faster).
    """

    average: Callable[[np.ndarray, int], np.ndarray]
    valid_from: Callable[[np.ndarray, np.ndarray], np.ndarray]
    params: tuple[str, str] = ("fast", "slow")
    averages: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def table(self, close: np.ndarray, windows: np.ndarray) -> List:
        """The averages for each window: a numba list of ``len(windows)`` arrays.

        Each array is the indicator's own result (``averages`` computes a
        group of windows in one pass, with the same bits as ``average`` one
        by one), not copied into one table (a fresh 256 MB table per chunk
        cost more in page faults than the averages themselves); a read-only
        one (pandas) is copied. The work is split over
        :func:`numba.get_num_threads` threads — one on a Dask worker thread
        (:mod:`tcp_lab.distributed`), so a single-threaded worker uses one core.
        """
        threads = max(1, min(len(windows), numba.get_num_threads()))
        averages = self.averages
        if averages is not None:
            groups = np.array_split(np.asarray(windows), threads)

            def work(g: Any) -> list[np.ndarray]:
                return list(averages(close, g))
        else:
            groups = [[w] for w in windows]

            def work(g: Any) -> list[np.ndarray]:
                return [_writeable(self.average(close, int(g[0])))]
        if threads == 1:
            rows = [r for g in groups for r in work(g)]
        else:
            with ThreadPoolExecutor(max_workers=threads) as ex:
                rows = [r for part in ex.map(work, groups) for r in part]
        return List(rows)


def _writeable(values: np.ndarray) -> np.ndarray:
    return values if values.flags.writeable else values.copy()


FUSED_KERNELS: dict[str, FusedKernel] = {
    # sma(x, w) is defined from row w - 1
    "sma_cross": FusedKernel(
        average=lambda close, w: indicators.sma(close, w),
        valid_from=lambda fast, slow: np.maximum(fast, slow) - 1,
        averages=indicators.sma_many,
    ),
    # ema_cross masks both EMAs to min_periods=slow: defined from row slow - 1
    "ema_cross": FusedKernel(
        average=lambda close, w: indicators.ema(close, w, min_periods=1),
        valid_from=lambda fast, slow: slow - 1,
    ),
}


def run_fused(
    name: str,
    bars: np.ndarray,
    combos: Sequence[dict[str, Any]],
    segments: np.ndarray,
    *,
    shift: int,
    reverse: bool,
    opts: np.ndarray,
    init_cash: float,
    trades: tuple,
    slot: np.ndarray | None = None,
) -> np.ndarray:
    """Accumulators for ``combos`` of the fused strategy ``name`` (see :func:`ma_cross_nb`).

    ``slot``: each bar's position on the timeframe's grid (default: no gaps).
    """
    kernel = FUSED_KERNELS[name]
    p_fast, p_slow = kernel.params
    fast = np.array([c[p_fast] for c in combos], dtype=np.int64)
    slow = np.array([c[p_slow] for c in combos], dtype=np.int64)
    windows, inverse = np.unique(np.concatenate([fast, slow]), return_inverse=True)
    table = kernel.table(np.ascontiguousarray(bars[3]), windows)
    if slot is None:
        slot = np.arange(bars.shape[1], dtype=np.int64)
    return ma_cross_nb(
        bars, np.ascontiguousarray(slot, dtype=np.int64), table,
        inverse[: len(combos)].astype(np.int64), inverse[len(combos):].astype(np.int64),
        kernel.valid_from(fast, slow).astype(np.int64), segments, shift, reverse,
        opts, init_cash, trades,
    )


def tile_order(combos: Sequence[dict[str, Any]], name: str, tile: int) -> np.ndarray:
    """An order of ``combos`` in which neighbours share windows (``tile`` x ``tile`` tiles).

    Chunks cut from this order need few distinct windows, so each average is
    computed about once per tile instead of once per chunk.
    """
    p_fast, p_slow = FUSED_KERNELS[name].params
    fast = np.array([c[p_fast] for c in combos])
    slow = np.array([c[p_slow] for c in combos])
    f_rank = np.unique(fast, return_inverse=True)[1] // max(tile, 1)
    s_rank = np.unique(slow, return_inverse=True)[1] // max(tile, 1)
    return np.lexsort((slow, fast, s_rank, f_rank))
