"""The execution kernel (numba): one bar of signals, stops and targets on one account.

Every driver calls :func:`bar_nb` (or :func:`trades_bar_nb` when the bar's
market trades are known): the backtest over all bars
(:func:`tcp_lab.execution.simulate.simulate_nb`), the sweep once per
combination, the paper bot once per closed candle. The rules, long side
(a short is the mirror):

* A signal's market order fills at the bar's close (or, with ``at_open``,
  the signal of the bar before fills at this bar's open, before anything
  else in the bar); vectorbt's ``from_signals`` rules (see
  :mod:`tcp_lab.execution.account`).
* An entry sets the round trip's levels from its fill price: the stop at
  ``price * (1 - stop_loss)`` or the strategy's ``stop_price`` of the entry
  bar when finite, the target at ``price * (1 + take_profit)`` or the
  strategy's ``target_price``; the peak starts at the fill price. Levels are
  live from the next bar on.
* On candles: a bar that opens at or beyond a level fills it at the open; else
  a low at or below the stop fills the stop at the stop, a high at or above the
  target fills the target at the target, and a bar that reaches both is
  ambiguous: the stop is assumed first and the bar counted. The trailing level
  of a bar is ``peak * (1 - trailing_stop)`` with the peak before the bar;
  the bar's high raises the peak afterwards. With a stop-loss and a trailing
  stop, the higher level rules.
* On trades (:mod:`tcp_lab.execution.on_trades`): the first trade at or
  below the stop fills at that trade's price; the first at or above the
  target fills at the target; each trade is checked against the level first,
  then raises the peak.
* Stops fill with slippage like market orders; a target is a limit order
  (no slippage). A stop or target fill in a bar wins over the bar's exit
  signal; an entry signal of the same bar then enters at the close.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tcp_lab.execution.account import (
    AMBIGUOUS,
    BOTH,
    EXIT_READY,
    EXTREME,
    F_AMBIGUOUS,
    F_OPENED,
    F_PRICE,
    LONG_ONLY,
    N_ENTRIES,
    POSITION,
    R_SIGNAL,
    R_STOP,
    R_TARGET,
    R_TRAIL,
    SHORT_ONLY,
    SIZE_AMOUNT,
    SIZE_PERCENT,
    SIZE_VALUE,
    STOP,
    T_LONG,
    TARGET,
    order_nb,
)

__all__ = ["OPTION_FIELDS", "N_OPT", "bar_nb", "signal_nb", "opening_side_nb", "levels_on_nb",
           "stop_level_nb", "stop_in_force_nb",
           "exit_nb", "may_reach_nb", "quiet_bar_nb", "quiet_extreme_nb",
           "level_ranges_nb"]

#: The kernel's options, a float64 array in this order (:meth:`TradingOptions.kernel_options`).
OPTION_FIELDS = ("fees", "slippage", "size", "size_type", "stop_loss", "take_profit",
                 "trailing_stop", "latency_us", "max_volume_share")
N_OPT = len(OPTION_FIELDS)
(O_FEES, O_SLIPPAGE, O_SIZE, O_SIZE_TYPE, O_STOP_LOSS, O_TAKE_PROFIT, O_TRAIL, O_LATENCY,
 O_SHARE) = range(N_OPT)


@njit(cache=True)
def _signal_order_nb(position, le, lx, se, sx, size, size_type, price):
    """Signals of one bar -> (order size with sign, percent, direction); 0 size = no order.

    vectorbt's conflict rules (``upon_*_conflict="ignore"``, accumulation off),
    ``signals_to_size_nb`` and the size-type conversions of ``execute_order_nb``.
    """
    if le or se:
        if le and lx:
            le = lx = False
        if se and sx:
            se = sx = False
        if le and se:
            le = se = False
    order = 0.0
    direction = BOTH
    stype = size_type
    if position > 0:
        if se:
            order = -position - (size / price if size_type == SIZE_VALUE else size)
            stype = SIZE_AMOUNT
        elif lx:
            direction = LONG_ONLY
            order = -position
            stype = SIZE_AMOUNT
    elif position < 0:
        if le:
            order = -position + (size / price if size_type == SIZE_VALUE else size)
            stype = SIZE_AMOUNT
        elif sx:
            direction = SHORT_ONLY
            order = -position
            stype = SIZE_AMOUNT
    elif le:
        order = size
    elif se:
        order = -size
    percent = np.nan
    if order == 0:
        return 0.0, percent, direction
    if stype == SIZE_VALUE:
        order = order / price
    elif stype == SIZE_PERCENT:
        percent = abs(order)
        order = np.sign(order) * np.inf
    elif direction != LONG_ONLY and order < 0 and np.isinf(order):
        percent = 1.0  # vectorbt: an infinite short is "100 % of resources"
    return order, percent, direction


@njit(cache=True, inline="always")
def opening_side_nb(le, lx, se, sx):
    """+1 / -1 when one bar's signals open a long / a short on a flat account, 0 when they
    open nothing (no entry, or conflicting signals).

    The conflict rules are :func:`_signal_order_nb`'s (asked, not copied), so a driver
    can tell an entry, and its side, before it runs the bar (the portfolio's position
    cap and risk sizing).
    """
    order, _, _ = _signal_order_nb(0.0, le, lx, se, sx, 1.0, SIZE_AMOUNT, 1.0)
    return 1 if order > 0 else (-1 if order < 0 else 0)


@njit(cache=True)
def _set_levels_nb(state, entry, stop_price, target_price, opts):
    """The new round trip's stop and target from its entry fill price."""
    long = state[T_LONG] == 1.0
    sl, tp = opts[O_STOP_LOSS], opts[O_TAKE_PROFIT]
    if stop_price == stop_price:
        state[STOP] = stop_price
    elif sl > 0:
        state[STOP] = entry * (1.0 - sl) if long else entry * (1.0 + sl)
    if target_price == target_price:
        state[TARGET] = target_price
    elif tp > 0:
        state[TARGET] = entry * (1.0 + tp) if long else entry * (1.0 - tp)


