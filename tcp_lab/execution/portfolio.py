"""The portfolio driver (numba): the execution kernel over several accounts that share cash.

Each symbol keeps its own engine state (position, debt, open round trip, stops:
:data:`~tcp_lab.execution.account.STATE_FIELDS`); the ``cash`` and the ``free_cash``
are one pair of numbers for the portfolio, as in a vectorbt group with
``cash_sharing=True`` (``simulate_from_signals_nb``: one ``cash_now`` and
``free_cash_now`` per group, ``position`` and ``debt`` per column). Before a
symbol's bar both are loaded into its state, the engine's own
:func:`~tcp_lab.execution.kernel.bar_nb` runs the bar (one copy of the fill rules),
and both are taken back. So a short sale adds its proceeds to the shared cash and
takes twice its value (plus fees) less the proceeds from the shared free cash; covering
gives it back; a long buy takes its cost from both (vectorbt's accounting, without
``lock_cash``: see :mod:`tcp_lab.execution.sizing` for what that allows).

Within one close time the symbols whose bar has no entry signal go first (their
exits and stops free cash), then those with an entry signal, by confidence
(descending, missing last) then by symbol position (the caller sorts symbols by
name). An *entry signal* is a long or a short entry after routing (with
``direction="longshort"`` and no short signals, a strategy's exit is a short
entry): any signal that may open or reverse a position. A bar's signals *open* a
position when the symbol is flat before its bar and they make an order (the kernel's
conflict rules, :func:`~tcp_lab.execution.kernel.opening_side_nb`); only those count
against ``max_positions`` and are recorded when skipped. A reversal keeps the
count of open positions.

**Leverage** (``credit_rate`` = leverage - 1 > 0): before each symbol's bar the
account may borrow up to ``credit_rate`` times its equity (cash plus positions at
their last close): that credit is added to the cash and the free cash the kernel
sees and taken off again after the bar, so an entry buys (or sells short) with the
cash plus the credit, and a borrowed cash shows as a negative cash. At the end of
each close time, once the positions are valued at their latest closes, an account
whose equity is below ``maintenance`` times the gross value of its positions is
**liquidated**: every position is closed at its symbol's latest close (with the
slippage and fees of any order; exit reason ``"liquidation"``). An account whose
equity is then zero or less opens nothing more (entries skipped as ``"no_cash"``).
Arrays in, arrays out; pandas lives in :mod:`tcp_lab.portfolio.run`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tcp_lab.execution.account import (
    AMBIGUOUS,
    CASH,
    FREE_CASH,
    N_ENTRIES,
    N_FILL,
    N_STATE,
    POSITION,
    R_LIQUIDATION,
    open_account_nb,
)
from tcp_lab.execution.kernel import (
    O_SIZE,
    O_SLIPPAGE,
    O_STOP_LOSS,
    O_TRAIL,
    bar_nb,
    exit_nb,
    levels_on_nb,
    opening_side_nb,
    quiet_bar_nb,
)
from tcp_lab.execution.simulate import _record_nb, open_trip_nb

__all__ = ["SIZE_STATIC", "SIZE_EQUITY_FRACTION", "SIZE_RISK", "SKIP_REASONS", "run_portfolio_nb"]

#: Sizing modes of the driver: the options' size as is (all in, fixed value), a
#: fraction of the portfolio equity before the symbol's bar (fixed fraction, equal,
#: volatility target), or the fraction of it to lose at the entry's stop (risk percent).
SIZE_STATIC, SIZE_EQUITY_FRACTION, SIZE_RISK = 0, 1, 2
#: Why the entry signal of a flat symbol did not open a position.
SKIP_REASONS = ("max_positions", "no_cash", "no_stop", "no_volatility")


@njit(cache=True, inline="always")
def _cell_nb(a, t, s):
    """``a[t, s]`` of a ``(T, S)`` array, or its one value when it is ``(1, 1)`` (the same for
    every bar and symbol)."""
    return a[t if a.shape[0] > 1 else 0, s if a.shape[1] > 1 else 0]


@njit(cache=True)
def _equity_nb(cash, states, mark):
    """Cash plus every position at its symbol's last close."""
    total = cash
    for s in range(states.shape[0]):
        total += states[s, POSITION] * mark[s]
    return total


