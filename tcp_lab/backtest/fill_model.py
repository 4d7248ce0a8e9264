"""The fill model of :func:`~tcp_lab.backtest.engine.run_backtest`, one order at a time (numba).

vectorbt's ``Portfolio.from_signals`` with the options the engine uses (no
stops, no accumulation, conflicting signals ignored, ``min_size=1e-8``, no
fixed fees, no cash locking), replayed operation for operation — including
its float tolerances — so a sweep's totals agree with the engine's to
rounding. :func:`fill_nb` turns one bar's signals into an order, executes it
and books the trade (vectorbt's exit-trade bookkeeping: PnL and return of
each closed trade). The sweep kernels (:mod:`tcp_lab.backtest.kernels`,
:mod:`tcp_lab.backtest.fused`) call it on bars with a signal.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["SIZE_AMOUNT", "SIZE_VALUE", "SIZE_PERCENT", "NO_TRADE", "NO_STATS", "fill_nb"]

#: Size types (vectorbt's ``SizeType`` numbers for the ones the engine uses).
SIZE_AMOUNT, SIZE_VALUE, SIZE_PERCENT = 0, 1, 2
_LONG_ONLY, _SHORT_ONLY, _BOTH = 0, 1, 2  # vectorbt's Direction
_REL_TOL, _ABS_TOL = 1e-9, 1e-12  # vectorbt's float tolerances
_MIN_SIZE = 1e-8  # vectorbt's default min_size

#: The open trade (size, gross value, fees, is-long) when there is none.
NO_TRADE = (0.0, 0.0, 0.0, 0.0)
#: Closed-trade sums (n_trades, n_wins, gross_profit, gross_loss, sum_ret) before any trade.
NO_STATS = (0.0, 0.0, 0.0, 0.0, 0.0)


# -- vectorbt's float helpers -------------------------------------------------------------
@njit(cache=True)
def _is_close(a: float, b: float) -> bool:
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit(cache=True)
def _is_less(a: float, b: float) -> bool:
    """``a < b`` and not close."""
    return not _is_close(a, b) and a < b


@njit(cache=True)
def _add(a: float, b: float) -> float:
    """``a + b``, snapped to 0 when the two (nearly) cancel."""
    if np.sign(a) != np.sign(b):
        if _is_close(abs(a), abs(b)):
            return 0.0
    elif _is_close(a + b, 0.0):
        return 0.0
    return a + b


# -- one order (vectorbt's buy_nb / sell_nb without lock_cash, fixed fees, granularity) --
@njit(cache=True)
def _buy_nb(cash, position, debt, free_cash, size, price, direction, fees, slippage, percent):
    """Returns (cash, position, debt, free_cash, filled_size, fill_price, fees_paid)."""
    adj_price = price * (1.0 + slippage)
    cash_limit = cash
    if not np.isnan(percent):
        cash_limit = min(cash_limit, percent * cash_limit)
    if direction == _LONG_ONLY or direction == _BOTH:
        if cash_limit == 0:
            return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    elif position == 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    adj_size = min(-position, size) if direction == _SHORT_ONLY else size
    if adj_size == 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    req_cash = adj_size * adj_price
    req_fees = req_cash * fees
    total_req_cash = req_cash + req_fees
    if _is_close(total_req_cash, cash_limit) or total_req_cash < cash_limit:
        final_size = adj_size
        fees_paid = req_fees
        final_req_cash = total_req_cash
    else:
        max_req_cash = _add(cash_limit, -0.0) / (1.0 + fees)
        if max_req_cash <= 0:
            return cash, position, debt, free_cash, 0.0, adj_price, 0.0
        final_size = max_req_cash / adj_price
        fees_paid = cash_limit - max_req_cash
        final_req_cash = cash_limit
    if _is_close(adj_size, 0.0) or _is_less(final_size, _MIN_SIZE):
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    new_cash = _add(cash, -final_req_cash)
    new_position = _add(position, final_size)
    if position < 0:
        short_size = final_size if new_position < 0 else abs(position)
        debt_diff = short_size * (debt / abs(position))
        new_debt = _add(debt, -debt_diff)
        new_free_cash = _add(free_cash + 2 * debt_diff, -final_req_cash)
    else:
        new_debt = debt
        new_free_cash = _add(free_cash, -final_req_cash)
    return new_cash, new_position, new_debt, new_free_cash, final_size, adj_price, fees_paid


@njit(cache=True)
def _sell_nb(cash, position, debt, free_cash, size, price, direction, fees, slippage, percent):
    """Returns (cash, position, debt, free_cash, filled_size, fill_price, fees_paid)."""
    adj_price = price * (1.0 - slippage)
    if direction == _LONG_ONLY:
        size_limit = min(position, size)
    elif np.isinf(size) and not np.isnan(percent):
        long_size = max(position, 0.0)
        total_free_cash = _add(free_cash, long_size * adj_price * (1.0 - fees))
        if total_free_cash <= 0:
            if position <= 0:
                return cash, position, debt, free_cash, 0.0, adj_price, 0.0
            size_limit = long_size
        else:
            max_short_size = _add(total_free_cash, -0.0) / (adj_price * (1.0 + fees))
            size_limit = _add(long_size, max_short_size)
            if size_limit <= 0:
                return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    else:
        size_limit = size
    if not np.isnan(percent):
        size_limit = percent * size_limit
    if direction == _LONG_ONLY and position == 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    if _is_close(size_limit, 0.0) or _is_less(size_limit, _MIN_SIZE):
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    acq_cash = size_limit * adj_price
    fees_paid = acq_cash * fees
    final_acq_cash = _add(acq_cash, -fees_paid)
    if final_acq_cash < 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    new_cash = cash + final_acq_cash
    new_position = _add(position, -size_limit)
    if new_position < 0:
        short_size = size_limit if position < 0 else abs(new_position)
        short_value = short_size * adj_price
        new_debt = debt + short_value
        new_free_cash = _add(free_cash, _add(final_acq_cash, -2 * short_value))
    else:
        new_debt = debt
        new_free_cash = free_cash + final_acq_cash
    return new_cash, new_position, new_debt, new_free_cash, size_limit, adj_price, fees_paid


@njit(cache=True)
def _signal_order_nb(position, le, lx, se, sx, size, size_type, price):
    """Signals of one bar -> (order size with sign, percent, direction); 0 size = no order.

    vectorbt's conflict rules with the engine's settings (``upon_*_conflict``
    ``"ignore"``, accumulation off), ``signals_to_size_nb`` and the size-type
    conversions of ``execute_order_nb``.
    """
    if le or se:
        if le and lx:
            le = lx = False
        if se and sx:
            se = sx = False
        if le and se:
            le = se = False
    order = 0.0
    direction = _BOTH
    stype = size_type
    if position > 0:
        if se:
            order = -position - (size / price if size_type == SIZE_VALUE else size)
            stype = SIZE_AMOUNT
        elif lx:
            direction = _LONG_ONLY
            order = -position
            stype = SIZE_AMOUNT
    elif position < 0:
        if le:
            order = -position + (size / price if size_type == SIZE_VALUE else size)
            stype = SIZE_AMOUNT
        elif sx:
            direction = _SHORT_ONLY
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
    elif direction != _LONG_ONLY and order < 0 and np.isinf(order):
        percent = 1.0  # vectorbt: an infinite short is "100 % of resources"
    return order, percent, direction


@njit(cache=True)
def fill_nb(cash, position, debt, free_cash, trade, stats, le, lx, se, sx, price, fees,
             slippage, size, size_type):
    """Turn one bar's signals into an order, execute it and book the trade (the rare path)."""
    order, percent, direction = _signal_order_nb(position, le, lx, se, sx, size, size_type, price)
    if order == 0:
        return cash, position, debt, free_cash, trade, stats
    # execute_order_nb snaps near-zero state before every order
    if _is_close(cash, 0.0):
        cash = 0.0
    if _is_close(position, 0.0):
        position = 0.0
    if _is_close(debt, 0.0):
        debt = 0.0
    if _is_close(free_cash, 0.0):
        free_cash = 0.0
    if order > 0:
        cash, position, debt, free_cash, filled, fill_price, fee = _buy_nb(
            cash, position, debt, free_cash, order, price, direction, fees, slippage, percent
        )
    else:
        cash, position, debt, free_cash, filled, fill_price, fee = _sell_nb(
            cash, position, debt, free_cash, -order, price, direction, fees, slippage, percent
        )
    if filled > 0:
        trade, stats = _book_fill(trade, stats, order > 0, filled, fill_price, fee)
    return cash, position, debt, free_cash, trade, stats


