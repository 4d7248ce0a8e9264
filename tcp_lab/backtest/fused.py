"""Fused sweep kernels for moving-average crosses: averages, crosses and fills in one pass.

For ``sma_cross`` and ``ema_cross`` a sweep need not materialise any signal
array: each distinct window's average is computed once per chunk, and one
pass per combination detects the crosses and runs them through the fill model
of :mod:`tcp_lab.backtest.kernels`, in parallel over combinations.

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

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from tcp_lab.backtest.fill_model import NO_STATS, NO_TRADE, fill_nb
from tcp_lab.backtest.kernels import N_ACC, mark_nb, start_marks_nb, write_acc_nb
from tcp_lab.strategies import indicators

__all__ = ["FusedKernel", "FUSED_KERNELS", "ma_cross_nb", "run_fused"]


@njit(cache=True, parallel=True)
def ma_cross_nb(
    close: np.ndarray,
    price: np.ndarray,
    table: np.ndarray,
    fast_row: np.ndarray,
    slow_row: np.ndarray,
    valid_from: np.ndarray,
    segments: np.ndarray,
    shift: int,
    reverse: bool,
    fees: float,
    slippage: float,
    init_cash: float,
    size: float,
    size_type: int,
) -> np.ndarray:
    """Backtest MA crosses for every combination; accumulators ``(n_combos, n_segments, N_ACC)``.

    Combination ``k`` enters when ``table[fast_row[k]]`` crosses above
    ``table[slow_row[k]]`` (``a[t] > b[t]`` and ``a[t-1] <= b[t-1]``) and
    exits when it crosses below; rows before ``valid_from[k]`` are undefined
    (NaN in the strategy) and never cross. ``shift=1`` acts on the previous
    bar's signal (next-open fills, ``price`` = opens). ``reverse`` maps exits
    to short entries (``direction="longshort"``).
    """
    n_combos = fast_row.shape[0]
    out = np.empty((n_combos, segments.shape[0], N_ACC), dtype=np.float64)
    for k in prange(n_combos):
        _ma_cross_one_nb(
            close, price, table[fast_row[k]], table[slow_row[k]], valid_from[k] + 1, segments,
            shift, reverse, fees, slippage, init_cash, size, size_type, out[k],
        )
    return out


@njit(cache=True)
def _ma_cross_one_nb(
    close, price, fast, slow, first, segments, shift, reverse,
    fees, slippage, init_cash, size, size_type, out,
):
    """One combination; ``first`` is the first row where a cross can happen."""
    for s in range(segments.shape[0]):
        start, stop = segments[s, 0], segments[s, 1]
        cash = init_cash
        position = 0.0
        debt = 0.0
        free_cash = init_cash
        trade = NO_TRADE
        stats = NO_STATS
        marks = start_marks_nb(init_cash)
        # before row `first` nothing crosses, so the account stays flat and unmarked
        for i in range(max(start, first + shift), stop):
            t = i - shift
            # rows >= first - 1 are defined (no NaN): "a <= b" is "not a > b"
            up = (fast[t] > slow[t]) & ~(fast[t - 1] > slow[t - 1])
            down = (fast[t] < slow[t]) & ~(fast[t - 1] < slow[t - 1])
            signal = up | down
            if signal:
                cash, position, debt, free_cash, trade, stats = fill_nb(
                    cash, position, debt, free_cash, trade, stats,
                    up, down and not reverse, down and reverse, False,
                    price[i], fees, slippage, size, size_type,
                )
            if position != 0.0 or signal:
                marks = mark_nb(marks, cash + position * close[i], position)
        write_acc_nb(out[s], init_cash, stop - start, marks, stats)


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
    """

    average: Callable[[np.ndarray, int], np.ndarray]
    valid_from: Callable[[np.ndarray, np.ndarray], np.ndarray]
    params: tuple[str, str] = ("fast", "slow")

    def table(self, close: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Averages for each window, shape ``(len(windows), len(close))``, rows in parallel."""
        out = np.empty((len(windows), len(close)), dtype=np.float64)

        def row(k: int) -> None:
            out[k] = self.average(close, int(windows[k]))

        with ThreadPoolExecutor(max_workers=min(len(windows), os.cpu_count() or 1) or 1) as ex:
            list(ex.map(row, range(len(windows))))
        return out


FUSED_KERNELS: dict[str, FusedKernel] = {
    # sma(x, w) is defined from row w - 1
    "sma_cross": FusedKernel(
        average=lambda close, w: indicators.sma(close, w),
        valid_from=lambda fast, slow: np.maximum(fast, slow) - 1,
    ),
    # ema_cross masks both EMAs to min_periods=slow: defined from row slow - 1
    "ema_cross": FusedKernel(
        average=lambda close, w: indicators.ema(close, w, min_periods=1),
        valid_from=lambda fast, slow: slow - 1,
    ),
}


def run_fused(
    name: str,
    close: np.ndarray,
    price: np.ndarray,
    combos: Sequence[dict[str, Any]],
    segments: np.ndarray,
    *,
    shift: int,
    reverse: bool,
    fees: float,
    slippage: float,
    init_cash: float,
    size: float,
    size_type: int,
) -> np.ndarray:
    """Accumulators for ``combos`` of the fused strategy ``name`` (see :func:`ma_cross_nb`)."""
    kernel = FUSED_KERNELS[name]
    p_fast, p_slow = kernel.params
    fast = np.array([c[p_fast] for c in combos], dtype=np.int64)
    slow = np.array([c[p_slow] for c in combos], dtype=np.int64)
    windows, inverse = np.unique(np.concatenate([fast, slow]), return_inverse=True)
    table = kernel.table(close, windows)
    return ma_cross_nb(
        close, price, table,
        inverse[: len(combos)].astype(np.int64), inverse[len(combos):].astype(np.int64),
        kernel.valid_from(fast, slow).astype(np.int64), segments, shift, reverse,
        fees, slippage, init_cash, size, size_type,
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