@njit(cache=True)
def _step_nb(states, s, t, cash, free_cash, credit, o, h, lo, c, le, lx, se, sx, sp, tp,
             at_open, use_levels, opts, fills, orders, n_orders, trips, n_trips, entry_idx,
             order_sym, trip_sym, order_trip):
    """One symbol's bar on its own state with the shared ``cash`` and ``free_cash``
    loaded, plus the ``credit`` it may borrow (its ``position`` and ``debt`` are its
    own); returns (cash, free_cash, n_orders, n_trips) without the credit."""
    st = states[s]
    st[CASH] = cash + credit
    st[FREE_CASH] = free_cash + credit
    k = bar_nb(st, o, h, lo, c, le, lx, se, sx, sp, tp, at_open, use_levels, opts, fills)
    n_orders, n_trips = _book_nb(s, t, k, fills, orders, n_orders, trips, n_trips, entry_idx,
                                 order_sym, trip_sym, order_trip)
    return st[CASH] - credit, st[FREE_CASH] - credit, n_orders, n_trips


@njit(cache=True, inline="always")
def _book_nb(s, t, k, fills, orders, n_orders, trips, n_trips, entry_idx, order_sym,
             trip_sym, order_trip):
    """Record the first ``k`` of ``fills`` for symbol ``s`` (with the round trip each
    closed, -1: none); returns (n_orders, n_trips)."""
    for j in range(k):
        n0, m0 = n_orders, n_trips
        n_orders, n_trips, entry_idx[s] = _record_nb(t, fills[j], orders, n_orders, trips,
                                                     n_trips, entry_idx[s])
        for q in range(n0, n_orders):
            order_sym[q] = s
            order_trip[q] = m0 if n_trips > m0 else -1
        for q in range(m0, n_trips):
            trip_sym[q] = s
    return n_orders, n_trips