@njit(cache=True)
def signal_nb(state, le, lx, se, sx, price, stop_price, target_price, opts, fill):
    """One bar's signals as a market order at ``price``; True when it filled (into ``fill``)."""
    order, percent, direction = _signal_order_nb(
        state[POSITION], le, lx, se, sx, opts[O_SIZE], int(opts[O_SIZE_TYPE]), price)
    if order == 0:
        return False
    if not order_nb(state, order, price, direction, percent, opts[O_FEES], opts[O_SLIPPAGE],
                    R_SIGNAL, fill):
        return False
    if fill[F_OPENED] > 0:
        _set_levels_nb(state, fill[F_PRICE], stop_price, target_price, opts)
    return True


@njit(cache=True)
def levels_on_nb(opts, has_level_prices):
    """Whether any stop or target can be live (else the level checks are skipped)."""
    return (has_level_prices or opts[O_STOP_LOSS] > 0 or opts[O_TAKE_PROFIT] > 0
            or opts[O_TRAIL] > 0)


@njit(cache=True)
def stop_level_nb(state, trail):
    """(stop level in force, its reason): the higher (long) of the stop and the trailing level."""
    return stop_in_force_nb(state[STOP], state[EXTREME], state[T_LONG] == 1.0, trail)


@njit(cache=True, inline="always")
def stop_in_force_nb(stop, extreme, long, trail):
    """:func:`stop_level_nb` on scalars (for loops that keep the levels in registers)."""
    if trail > 0:
        if long:
            level = extreme * (1.0 - trail)
            if not stop >= level:  # NaN stop, or trailing higher
                return level, R_TRAIL
        else:
            level = extreme * (1.0 + trail)
            if not stop <= level:
                return level, R_TRAIL
    return stop, R_STOP


@njit(cache=True)
def exit_nb(state, price, slippage, reason, opts, fill, size=0.0):
    """Close the position (or ``size`` of it, signed like the order) at ``price``: a stop or
    target fill."""
    pos = state[POSITION]
    direction = LONG_ONLY if pos > 0 else SHORT_ONLY
    order = -pos if size == 0.0 else size
    return order_nb(state, order, price, direction, np.nan, opts[O_FEES], slippage, reason, fill)


@njit(cache=True, inline="always")
def may_reach_nb(stop, target, extreme, long, low, high, trail):
    """False when no price in ``[low, high]`` can reach a level of the round trip (a bar the
    engine need not look at: only its peak moves). Scalars only, so drivers can ask it on
    every bar without the cost of a call that passes arrays.

    The trailing level is taken at its highest within the bar (``max(peak, high)``), so
    the answer is safe for the trades rule and for the OHLC rule alike.
    """
    if long:
        if trail > 0:
            level = max(extreme, high) * (1.0 - trail)
            stop = level if not stop >= level else stop
        return low <= stop or high >= target
    if trail > 0:
        level = min(extreme, low) * (1.0 + trail)
        stop = level if not stop <= level else stop
    return high >= stop or low <= target


