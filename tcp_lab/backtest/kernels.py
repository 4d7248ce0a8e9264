"""Numba sweep kernels: signal columns in, compact per-combination metrics out.

One combination is one column of signals; :func:`simulate_signals_nb` runs
every combination (in parallel with ``prange``) through the fill model of
:func:`tcp_lab.backtest.engine.run_backtest` (:mod:`tcp_lab.backtest.fill_model`,
vectorbt's ``Portfolio.from_signals`` replayed operation for operation, so
totals agree to rounding). Instead of equity curves
they keep, per combination and per *segment* (a range of bars traded as an
independent account), a handful of running sums (:data:`ACC_FIELDS`) from
which :func:`tcp_lab.backtest.sweep_metrics.finalize_metrics` derives the
metrics of :mod:`tcp_lab.backtest.metrics`.

Everything here takes and returns numpy arrays (``*_nb``); pandas stays in
:mod:`tcp_lab.backtest.sweep`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tcp_lab.backtest.fill_model import (
    NO_STATS,
    NO_TRADE,
    SIZE_AMOUNT,
    SIZE_PERCENT,
    SIZE_VALUE,
    fill_nb,
)

__all__ = [
    "ACC_FIELDS",
    "SIZE_AMOUNT",
    "SIZE_VALUE",
    "SIZE_PERCENT",
    "simulate_signals_nb",
    "simulate_column_nb",
]

#: What the kernels accumulate per (combination, segment), in this order.
ACC_FIELDS = (
    "equity_start",  # init cash (equity[0])
    "equity_end",  # marked-to-market equity at the last close
    "sum_r",  # sum of per-bar returns
    "sum_r2",  # sum of squared per-bar returns
    "sum_down2",  # sum of min(r, 0) ** 2
    "n_r",  # number of per-bar returns (bars in the segment)
    "max_dd",  # max over bars of 1 - equity / running peak
    "bars_in_market",  # bars whose close finds a position open
    "n_trades",  # closed trades
    "n_wins",  # closed trades with pnl > 0
    "gross_profit",  # sum of positive trade pnl
    "gross_loss",  # -sum of negative trade pnl
    "sum_trade_ret",  # sum of closed trades' returns
)
N_ACC = len(ACC_FIELDS)


@njit(cache=True, parallel=True)
def simulate_signals_nb(
    close: np.ndarray,
    price: np.ndarray,
    long_entries: np.ndarray,
    long_exits: np.ndarray,
    short_entries: np.ndarray,
    short_exits: np.ndarray,
    segments: np.ndarray,
    fees: float,
    slippage: float,
    init_cash: float,
    size: float,
    size_type: int,
) -> np.ndarray:
    """Simulate every column of signals; return accumulators ``(n_combos, n_segments, N_ACC)``.

    Parameters
    ----------
    close
        Close prices, ``(n_bars,)``: the mark-to-market price.
    price
        Fill prices, ``(n_bars,)``: the close, or the open for next-open fills
        (with the signals already shifted one bar). Must be finite.
    long_entries, long_exits, short_entries, short_exits
        bool ``(n_bars, n_combos)``, Fortran order (one contiguous column per
        combination). A ``(0, 0)`` array means "never" (no long exits when
        reversing, no short signals in long-only runs).
    segments
        int64 ``(n_segments, 2)``: ``[start, stop)`` bar ranges, each an
        independent account that starts flat with ``init_cash``.
    fees, slippage, init_cash, size, size_type
        As in :func:`~tcp_lab.backtest.engine.run_backtest`; all-in is
        ``size=inf`` with :data:`SIZE_AMOUNT` (vectorbt's convention).

    Returns
    -------
    ndarray
        float64 ``(n_combos, n_segments, N_ACC)``, fields :data:`ACC_FIELDS`.
    """
    n_combos = long_entries.shape[1]
    out = np.empty((n_combos, segments.shape[0], N_ACC), dtype=np.float64)
    never = np.zeros(close.shape[0], dtype=np.bool_)
    for col in prange(n_combos):
        lx = long_exits[:, col] if long_exits.shape[1] > 0 else never
        se = short_entries[:, col] if short_entries.shape[1] > 0 else never
        sx = short_exits[:, col] if short_exits.shape[1] > 0 else never
        for s in range(segments.shape[0]):
            simulate_column_nb(
                close, price, long_entries[:, col], lx, se, sx, segments[s, 0], segments[s, 1],
                fees, slippage, init_cash, size, size_type, out[col, s],
            )
    return out


@njit(cache=True)
def simulate_column_nb(
    close, price, le, lx, se, sx, start, stop, fees, slippage, init_cash, size, size_type, out,
):
    """One account over bars ``[start, stop)``; writes its :data:`ACC_FIELDS` into ``out``.

    ``le``/``lx``/``se``/``sx`` are bool per bar (all of ``close``'s length).
    Only bars with a signal or an open position cost anything: a flat bar's
    return is exactly 0.
    """
    cash = init_cash
    position = 0.0
    debt = 0.0
    free_cash = init_cash
    trade = NO_TRADE
    stats = NO_STATS
    marks = start_marks_nb(init_cash)
    for i in range(start, stop):
        signal = le[i] | lx[i] | se[i] | sx[i]
        if signal:
            cash, position, debt, free_cash, trade, stats = fill_nb(
                cash, position, debt, free_cash, trade, stats, le[i], lx[i], se[i], sx[i],
                price[i], fees, slippage, size, size_type,
            )
        if position != 0.0 or signal:
            marks = mark_nb(marks, cash + position * close[i], position)
    write_acc_nb(out, init_cash, stop - start, marks, stats)


@njit(cache=True, inline="always")
def start_marks_nb(init_cash):
    """Mark-to-market sums of a fresh account (see :func:`mark_nb`)."""
    return (init_cash, init_cash, init_cash, 0.0, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def mark_nb(marks, equity, position):
    """Mark one bar to market: update the return, drawdown and exposure sums.

    ``marks`` is ``(prev_equity, peak, trough, max_dd, sum_r, sum_r2,
    sum_down2, in_market)``. Flat bars without a fill may be skipped: their
    return is 0. The drawdown ``1 - equity / peak`` is largest at the lowest
    equity under each peak (division is monotonic), so it is computed once
    per peak, not once per bar.
    """
    prev_equity, peak, trough, max_dd, sum_r, sum_r2, sum_down2, in_market = marks
    r = equity / prev_equity - 1.0 if prev_equity != 0 else 0.0
    down = min(r, 0.0)
    if equity > peak:
        max_dd = _drawdown(max_dd, peak, trough)
        peak = equity
        trough = equity
    else:
        trough = min(trough, equity)
    return (equity, peak, trough, max_dd, sum_r + r, sum_r2 + r * r, sum_down2 + down * down,
            in_market + (position != 0.0))


@njit(cache=True, inline="always")
def _drawdown(max_dd, peak, trough):
    if peak > 0:
        return max(max_dd, 1.0 - trough / peak)
    return max_dd


@njit(cache=True)
def write_acc_nb(out, init_cash, n_bars, marks, stats):
    """Store one segment's sums in ``out`` in :data:`ACC_FIELDS` order."""
    prev_equity, peak, trough, max_dd, sum_r, sum_r2, sum_down2, in_market = marks
    out[0] = init_cash
    out[1] = prev_equity
    out[2] = sum_r
    out[3] = sum_r2
    out[4] = sum_down2
    out[5] = n_bars
    out[6] = _drawdown(max_dd, peak, trough)
    out[7] = in_market
    for k in range(5):
        out[8 + k] = stats[k]