@njit(cache=True)
def _close_trade(stats, size, entry_price, entry_fees, exit_price, exit_fees, is_long):
    """Book one closed trade (vectorbt's ``get_trade_stats_nb``)."""
    entry_val = size * entry_price
    val_diff = _add(size * exit_price, -entry_val)
    if val_diff != 0 and not is_long:
        val_diff = -val_diff
    pnl = val_diff - entry_fees - exit_fees
    n_trades, n_wins, gross_profit, gross_loss, sum_ret = stats
    n_trades += 1.0
    if pnl > 0:
        n_wins += 1.0
        gross_profit += pnl
    elif pnl < 0:
        gross_loss -= pnl
    return (n_trades, n_wins, gross_profit, gross_loss, sum_ret + pnl / entry_val)


@njit(cache=True)
def _book_fill(trade, stats, is_buy, filled, fill_price, fee):
    """Update the open trade with one fill (vectorbt's exit-trade bookkeeping)."""
    t_size, t_gross, t_fees, t_long = trade
    if t_size == 0.0:  # a trade opens
        return (filled, filled * fill_price, fee, 1.0 if is_buy else 0.0), stats
    is_long = t_long == 1.0
    if is_long == is_buy:  # position increased
        return (t_size + filled, t_gross + filled * fill_price, t_fees + fee, t_long), stats
    entry_price = t_gross / t_size
    if _is_close(filled, t_size) or filled < t_size:  # closed, or partly
        closed = _is_close(filled, t_size)
        exit_size = t_size if closed else filled
        stats = _close_trade(stats, exit_size, entry_price, exit_size / t_size * t_fees,
                             fill_price, fee, is_long)
        if closed:
            return (0.0, 0.0, 0.0, 0.0), stats
        keep = (t_size - filled) / t_size
        return (t_size * keep, t_gross * keep, t_fees * keep, t_long), stats
    # reversed: close the whole trade, open the rest the other way
    cl_fees = t_size / filled * fee
    stats = _close_trade(stats, t_size, entry_price, t_size / t_size * t_fees, fill_price,
                         cl_fees, is_long)
    rest = filled - t_size
    return (rest, rest * fill_price, fee - cl_fees, 1.0 if is_buy else 0.0), stats