@njit(cache=True, inline="always")
def quiet_bar_nb(state, low, high, trail):
    """For a bar of an open round trip: True when nothing can happen in it (no exit under
    way, no level within ``[low, high]``), after moving the peak by the bar's extreme; False
    when the driver must run the engine's step on it."""
    if state[EXIT_READY] == state[EXIT_READY]:
        return False
    extreme = quiet_extreme_nb(state[T_LONG] == 1.0, state[STOP], state[TARGET],
                               state[EXTREME], low, high, trail)
    if extreme != extreme:
        return False
    state[EXTREME] = extreme
    return True


@njit(cache=True)
def level_ranges_nb(low, high, trades):
    """(lows, highs) per bar that its live levels are checked against: its market trades'
    range when ``trades`` has them (:mod:`tcp_lab.execution.on_trades`), else its candle's
    ``low``/``high``. Drivers bind them once per loop (binding an array from the
    ``trades`` tuple on every bar costs reference counts)."""
    if trades[3].shape[0] > 0:
        return trades[5], trades[6]
    return low, high


@njit(cache=True, inline="always")
def quiet_extreme_nb(long, stop, target, extreme, low, high, trail):
    """:func:`quiet_bar_nb` on scalars, for a round trip with no exit under way: the peak
    after a bar that cannot reach a level, or NaN when it can (or its range is unknown).
    Drivers keep the levels in registers over a run of quiet bars."""
    if low != low or may_reach_nb(stop, target, extreme, long, low, high, trail):
        return np.nan
    return max(extreme, high) if long else min(extreme, low)


@njit(cache=True)
def ohlc_levels_nb(state, o, h, lo, opts, fill):
    """Resolve the live stop and target on one candle (the OHLC rule); True on a fill."""
    stop, reason = stop_level_nb(state, opts[O_TRAIL])
    target = state[TARGET]
    slip = opts[O_SLIPPAGE]
    if state[T_LONG] == 1.0:
        if o <= stop:
            return exit_nb(state, o, slip, reason, opts, fill)
        if o >= target:
            return exit_nb(state, o, 0.0, R_TARGET, opts, fill)
        hit_stop, hit_target = lo <= stop, h >= target
    else:
        if o >= stop:
            return exit_nb(state, o, slip, reason, opts, fill)
        if o <= target:
            return exit_nb(state, o, 0.0, R_TARGET, opts, fill)
        hit_stop, hit_target = h >= stop, lo <= target
    if hit_stop:
        filled = exit_nb(state, stop, slip, reason, opts, fill)
        if hit_target:
            state[AMBIGUOUS] += 1.0
            fill[F_AMBIGUOUS] = 1.0
        return filled
    if hit_target:
        return exit_nb(state, target, 0.0, R_TARGET, opts, fill)
    if state[T_LONG] == 1.0:
        state[EXTREME] = max(state[EXTREME], h)
    else:
        state[EXTREME] = min(state[EXTREME], lo)
    return False


@njit(cache=True, inline="always")  # a call passing arrays costs more than a bar: inline it
def bar_nb(state, o, h, lo, c, le, lx, se, sx, stop_price, target_price, at_open, use_levels,
           opts, fills):
    """One candle on one account; returns how many fills it wrote into ``fills`` (0–2).

    ``le``/``lx``/``se``/``sx`` are the long entry/exit and short entry/exit
    signals to act on in this bar (with ``at_open``, those of the bar before:
    they fill at ``o``); ``stop_price``/``target_price`` the strategy's levels
    for an entry they cause (NaN: use the options). ``use_levels`` False skips
    the level checks (no stop, target or trailing stop configured).
    """
    n = 0
    signal = le or lx or se or sx
    live = state[POSITION] != 0.0
    if at_open and signal:
        entries = state[N_ENTRIES]
        if signal_nb(state, le, lx, se, sx, o, stop_price, target_price, opts, fills[n]):
            n += 1
        live = live and state[POSITION] != 0.0 and state[N_ENTRIES] == entries
    if live and use_levels:
        if ohlc_levels_nb(state, o, h, lo, opts, fills[n]):
            n += 1
    if signal and not at_open:
        if signal_nb(state, le, lx, se, sx, c, stop_price, target_price, opts, fills[n]):
            n += 1
    return n
