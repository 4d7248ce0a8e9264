"""Stops and targets resolved on market trades (numba): the trades rule, latency, volume share.

After an entry at the close of the candle stamped ``T`` the trades that count
are those after ``T``. Long side (a short is the mirror):

* the stop triggers at the first trade at or below its level; the target at
  the first trade at or above its level; each trade is checked against the
  levels first, then raises the peak of a trailing stop;
* a triggered stop fills at trade prices (below the stop when the market
  gaps), from the first trade at or after trigger time + ``latency_ms``; a
  target is a resting limit order: it fills at its price, on trades at or
  above it, with no latency;
* with ``max_volume_share`` a fill takes at most that share of each trade's
  amount from then on; the rest fills on later trades (later candles too);
* what filled during a candle is booked at that candle's close as one fill at
  its volume-weighted price (slippage on stops, none on targets), before the
  candle's own signals: an exit signal then closes what is left, and an exit
  under way ends when the position is closed or reversed.

A bar is only scanned when its trades can reach a level (or an exit is under
way): the per-candle index of the trades (:mod:`tcp_lab.execution.trades`)
makes a backtest over 100M trades cost little more than its candles. Drivers
pass the trades as a tuple ``(price, ts, amount, lo, hi, low, high)``
(:class:`~tcp_lab.backtest.trade_source.TradeArrays`); ``ts`` and ``amount``
may be empty when neither latency nor a volume share is set.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tcp_lab.execution.account import (
    BAR_EXIT_SIZE,
    BAR_EXIT_VALUE,
    EXIT_LEFT,
    EXIT_LIMIT,
    EXIT_READY,
    EXIT_REASON,
    EXTREME,
    POSITION,
    R_TARGET,
    STOP,
    T_LONG,
    TARGET,
)
from tcp_lab.execution.kernel import (
    O_LATENCY,
    O_SHARE,
    O_SLIPPAGE,
    O_TRAIL,
    exit_nb,
    may_reach_nb,
    signal_nb,
    stop_in_force_nb,
)

__all__ = ["trades_bar_nb", "scan_trades_nb", "close_trades_bar_nb"]

_DONE = 1e-12  # an exit with less than this fraction of the position left is complete


@njit(cache=True)
def _find_trigger_nb(state, price, ts, lo, hi, opts):
    """The first of trades ``lo..hi`` that triggers an exit (``hi``: none), each checked
    against the levels first, then moving the peak; a trigger starts the exit in ``state``.

    The levels and the peak stay in registers over the scan (a bar with a level in
    reach scans its trades one by one); the peak is stored when the scan ends.
    """
    long = state[T_LONG] == 1.0
    stop, target, extreme, trail = state[STOP], state[TARGET], state[EXTREME], opts[O_TRAIL]
    k = lo
    while k < hi:
        p = price[k]
        level, reason = stop_in_force_nb(stop, extreme, long, trail)
        if (p <= level) if long else (p >= level):
            state[EXIT_READY] = (ts[k] if ts.shape[0] > 0 else 0.0) + opts[O_LATENCY]
            state[EXIT_REASON] = reason
            state[EXIT_LIMIT] = np.nan
            break
        if (p >= target) if long else (p <= target):
            state[EXIT_READY] = ts[k] if ts.shape[0] > 0 else 0.0
            state[EXIT_REASON] = R_TARGET
            state[EXIT_LIMIT] = target
            break
        extreme = max(extreme, p) if long else min(extreme, p)
        k += 1
    state[EXTREME] = extreme
    if k < hi:
        state[EXIT_LEFT] = abs(state[POSITION])
    return k


@njit(cache=True)
def _fill_exit_nb(state, price, ts, amount, lo, hi, k, share):
    """Fill the exit under way on trades ``k..hi`` (into the bar's exit sums)."""
    long = state[T_LONG] == 1.0
    limit = state[EXIT_LIMIT]
    timed = ts.shape[0] > 0
    while k < hi:
        p = price[k]
        if timed and ts[k] < state[EXIT_READY]:
            k += 1
            continue
        if limit == limit:  # a target: a limit order, filled at its price
            if (p < limit) if long else (p > limit):
                k += 1
                continue
            p = limit
        take = state[EXIT_LEFT] if share <= 0 else min(state[EXIT_LEFT], share * amount[k])
        state[BAR_EXIT_SIZE] += take
        state[BAR_EXIT_VALUE] += take * p
        state[EXIT_LEFT] -= take
        k += 1
        if state[EXIT_LEFT] <= _DONE * abs(state[POSITION]):
            state[EXIT_LEFT] = 0.0
            return


@njit(cache=True)
def scan_trades_nb(state, price, ts, amount, lo, hi, low, high, opts):
    """Run the account over the market trades ``lo..hi`` of one candle (or of part of it).

    ``low``/``high`` bound those trades' prices (NaN: unknown, the trades are
    scanned). Fills accumulate in the account until :func:`close_trades_bar_nb`.
    """
    if state[POSITION] == 0.0 or hi <= lo:
        return
    k = lo
    if state[EXIT_READY] != state[EXIT_READY]:  # no exit under way: look for a trigger
        if low == low and not may_reach_nb(state[STOP], state[TARGET], state[EXTREME],
                                           state[T_LONG] == 1.0, low, high, opts[O_TRAIL]):
            if state[T_LONG] == 1.0:
                state[EXTREME] = max(state[EXTREME], high)
            else:
                state[EXTREME] = min(state[EXTREME], low)
            return
        k = _find_trigger_nb(state, price, ts, lo, hi, opts)
        if k == hi:
            return
    if state[EXIT_LEFT] > 0:
        _fill_exit_nb(state, price, ts, amount, lo, hi, k, opts[O_SHARE])


@njit(cache=True)
def close_trades_bar_nb(state, c, le, lx, se, sx, stop_price, target_price, opts, fills):
    """At a candle's close: book what the exit filled during it, then act on its signals.

    Returns how many fills it wrote into ``fills`` (0–2), like
    :func:`~tcp_lab.execution.kernel.bar_nb`.
    """
    n = 0
    size = state[BAR_EXIT_SIZE]
    if size > 0:
        avg = state[BAR_EXIT_VALUE] / size
        reason = state[EXIT_REASON]
        slip = 0.0 if reason == R_TARGET else opts[O_SLIPPAGE]
        state[BAR_EXIT_SIZE] = 0.0
        state[BAR_EXIT_VALUE] = 0.0
        whole = state[EXIT_LEFT] == 0.0
        pos = state[POSITION]
        if whole:
            size = abs(pos)  # the rounding of the parts must not leave dust
        if exit_nb(state, avg, slip, int(reason), opts, fills[n], -size if pos > 0 else size):
            n += 1
    if le or lx or se or sx:
        if signal_nb(state, le, lx, se, sx, c, stop_price, target_price, opts, fills[n]):
            n += 1
    return n


@njit(cache=True)
def trades_bar_nb(state, trades, i, c, le, lx, se, sx, stop_price, target_price, opts, fills):
    """One candle resolved on its market trades: scan them, then close the bar.

    ``trades`` is ``(price, ts, amount, lo, hi, low, high)``; candle ``i``'s
    trades are ``price[lo[i]:hi[i]]``. Returns how many fills it wrote (0–2).
    """
    price, ts, amount, lo, hi, low, high = trades
    scan_trades_nb(state, price, ts, amount, lo[i], hi[i], low[i], high[i], opts)
    return close_trades_bar_nb(state, c, le, lx, se, sx, stop_price, target_price, opts, fills)
