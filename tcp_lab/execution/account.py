"""The account and its orders (numba): cash, position, the open round trip, fills.

One account is a float64 array laid out by :data:`STATE_FIELDS`; every driver
(the backtest over all bars, the sweep per combination, the paper bot one bar
at a time) holds one and hands it to :mod:`tcp_lab.execution.kernel`.

The order arithmetic is vectorbt's ``Portfolio.from_signals`` for the options
tcp_lab uses (no accumulation, conflicting signals ignored, ``min_size``
1e-8, no fixed fees, no cash locking), operation for operation and with its
float tolerances, so where the models overlap (market orders, no stops) the
engine's fills equal vectorbt's to the last bit; its short-selling accounting
(``debt``, ``free_cash``) included. Round trips are booked like vectorbt's
exit trades (P&L of each closed part after its share of the entry fees).

Every function here takes and returns numbers or arrays (``*_nb``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "STATE_FIELDS", "N_STATE", "FILL_FIELDS", "N_FILL", "REASONS", "SIZE_AMOUNT", "SIZE_VALUE",
    "SIZE_PERCENT", "open_account_nb", "order_nb", "book_nb", "is_close_nb",
]

#: Size types (vectorbt's ``SizeType`` numbers for the ones tcp_lab uses).
SIZE_AMOUNT, SIZE_VALUE, SIZE_PERCENT = 0, 1, 2
LONG_ONLY, SHORT_ONLY, BOTH = 0, 1, 2  # vectorbt's Direction
_REL_TOL, _ABS_TOL = 1e-9, 1e-12  # vectorbt's float tolerances
_MIN_SIZE = 1e-8  # vectorbt's default min_size

#: Why a fill happened (``exit_reason`` of the round trip it closes).
REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "reversal", "liquidation")
R_SIGNAL, R_STOP, R_TARGET, R_TRAIL, R_REVERSAL, R_LIQUIDATION = 0, 1, 2, 3, 4, 5

#: One account, in this order.
STATE_FIELDS = (
    "cash", "position", "debt", "free_cash",  # vectorbt's accounting
    "trade_size", "trade_gross", "trade_fees", "trade_long",  # the open round trip
    "stop", "target", "extreme",  # its fixed stop and target levels, peak (long) / trough (short)
    "n_entries", "n_trades", "n_wins", "gross_profit", "gross_loss", "sum_trade_return",
    "ambiguous_bars",
    # an exit under way on market trades (latency, volume share): when it may fill (epoch
    # µs, NaN: none), why, how much is left, its limit price (a target; NaN: a stop) and
    # what filled in the current bar (booked at the bar's close at its average price)
    "exit_ready", "exit_reason", "exit_left", "exit_limit", "bar_exit_size", "bar_exit_value",
)
N_STATE = len(STATE_FIELDS)
(CASH, POSITION, DEBT, FREE_CASH, T_SIZE, T_GROSS, T_FEES, T_LONG, STOP, TARGET, EXTREME,
 N_ENTRIES, N_TRADES, N_WINS, GROSS_PROFIT, GROSS_LOSS, SUM_RET, AMBIGUOUS, EXIT_READY,
 EXIT_REASON, EXIT_LEFT, EXIT_LIMIT, BAR_EXIT_SIZE, BAR_EXIT_VALUE) = range(N_STATE)

#: One fill, as the kernel reports it to its driver.
FILL_FIELDS = (
    "side",  # +1 buy, -1 sell
    "size", "price", "fees", "reason",
    "closed_size",  # size of the round trip this fill closed (0: none)
    "entry_price", "entry_fees", "exit_fees", "pnl", "return",  # of that round trip
    "opened_size",  # size of the round trip this fill opened (0: none)
    "ambiguous",  # 1: the OHLC rule chose the stop on a bar that reached both levels
)
N_FILL = len(FILL_FIELDS)
(F_SIDE, F_SIZE, F_PRICE, F_FEES, F_REASON, F_CLOSED, F_ENTRY_PRICE, F_ENTRY_FEES, F_EXIT_FEES,
 F_PNL, F_RET, F_OPENED, F_AMBIGUOUS) = range(N_FILL)


@njit(cache=True)
def open_account_nb(state, init_cash):
    """Reset ``state`` to a flat account holding ``init_cash``."""
    state[:] = 0.0
    state[CASH] = init_cash
    state[FREE_CASH] = init_cash
    state[STOP] = np.nan
    state[TARGET] = np.nan
    state[EXTREME] = np.nan
    state[EXIT_READY] = np.nan
    state[EXIT_LIMIT] = np.nan


# -- vectorbt's float helpers -------------------------------------------------------------
@njit(cache=True)
def is_close_nb(a, b):
    """vectorbt's ``is_close_nb``: equal within 1e-9 relative / 1e-12 absolute."""
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit(cache=True)
def _is_less(a, b):
    return not is_close_nb(a, b) and a < b


