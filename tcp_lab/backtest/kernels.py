"""Numba sweep kernels: signal columns in, compact per-combination metrics out.

One combination is one column of signals; :func:`simulate_signals_nb` runs
every combination (in parallel with ``prange``) through the execution
engine's bar step (:func:`tcp_lab.execution.kernel.bar_nb`, the kernel of
:func:`~tcp_lab.backtest.engine.run_backtest` and of the paper bot), each
with its own row of trading options (stops and targets are sweepable).
Instead of equity curves they keep, per combination and per *segment* (a
range of bars traded as an independent account), a handful of running sums
(:data:`ACC_FIELDS`) from which
:func:`tcp_lab.backtest.sweep_metrics.finalize_metrics` derives the metrics
of :mod:`tcp_lab.backtest.metrics`.

Returns live on the timeframe's full grid, as in :mod:`tcp_lab.backtest.metrics`:
``slot[i]`` is bar ``i``'s position on the grid, a segment has
``slot[stop - 1] - slot[start] + 1`` slots (``n_r``; the missing ones add
zero returns, so the sums stay as they are), and the time in the market is
counted in slots from the bar where a position opens to the bar where it is
flat again, only where the engine runs (the marks of a held bar cost nothing
more).

Everything here takes and returns numpy arrays (``*_nb``); pandas stays in
:mod:`tcp_lab.backtest.param_sweep`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tcp_lab.execution.account import (
    CASH,
    GROSS_LOSS,
    GROSS_PROFIT,
    N_FILL,
    N_STATE,
    N_TRADES,
    N_WINS,
    POSITION,
    SUM_RET,
    open_account_nb,
)
from tcp_lab.execution.kernel import O_TRAIL, bar_nb, level_ranges_nb, levels_on_nb, quiet_bar_nb
from tcp_lab.execution.on_trades import trades_bar_nb

__all__ = ["ACC_FIELDS", "N_ACC", "simulate_signals_nb", "simulate_column_nb", "mark_nb",
           "hold_nb", "start_marks_nb", "write_acc_nb", "step_nb"]

#: What the kernels accumulate per (combination, segment), in this order.
ACC_FIELDS = (
    "equity_start",  # init cash (equity[0])
    "equity_end",  # marked-to-market equity at the last close
    "sum_r",  # sum of per-bar returns
    "sum_r2",  # sum of squared per-bar returns
    "sum_down2",  # sum of min(r, 0) ** 2
    "n_r",  # number of per-slot returns (slots of the grid in the segment, missing or not)
    "max_dd",  # max over bars of 1 - equity / running peak
    "bars_in_market",  # slots whose close finds a position open (carried through gaps)
    "n_trades",  # closed trades
    "n_wins",  # closed trades with pnl > 0
    "gross_profit",  # sum of positive trade pnl
    "gross_loss",  # -sum of negative trade pnl
    "sum_trade_ret",  # sum of closed trades' returns
)
N_ACC = len(ACC_FIELDS)


@njit(cache=True, parallel=True)
def simulate_signals_nb(
    bars: np.ndarray,
    slot: np.ndarray,
    long_entries: np.ndarray,
    long_exits: np.ndarray,
    short_entries: np.ndarray,
    short_exits: np.ndarray,
    stop_price: np.ndarray,
    target_price: np.ndarray,
    segments: np.ndarray,
    at_open: bool,
    opts: np.ndarray,
    init_cash: float,
    trades: tuple,
) -> np.ndarray:
    """Simulate every column of signals; return accumulators ``(n_combos, n_segments, N_ACC)``.

    Parameters
    ----------
    bars
        float64 ``(4, n_bars)``: open, high, low, close.
    slot
        int64 ``(n_bars,)``: each bar's position on the timeframe's grid
        (:func:`~tcp_lab.backtest.metrics.grid_slots`; ``arange`` without gaps).
    long_entries, long_exits, short_entries, short_exits
        bool ``(n_bars, n_combos)``, Fortran order (one contiguous column per
        combination), the signals to act on in each bar (shifted one bar for
        ``at_open``). A ``(0, 0)`` array means "never".
    stop_price, target_price
        float64 ``(n_bars, n_combos)`` (Fortran order) levels the strategy
        sets for an entry in that bar (NaN: from the options), or ``(0, 0)``.
    segments
        int64 ``(n_segments, 2)``: ``[start, stop)`` bar ranges, each an
        independent account that starts flat with ``init_cash``.
    at_open
        Signals fill at the bar's open (``price="next_open"``).
    opts
        float64 ``(n_combos, N_OPT)``: each combination's trading options
        (:meth:`~tcp_lab.execution.TradingOptions.kernel_options`).
    init_cash
        Starting cash of every account.
    trades
        ``(price, ts, amount, lo, hi, low, high)`` of the market trades indexed by bar
        (:class:`~tcp_lab.backtest.trade_source.TradeArrays`) to resolve stops
        and targets on, or five empty arrays for the OHLC rule.

    Returns
    -------
    ndarray
        float64 ``(n_combos, n_segments, N_ACC)``, fields :data:`ACC_FIELDS`.
    """
    n_combos = long_entries.shape[1]
    out = np.empty((n_combos, segments.shape[0], N_ACC), dtype=np.float64)
    never = np.zeros(bars.shape[1], dtype=np.bool_)
    for col in prange(n_combos):
        lx = long_exits[:, col] if long_exits.shape[1] > 0 else never
        se = short_entries[:, col] if short_entries.shape[1] > 0 else never
        sx = short_exits[:, col] if short_exits.shape[1] > 0 else never
        levels = stop_price.shape[1] > 0
        sp = stop_price[:, col] if levels else np.empty(0)
        tp = target_price[:, col] if levels else np.empty(0)
        for s in range(segments.shape[0]):
            simulate_column_nb(bars, slot, long_entries[:, col], lx, se, sx, sp, tp, segments[s, 0],
                               segments[s, 1], at_open, opts[col], init_cash, trades,
                               out[col, s])
    return out


@njit(cache=True)
def simulate_column_nb(bars, slot, le, lx, se, sx, sp, tp, start, stop, at_open, opts,
                       init_cash, trades, out):
    """One account over bars ``[start, stop)``; writes its :data:`ACC_FIELDS` into ``out``.

    ``le``/``lx``/``se``/``sx`` are bool per bar (all of the bars' length);
    ``sp``/``tp`` the strategy's levels per bar, or empty.
    Only bars with a signal or an open position cost anything: a flat bar's
    return is exactly 0.
    """
    state = np.empty(N_STATE)
    open_account_nb(state, init_cash)
    fills = np.empty((2, N_FILL))
    levels = sp.shape[0] > 0
    use_levels = levels_on_nb(opts, levels)
    marks = start_marks_nb(init_cash)
    cash, pos = state[CASH], state[POSITION]  # in registers between the engine's steps
    lows, highs = level_ranges_nb(bars[2], bars[1], trades)
    trail = opts[O_TRAIL]
    for i in range(start, stop):
        signal = le[i] or lx[i] or se[i] or sx[i]
        was_in = pos != 0.0
        # the engine only on bars where something can happen (a call passing arrays costs
        # more than a bar); the marks on every bar that holds or changes a position
        if signal or (use_levels and was_in and not quiet_bar_nb(state, lows[i], highs[i],
                                                                  trail)):
            step_nb(bars, i, le[i], lx[i], se[i], sx[i], sp[i] if levels else np.nan,
                    tp[i] if levels else np.nan, at_open, use_levels, opts, state, fills,
                    trades)
            cash, pos = state[CASH], state[POSITION]
            if was_in != (pos != 0.0):
                marks = hold_nb(marks, was_in, slot[i])
        if was_in or signal or pos != 0.0:
            marks = mark_nb(marks, cash + pos * bars[3, i])
    write_acc_nb(out, init_cash, slot[start], slot[stop - 1], marks, state)


@njit(cache=True, inline="always")
def step_nb(bars, i, le, lx, se, sx, sp, tp, at_open, use_levels, opts, state, fills, trades):
    """The engine's bar step for one sweep account (on the bar's market trades when
    ``trades`` has them)."""
    if use_levels and trades[3].shape[0] > 0:
        trades_bar_nb(state, trades, i, bars[3, i], le, lx, se, sx, sp, tp, opts, fills)
    else:
        bar_nb(state, bars[0, i], bars[1, i], bars[2, i], bars[3, i], le, lx, se, sx, sp, tp,
               at_open, use_levels, opts, fills)


@njit(cache=True, inline="always")
def start_marks_nb(init_cash):
    """Mark-to-market sums of a fresh account (see :func:`mark_nb`)."""
    return (init_cash, init_cash, init_cash, 0.0, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def mark_nb(marks, equity):
    """Mark one bar to market: update the return and drawdown sums.

    ``marks`` is ``(prev_equity, peak, trough, max_dd, sum_r, sum_r2,
    sum_down2, in_market)``. Flat bars without a fill may be skipped: their
    return is 0. The drawdown ``1 - equity / peak`` is largest at the lowest
    equity under each peak (division is monotonic), so it is computed once
    per peak, not once per bar. ``in_market`` moves only where a position
    opens or closes (:func:`hold_nb`).
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
            in_market)


