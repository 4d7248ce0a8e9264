"""The backtest driver: every bar of one candle series through the execution kernel.

:func:`simulate_nb` runs :func:`~tcp_lab.execution.kernel.bar_nb` (or, with
market trades, :func:`~tcp_lab.execution.on_trades.trades_bar_nb`) over all bars
and writes what a result needs: equity and position at each close, the
fills (:data:`ORDER_FIELDS`) and the round trips (:data:`TRIP_FIELDS`).
Arrays in, arrays out; pandas lives in :mod:`tcp_lab.backtest.engine`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tcp_lab.execution.account import (
    CASH,
    F_AMBIGUOUS,
    F_CLOSED,
    F_ENTRY_FEES,
    F_ENTRY_PRICE,
    F_EXIT_FEES,
    F_FEES,
    F_OPENED,
    F_PNL,
    F_PRICE,
    F_REASON,
    F_RET,
    F_SIDE,
    F_SIZE,
    N_FILL,
    N_STATE,
    POSITION,
    T_FEES,
    T_GROSS,
    T_LONG,
    T_SIZE,
    open_account_nb,
)
from tcp_lab.execution.kernel import (
    O_TRAIL,
    bar_nb,
    level_ranges_nb,
    levels_on_nb,
    quiet_bar_nb,
)
from tcp_lab.execution.on_trades import trades_bar_nb

__all__ = ["ORDER_FIELDS", "TRIP_FIELDS", "simulate_nb", "run_bars_nb", "open_trip_nb"]

#: One fill of a backtest, in this order.
ORDER_FIELDS = ("idx", "side", "size", "price", "fees", "reason")
#: One round trip (entry with its exit) of a backtest, in this order.
TRIP_FIELDS = ("entry_idx", "exit_idx", "entry_price", "exit_price", "size", "entry_fees",
               "exit_fees", "pnl", "return", "is_long", "closed", "reason", "ambiguous")


@njit(cache=True)
def _record_nb(i, fill, orders, n_orders, trips, n_trips, entry_idx):
    """Append ``fill`` to the records; returns (n_orders, n_trips, entry_idx)."""
    o = orders[n_orders]
    o[0], o[1], o[2], o[3], o[4], o[5] = (i, fill[F_SIDE], fill[F_SIZE], fill[F_PRICE],
                                          fill[F_FEES], fill[F_REASON])
    n_orders += 1
    if fill[F_CLOSED] > 0:
        t = trips[n_trips]
        t[0], t[1], t[2], t[3], t[4] = (entry_idx, i, fill[F_ENTRY_PRICE], fill[F_PRICE],
                                        fill[F_CLOSED])
        t[5], t[6], t[7], t[8] = fill[F_ENTRY_FEES], fill[F_EXIT_FEES], fill[F_PNL], fill[F_RET]
        t[9] = 1.0 if fill[F_SIDE] < 0 else 0.0  # a sell closes a long
        t[10], t[11], t[12] = 1.0, fill[F_REASON], fill[F_AMBIGUOUS]
        n_trips += 1
    if fill[F_OPENED] > 0:
        entry_idx = i
    return n_orders, n_trips, entry_idx


@njit(cache=True)
def simulate_nb(open_, high, low, close, le, lx, se, sx, stop_price, target_price, at_open,
                opts, init_cash, trades):
    """Backtest one account over all bars.

    Parameters
    ----------
    open_, high, low, close
        float64 ``(n,)`` candles.
    le, lx, se, sx
        bool ``(n,)`` signals to act on in each bar (already shifted one bar
        with ``at_open``).
    stop_price, target_price
        float64 ``(n,)`` levels for an entry in that bar (NaN: from the
        options), or ``(0,)`` for none.
    at_open
        Signals fill at the bar's open (``price="next_open"``) instead of its close.
    opts
        float64 :data:`~tcp_lab.execution.kernel.OPTION_FIELDS`.
    init_cash
        Starting cash.
    trades
        Market trades to resolve levels on: ``(price, ts, amount, lo, hi, low,
        high)`` (:mod:`tcp_lab.execution.on_trades`); bar ``i``'s trades are
        ``price[lo[i]:hi[i]]``. Empty ``lo`` for the OHLC rule.

    Returns
    -------
    equity, position : ndarray
        At each close.
    orders, trips : ndarray
        ``(n_orders, len(ORDER_FIELDS))`` and ``(n_trips, len(TRIP_FIELDS))``;
        an open round trip at the end is the last trip (``closed`` 0, marked
        at the last close).
    state : ndarray
        The account after the last bar (:data:`~tcp_lab.execution.account.STATE_FIELDS`).
    """
    n = close.shape[0]
    state = np.empty(N_STATE)
    open_account_nb(state, init_cash)
    equity = np.empty(n)
    position = np.empty(n)
    orders, trips, entry_idx = run_bars_nb(
        state, -1, 0, open_, high, low, close, le, lx, se, sx, stop_price, target_price,
        at_open, opts, trades, equity, position)
    last = open_trip_nb(state, entry_idx, n - 1, close[n - 1])
    if last.shape[0]:
        trips = np.concatenate((trips, last))
    return equity, position, orders, trips, state


@njit(cache=True)
def run_bars_nb(state, entry_idx, offset, open_, high, low, close, le, lx, se, sx, stop_price,
                target_price, at_open, opts, trades, equity, position):
    """Run ``state`` over some bars (a whole series, or one chunk of it); resumable.

    The bar arrays (and ``equity``/``position``, written at each close) cover
    the chunk only; ``offset`` is the chunk's first bar in the series (records
    carry series indices) and ``entry_idx`` the entry bar of the round trip
    open at its start (-1: none). Returns ``(orders, closed trips,
    entry_idx)`` for the chunk; the next chunk continues from ``state`` and
    that ``entry_idx``.
    """
    n = close.shape[0]
    fills = np.zeros((2, N_FILL))
    n_signals = 0
    for i in range(n):
        if le[i] or lx[i] or se[i] or sx[i]:
            n_signals += 1
    # each signal bar fills at most once, and each entry exits at most once on a level
    orders = np.empty((2 * n_signals + 1, 6))
    trips = np.empty((2 * n_signals + 2, 13))
    n_orders = n_trips = 0
    has_levels = stop_price.shape[0] > 0
    use_levels = levels_on_nb(opts, has_levels)
    on_trades = trades[3].shape[0] > 0
    lows, highs = level_ranges_nb(low, high, trades)
    trail = opts[O_TRAIL]
    for i in range(n):
        signal = le[i] or lx[i] or se[i] or sx[i]
        # a bar without a signal changes nothing unless it can reach a live level; the sweep
        # kernels dispatch the same way in their own loops (a shared helper taking the bar
        # arrays cost 10-50 % here, measured: calls that pass arrays are dear in this loop)
        if signal or (use_levels and state[POSITION] != 0.0
                      and not quiet_bar_nb(state, lows[i], highs[i], trail)):
            sp = stop_price[i] if has_levels else np.nan
            tp = target_price[i] if has_levels else np.nan
            if on_trades and use_levels:
                k = trades_bar_nb(state, trades, i, close[i], le[i], lx[i], se[i], sx[i], sp,
                                  tp, opts, fills)
            else:
                k = bar_nb(state, open_[i], high[i], low[i], close[i], le[i], lx[i], se[i],
                           sx[i], sp, tp, at_open, use_levels, opts, fills)
            for j in range(k):
                n_orders, n_trips, entry_idx = _record_nb(offset + i, fills[j], orders,
                                                          n_orders, trips, n_trips, entry_idx)
        equity[i] = state[CASH] + state[POSITION] * close[i]
        position[i] = state[POSITION]
    return orders[:n_orders].copy(), trips[:n_trips].copy(), entry_idx


@njit(cache=True)
def open_trip_nb(state, entry_idx, last_idx, last_close):
    """The round trip still open in ``state``, marked at ``last_close`` (as vectorbt does);
    ``(0, 13)`` when flat."""
    out = np.empty((1 if state[T_SIZE] > 0 else 0, 13))
    if state[T_SIZE] > 0:
        t = out[0]
        size, entry = state[T_SIZE], state[T_GROSS] / state[T_SIZE]
        diff = size * (last_close - entry)
        if state[T_LONG] != 1.0:
            diff = -diff
        pnl = diff - state[T_FEES]
        t[0], t[1], t[2], t[3], t[4] = entry_idx, last_idx, entry, last_close, size
        t[5], t[6], t[7], t[8] = state[T_FEES], 0.0, pnl, pnl / (size * entry)
        t[9], t[10], t[11], t[12] = state[T_LONG], 0.0, -1.0, 0.0
    return out