@njit(cache=True)
def _add(a, b):
    """``a + b``, snapped to 0 when the two (nearly) cancel."""
    if np.sign(a) != np.sign(b):
        if is_close_nb(abs(a), abs(b)):
            return 0.0
    elif is_close_nb(a + b, 0.0):
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
    if direction == LONG_ONLY or direction == BOTH:
        if cash_limit == 0:
            return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    elif position == 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    adj_size = min(-position, size) if direction == SHORT_ONLY else size
    if adj_size == 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    req_cash = adj_size * adj_price
    req_fees = req_cash * fees
    total_req_cash = req_cash + req_fees
    if is_close_nb(total_req_cash, cash_limit) or total_req_cash < cash_limit:
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
    if is_close_nb(adj_size, 0.0) or _is_less(final_size, _MIN_SIZE):
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
    if direction == LONG_ONLY:
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
    if direction == LONG_ONLY and position == 0:
        return cash, position, debt, free_cash, 0.0, adj_price, 0.0
    if is_close_nb(size_limit, 0.0) or _is_less(size_limit, _MIN_SIZE):
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
def order_nb(state, size, price, direction, percent, fees, slippage, reason, fill):
    """Execute one order on ``state``; write the fill into ``fill``; True when it filled.

    ``size`` is signed (buy > 0, sell < 0; ``inf`` with a ``percent`` means
    "as much as ``percent`` of the resources allow"); ``direction`` is
    vectorbt's (``LONG_ONLY`` closes a long only, ``SHORT_ONLY`` covers a
    short only, ``BOTH`` may open or reverse). ``price`` is before slippage.
    """
    # execute_order_nb snaps near-zero state before every order
    for k in (CASH, POSITION, DEBT, FREE_CASH):
        if is_close_nb(state[k], 0.0):
            state[k] = 0.0
    cash, position, debt, free_cash = state[CASH], state[POSITION], state[DEBT], state[FREE_CASH]
    if size > 0:
        cash, position, debt, free_cash, filled, fill_price, fee = _buy_nb(
            cash, position, debt, free_cash, size, price, direction, fees, slippage, percent)
    else:
        cash, position, debt, free_cash, filled, fill_price, fee = _sell_nb(
            cash, position, debt, free_cash, -size, price, direction, fees, slippage, percent)
    if not filled > 0:
        return False
    state[CASH], state[POSITION], state[DEBT], state[FREE_CASH] = cash, position, debt, free_cash
    fill[:] = 0.0
    fill[F_SIDE] = 1.0 if size > 0 else -1.0
    fill[F_SIZE] = filled
    fill[F_PRICE] = fill_price
    fill[F_FEES] = fee
    fill[F_REASON] = reason
    book_nb(state, fill)
    return True


# -- round trips (vectorbt's exit trades) --------------------------------------------------
@njit(cache=True)
def _close_nb(state, fill, size, entry_price, entry_fees, exit_fees, is_long):
    """Book the closing of ``size`` of the open round trip (vectorbt's ``get_trade_stats_nb``)."""
    entry_val = size * entry_price
    val_diff = _add(size * fill[F_PRICE], -entry_val)
    if val_diff != 0 and not is_long:
        val_diff = -val_diff
    pnl = val_diff - entry_fees - exit_fees
    ret = pnl / entry_val
    state[N_TRADES] += 1.0
    if pnl > 0:
        state[N_WINS] += 1.0
        state[GROSS_PROFIT] += pnl
    elif pnl < 0:
        state[GROSS_LOSS] -= pnl
    state[SUM_RET] += ret
    fill[F_CLOSED] = size
    fill[F_ENTRY_PRICE] = entry_price
    fill[F_ENTRY_FEES] = entry_fees
    fill[F_EXIT_FEES] = exit_fees
    fill[F_PNL] = pnl
    fill[F_RET] = ret


@njit(cache=True)
def book_nb(state, fill):
    """Update the open round trip of ``state`` with ``fill`` (closes, opens, reverses)."""
    filled, price, fee = fill[F_SIZE], fill[F_PRICE], fill[F_FEES]
    is_buy = fill[F_SIDE] > 0
    t_size = state[T_SIZE]
    if t_size == 0.0:  # a round trip opens
        _open_nb(state, fill, filled, price, fee, is_buy)
        return
    is_long = state[T_LONG] == 1.0
    if is_long == is_buy:  # position increased (never with signals: no accumulation)
        state[T_SIZE] += filled
        state[T_GROSS] += filled * price
        state[T_FEES] += fee
        return
    entry_price = state[T_GROSS] / t_size
    if is_close_nb(filled, t_size) or filled < t_size:  # closed, or partly
        closed = is_close_nb(filled, t_size)
        exit_size = t_size if closed else filled
        _close_nb(state, fill, exit_size, entry_price, exit_size / t_size * state[T_FEES], fee,
                  is_long)
        if closed:
            _flat_nb(state)
        else:
            keep = (t_size - filled) / t_size
            state[T_SIZE] *= keep
            state[T_GROSS] *= keep
            state[T_FEES] *= keep
        return
    # reversed: close the whole round trip, open the rest the other way
    cl_fees = t_size / filled * fee
    _close_nb(state, fill, t_size, entry_price, t_size / t_size * state[T_FEES], cl_fees, is_long)
    fill[F_REASON] = R_REVERSAL
    rest = filled - t_size
    _open_nb(state, fill, rest, price, fee - cl_fees, is_buy)


@njit(cache=True)
def _open_nb(state, fill, size, price, fees, is_buy):
    state[T_SIZE] = size
    state[T_GROSS] = size * price
    state[T_FEES] = fees
    state[T_LONG] = 1.0 if is_buy else 0.0
    state[N_ENTRIES] += 1.0
    state[STOP] = np.nan
    state[TARGET] = np.nan
    state[EXTREME] = price
    state[EXIT_READY] = np.nan
    fill[F_OPENED] = size


@njit(cache=True)
def _flat_nb(state):
    state[T_SIZE] = 0.0
    state[T_GROSS] = 0.0
    state[T_FEES] = 0.0
    state[T_LONG] = 0.0
    state[STOP] = np.nan
    state[TARGET] = np.nan
    state[EXTREME] = np.nan
    state[EXIT_READY] = np.nan