@njit(cache=True, inline="always")
def hold_nb(marks, closed, slot):
    """A position opened (``closed`` False) or closed at the bar on grid slot ``slot``.

    The time in the market is the sum over holding runs of ``end - start``
    slots: ``-start`` when a run opens, ``+end`` when it closes (exact in
    float64 for any grid), ``+last + 1`` for a run still open at the
    segment's end (:func:`write_acc_nb`).
    """
    a, b, c, d, e, f, g, in_market = marks
    return (a, b, c, d, e, f, g, in_market + slot if closed else in_market - slot)


@njit(cache=True, inline="always")
def _drawdown(max_dd, peak, trough):
    if peak > 0:
        return max(max_dd, 1.0 - trough / peak)
    return max_dd


@njit(cache=True)
def write_acc_nb(out, init_cash, first_slot, last_slot, marks, state):
    """Store one segment's sums (marks, and the account's trade sums) in ``out``.

    ``first_slot``/``last_slot``: the grid slots of the segment's first and
    last bar; a position still open holds to the end of the last slot.
    """
    prev_equity, peak, trough, max_dd, sum_r, sum_r2, sum_down2, in_market = marks
    if state[POSITION] != 0.0:
        in_market += last_slot + 1
    out[0] = init_cash
    out[1] = prev_equity
    out[2] = sum_r
    out[3] = sum_r2
    out[4] = sum_down2
    out[5] = last_slot - first_slot + 1
    out[6] = _drawdown(max_dd, peak, trough)
    out[7] = in_market
    out[8] = state[N_TRADES]
    out[9] = state[N_WINS]
    out[10] = state[GROSS_PROFIT]
    out[11] = state[GROSS_LOSS]
    out[12] = state[SUM_RET]