@njit(cache=True)
def run_portfolio_nb(open_, high, low, close, has_bar, le, lx, se, sx, stop_price, target_price,
                     has_levels, confidence, at_open, opts, size_mode, fraction,
                     max_positions, init_cash, credit_rate, maintenance, carry_states=None,
                     carry_book=None, carry_acct=None, t0=0):
    """Run one strategy's signals on several symbols from one cash account.

    Parameters
    ----------
    open_, high, low, close
        float64 ``(T, S)``: candle of each symbol at each close time of the
        union (anything where ``has_bar`` is False). The open, high and low are
        read only with ``at_open`` or live levels (the caller may pass ``close``).
    has_bar
        bool ``(T, S)``: the symbol has a candle at that time.
    le, lx, se, sx
        bool ``(T, S)``: long entry / exit, short entry / exit to act on in that
        bar (routed by the direction, already moved one bar with ``at_open``);
        False where there is no bar.
    stop_price, target_price
        float64 ``(T, S)`` levels for an entry (NaN: from the options), or
        ``(0, S)`` when no symbol has any.
    has_levels
        bool ``(S,)``: the strategy set levels for that symbol.
    confidence
        float64 ``(T, S)``: ordering key of entries (``-inf``: none), or ``(1, 1)``
        when no symbol has one.
    at_open
        Signals fill at the bar's open (``price="next_open"``).
    opts
        float64 :data:`~tcp_lab.execution.kernel.OPTION_FIELDS` (``size`` is
        overwritten before each entry bar in ``SIZE_EQUITY_FRACTION`` mode).
    size_mode, fraction
        :data:`SIZE_STATIC`; :data:`SIZE_EQUITY_FRACTION` with the fraction of
        equity per entry (the value bought, or sold short); :data:`SIZE_RISK` with
        the fraction of equity to lose at the entry's stop (below the price for a
        long, above it for a short). ``fraction`` is float64 ``(1, 1)`` (one for
        all) or ``(T, S)`` (per bar and symbol; NaN: unknown, the entry is
        skipped). The size of a reversal's new side is sized the same way; when
        it cannot be (no stop, no volatility) the reversal only closes.
    max_positions
        Cap on open positions (``S`` or more: none).
    init_cash
        Starting cash.
    credit_rate, maintenance
        Leverage - 1 (0: no borrowing, no liquidation) and the maintenance margin
        rate (see the module docstring).
    carry_states, carry_book, carry_acct, t0
        Go on from where an earlier call ended (its ``states``, ``book`` and
        ``acct``; ``None``: start flat with ``init_cash``), the rows given here being
        rows ``t0``, ``t0 + 1``, … of the whole (the time positions recorded in
        orders, round trips and skipped entries). Running the rows in pieces this
        way gives the fills and equity of one call over all of them: a bot can step
        one close time at a time through the same loop.

    Returns
    -------
    equity, cash : ndarray ``(T,)``
        At each close time: cash plus every position at its symbol's last close
        (a short's value is negative; the cash holds its sale proceeds, and is
        negative while it is borrowed).
    value, pnl : ndarray ``(T, S)``
        Position value (negative for a short), and P&L so far (cash flows plus
        position value), per symbol.
    n_open : ndarray ``(T,)``
        Open positions at each close time.
    orders, order_sym, trips, trip_sym
        Fills (:data:`~tcp_lab.execution.simulate.ORDER_FIELDS`) and round trips
        (:data:`~tcp_lab.execution.simulate.TRIP_FIELDS`, open ones last, marked
        at their symbol's last close), with their symbol position.
    skipped : ndarray ``(k, 3)``
        Entries not taken: time position, symbol position, reason
        (:data:`SKIP_REASONS`).
    states : ndarray ``(S, N_STATE)``
        The symbols' engine states after the last bar.
    ambiguous : float
        Bars where the OHLC rule had to choose between a stop and a target.
    book, acct : ndarray
        The rest of the account to go on from: per symbol ``(S, 4)`` its last
        close, net cash flow, entry and last time positions; ``(3,)`` the cash,
        the free cash and whether it was liquidated to nothing.
    order_trip : ndarray ``(n_orders,)``
        The row of ``trips`` each fill closed (-1: it closed none), for its P&L.
    """
    n_t, n_s = close.shape
    opts = opts.copy()
    states = np.empty((n_s, N_STATE))
    mark = np.zeros(n_s)  # last close of each symbol (0 before its first candle: flat there)
    flow = np.zeros(n_s)  # net cash flow of each symbol's fills
    entry_idx = np.full(n_s, -1, dtype=np.int64)
    last_idx = np.full(n_s, -1, dtype=np.int64)
    blown = False  # liquidated to nothing: no more entries
    if carry_states is None:
        for s in range(n_s):
            open_account_nb(states[s], init_cash)
        cash = free_cash = init_cash
    else:
        states[:] = carry_states
        for s in range(n_s):
            mark[s], flow[s] = carry_book[s, 0], carry_book[s, 1]
            entry_idx[s], last_idx[s] = int(carry_book[s, 2]), int(carry_book[s, 3])
        cash, free_cash, blown = carry_acct[0], carry_acct[1], carry_acct[2] != 0.0
    n_le = 0
    n_sig = 0
    for t in range(n_t):
        for s in range(n_s):
            if le[t, s] or se[t, s]:
                n_le += 1
            if le[t, s] or lx[t, s] or se[t, s] or sx[t, s]:
                n_sig += 1
    n_cap = 2 * n_sig + n_s + n_le  # + a liquidation per position opened
    orders = np.empty((n_cap, 6))
    order_sym = np.empty(n_cap, dtype=np.int64)
    order_trip = np.empty(n_cap, dtype=np.int64)
    trips = np.empty((n_cap + n_s, 13))
    trip_sym = np.empty(n_cap + n_s, dtype=np.int64)
    skipped = np.empty((n_le, 3))
    n_orders = n_trips = n_skipped = 0
    use_levels = np.empty(n_s, dtype=np.bool_)
    for s in range(n_s):
        use_levels[s] = levels_on_nb(opts, has_levels[s])
    trail = opts[O_TRAIL]
    fills = np.zeros((2, N_FILL))
    entering = np.empty(n_s, dtype=np.int64)
    equity = np.empty(n_t)
    cash_out = np.empty(n_t)
    value = np.empty((n_t, n_s))
    pnl = np.empty((n_t, n_s))
    n_open_out = np.empty(n_t, dtype=np.int64)
    n_open = 0
    for s in range(n_s):
        if states[s, POSITION] != 0.0:
            n_open += 1
    for t in range(n_t):
        g = t0 + t  # the time position in the whole run (what is recorded)
        if not at_open:  # orders at the close: positions are valued at this close
            for s in range(n_s):
                if has_bar[t, s]:
                    mark[s] = close[t, s]
        # 1. bars without an entry signal (exits and stops free cash); collect the others
        n_enter = 0
        for s in range(n_s):
            if not has_bar[t, s]:
                continue
            last_idx[s] = g
            if le[t, s] or se[t, s]:
                entering[n_enter] = s
                n_enter += 1
                continue
            st = states[s]
            if not (lx[t, s] or sx[t, s]) and not (
                    use_levels[s] and st[POSITION] != 0.0
                    and not quiet_bar_nb(st, low[t, s], high[t, s], trail)):
                continue
            was_open = st[POSITION] != 0.0
            before = cash
            sp = stop_price[t, s] if has_levels[s] else np.nan
            tp = target_price[t, s] if has_levels[s] else np.nan
            credit = 0.0
            if credit_rate > 0.0:
                credit = max(credit_rate * _equity_nb(cash, states, mark), 0.0)
            cash, free_cash, n_orders, n_trips = _step_nb(
                states, s, g, cash, free_cash, credit, open_[t, s], high[t, s], low[t, s],
                close[t, s], False, lx[t, s], False, sx[t, s], sp, tp, at_open, use_levels[s],
                opts, fills, orders, n_orders, trips, n_trips, entry_idx, order_sym, trip_sym,
                order_trip)
            flow[s] += cash - before
            n_open += (1 if st[POSITION] != 0.0 else 0) - (1 if was_open else 0)
        # 2. entries: confidence descending, then symbol position (insertion sort: few)
        for a in range(1, n_enter):
            s = entering[a]
            b = a - 1
            while b >= 0 and _cell_nb(confidence, t, entering[b]) < _cell_nb(confidence, t, s):
                entering[b + 1] = entering[b]
                b -= 1
            entering[b + 1] = s
        eq_now = 0.0
        if (size_mode != SIZE_STATIC or credit_rate > 0.0) and n_enter > 0:
            eq_now = _equity_nb(cash, states, mark)
        for a in range(n_enter):
            s = entering[a]
            st = states[s]
            was_open = st[POSITION] != 0.0
            pos_before = st[POSITION]
            # the side the signals open (from flat, after a stop in the bar, or as the new
            # side of a reversal); an entry when the symbol is flat before its bar
            side = opening_side_nb(le[t, s], lx[t, s], se[t, s], sx[t, s])
            entry = not was_open and side != 0
            go = True
            if entry and blown:
                go = False
                skipped[n_skipped, 0], skipped[n_skipped, 1], skipped[n_skipped, 2] = g, s, 1
                n_skipped += 1
            elif entry and n_open >= max_positions:
                go = False
                skipped[n_skipped, 0], skipped[n_skipped, 1], skipped[n_skipped, 2] = g, s, 0
                n_skipped += 1
            sp = stop_price[t, s] if has_levels[s] else np.nan
            tp = target_price[t, s] if has_levels[s] else np.nan
            if size_mode != SIZE_STATIC:
                f = _cell_nb(fraction, t, s)
                if size_mode == SIZE_RISK:  # the stop's share of the price: risk / it
                    px = open_[t, s] if at_open else close[t, s]
                    if sp == sp:  # the stop is below a long's price, above a short's
                        dist = (px - sp) / px if side > 0 else (sp - px) / px
                    else:
                        dist = opts[O_STOP_LOSS]
                    f = f / dist if dist > 0.0 else np.nan
                    why = 2
                else:
                    why = 3
                if not f >= 0.0:  # no stop on the losing side of the price, or no volatility
                    f = 0.0
                    if entry and go:
                        go = False
                        skipped[n_skipped, 0], skipped[n_skipped, 1] = g, s
                        skipped[n_skipped, 2] = why
                        n_skipped += 1
                opts[O_SIZE] = f * eq_now
            before = cash
            entries = st[N_ENTRIES]
            credit = max(credit_rate * eq_now, 0.0) if credit_rate > 0.0 else 0.0
            cash, free_cash, n_orders, n_trips = _step_nb(
                states, s, g, cash, free_cash, credit, open_[t, s], high[t, s], low[t, s],
                close[t, s], go and le[t, s], lx[t, s], go and se[t, s], sx[t, s], sp, tp,
                at_open, use_levels[s], opts, fills, orders, n_orders, trips, n_trips,
                entry_idx, order_sym, trip_sym, order_trip)
            if entry and go and st[N_ENTRIES] == entries:
                skipped[n_skipped, 0], skipped[n_skipped, 1], skipped[n_skipped, 2] = g, s, 1
                n_skipped += 1
            flow[s] += cash - before
            n_open += (1 if st[POSITION] != 0.0 else 0) - (1 if was_open else 0)
            eq_now += (cash - before) + (st[POSITION] - pos_before) * mark[s]
        if at_open:  # orders at the open: this close is known only now
            for s in range(n_s):
                if has_bar[t, s]:
                    mark[s] = close[t, s]
        if credit_rate > 0.0 and n_open > 0:  # the maintenance margin, at the closes
            gross = 0.0
            for s in range(n_s):
                gross += abs(states[s, POSITION]) * mark[s]
            if _equity_nb(cash, states, mark) < maintenance * gross:
                for s in range(n_s):
                    st = states[s]
                    if st[POSITION] == 0.0:
                        continue
                    before = cash
                    st[CASH] = cash + gross  # whatever it takes to buy back a short
                    st[FREE_CASH] = free_cash + gross
                    if exit_nb(st, mark[s], opts[O_SLIPPAGE], R_LIQUIDATION, opts, fills[0]):
                        n_orders, n_trips = _book_nb(s, g, 1, fills, orders, n_orders, trips,
                                                     n_trips, entry_idx, order_sym, trip_sym,
                                                     order_trip)
                    cash, free_cash = st[CASH] - gross, st[FREE_CASH] - gross
                    flow[s] += cash - before
                    n_open -= 1 if st[POSITION] == 0.0 else 0
                blown = _equity_nb(cash, states, mark) <= 0.0
        total = cash
        for s in range(n_s):
            v = states[s, POSITION] * mark[s]
            total += v
            value[t, s] = v
            pnl[t, s] = flow[s] + v
        equity[t] = total
        cash_out[t] = cash
        n_open_out[t] = n_open
    # round trips still open, marked at their symbol's last close
    n_last = 0
    for s in range(n_s):
        if last_idx[s] >= 0 and open_trip_nb(states[s], entry_idx[s], last_idx[s],
                                             mark[s]).shape[0]:
            n_last += 1
    all_trips = np.empty((n_trips + n_last, 13))
    all_trip_sym = np.empty(n_trips + n_last, dtype=np.int64)
    all_trips[:n_trips] = trips[:n_trips]
    all_trip_sym[:n_trips] = trip_sym[:n_trips]
    q = n_trips
    for s in range(n_s):
        if last_idx[s] < 0:
            continue
        last = open_trip_nb(states[s], entry_idx[s], last_idx[s], mark[s])
        if last.shape[0]:
            all_trips[q] = last[0]
            all_trip_sym[q] = s
            q += 1
    for s in range(n_s):
        states[s, CASH] = cash
        states[s, FREE_CASH] = free_cash
    ambiguous = 0.0
    book = np.empty((n_s, 4))
    for s in range(n_s):
        ambiguous += states[s, AMBIGUOUS]
        book[s, 0], book[s, 1] = mark[s], flow[s]
        book[s, 2], book[s, 3] = entry_idx[s], last_idx[s]
    acct = np.array([cash, free_cash, 1.0 if blown else 0.0])
    return (equity, cash_out, value, pnl, n_open_out, orders[:n_orders].copy(),
            order_sym[:n_orders].copy(), all_trips, all_trip_sym, skipped[:n_skipped].copy(),
            states, ambiguous, book, acct, order_trip[:n_orders].copy())
