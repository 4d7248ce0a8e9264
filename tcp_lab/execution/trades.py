"""Market trades indexed by candle: which trades fall in each bar, and their extremes.

A candle stamped ``T`` holds the trades in ``(T_prev, T]``; after an entry at
the close of the candle stamped ``T``, the trades that count are those after
``T`` — exactly the trades of the next bars. :func:`bar_index_nb` finds, in
one pass, each bar's slice of the (time-ordered) trades and its lowest and
highest price, so the kernel scans only bars whose range reaches a level.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["bar_index_nb"]


@njit(cache=True, parallel=True)
def bar_index_nb(bar_ts, trade_ts, trade_price):
    """Per bar: ``lo, hi`` (its trades are ``[lo, hi)``), lowest and highest trade price.

    ``bar_ts`` are the candles' close times and ``trade_ts`` the trades' times,
    both int64 in the same unit and ascending. Trades at or before the first
    bar's previous close (unknown) go to the first bar; trades after the last
    bar are ignored. A bar without trades has ``lo == hi`` and NaN extremes.

    One pass over the trades, cut into blocks of bars that run in parallel
    (each block finds its first trade by a binary search).
    """
    n = bar_ts.shape[0]
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    mn = np.full(n, np.nan)
    mx = np.full(n, np.nan)
    blocks = max(1, min(n, 64))
    for blk in prange(blocks):
        first, last = n * blk // blocks, n * (blk + 1) // blocks
        k = 0 if first == 0 else np.searchsorted(trade_ts, bar_ts[first - 1], side="right")
        _index_bars_nb(bar_ts, trade_ts, trade_price, first, last, k, lo, hi, mn, mx)
    return lo, hi, mn, mx


@njit(cache=True)
def _index_bars_nb(bar_ts, trade_ts, trade_price, first, last, k, lo, hi, mn, mx):
    m = trade_ts.shape[0]
    for i in range(first, last):
        lo[i] = k
        a = np.inf
        b = -np.inf
        end = bar_ts[i]
        while k < m and trade_ts[k] <= end:
            p = trade_price[k]
            a = min(a, p)
            b = max(b, p)
            k += 1
        if k > lo[i]:
            mn[i] = a
            mx[i] = b
        hi[i] = k
