"""Numba kernel behind :func:`tcp_lab.timeframes.validate_candles`.

One pass over the index and the candle columns finds, for each rule of the
candle schema, the first row that breaks it. The kernel takes and returns
numpy arrays only; :mod:`tcp_lab.timeframes` turns pandas into arrays and, when
a row breaks a rule, builds the error message with its (slower) numpy code.

Imported lazily by :func:`~tcp_lab.timeframes.validate_candles`, so that
``import tcp_lab`` does not import numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

__all__ = ["RULES", "ORDER", "first_bad_rows", "first_bad_rows_nb"]

#: The rules, in the order of the kernel's output.
RULES = (
    "price",  # open/high/low/close finite and > 0
    "volume",  # volume and trade_count finite and >= 0
    "whole",  # float trade_count a whole number
    "bracket",  # low <= min(open, close), max(open, close) <= high
    "order",  # timestamps strictly increasing, no NaT
    "grid",  # timestamps multiples of the timeframe
    "exact",  # int64 trade_count <= 2**53 (survives the float64 round trip)
)
ORDER = RULES.index("order")
_NAT = np.iinfo(np.int64).min
_EXACT = 2**53
_SAFE = 2**62  # |a - b| < 2**63 for stamps within ±_SAFE (year ±146,000)

# One signature, compiled once (and cached): C-contiguous arrays, read-only or
# not (pandas 3 hands out read-only views); other layouts are TypeErrors.
_F8 = types.Array(types.float64, 1, "C", readonly=True)
_I8 = types.Array(types.int64, 1, "C", readonly=True)
_SIGNATURE = types.int64[::1](_I8, _F8, _F8, _F8, _F8, _F8, _F8, _I8, types.int64)


@njit(cache=True)
def _broken_rules_nb(o, h, lo, c, v, k, j, use_f, t, tf_us):
    """Which rules one row breaks, but the order: the numpy reference's masks."""
    inf = np.inf
    # NaN fails every comparison, so ``not (0 < x < inf)`` catches it too
    price = not (0 < o < inf and 0 < h < inf and 0 < lo < inf and 0 < c < inf)
    # np.maximum/np.minimum of (open, close) are NaN when either is NaN
    bracket = h < lo or (o == o and c == c and (h < o or h < c or lo > o or lo > c))
    if use_f:
        volume = not (0 <= v < inf and 0 <= k < inf)
        whole = not (np.floor(k) == k and abs(k) < inf)  # k % 1 != 0
        exact = False
    else:
        volume = not (0 <= v < inf) or j < 0
        whole = False
        exact = j > _EXACT
    grid = tf_us > 0 and t % tf_us != 0
    return (price, volume, whole, bracket, False, grid, exact)


@njit(_SIGNATURE, cache=True)
def first_bad_rows_nb(ts, open_, high, low, close, volume, count_f, count_i, tf_us):
    """First row breaking each rule of :data:`RULES`, ``-1`` where none does.

    Parameters
    ----------
    ts : int64 array
        Candle close times (any unit; ``tf_us`` must be in the same unit).
    open_, high, low, close, volume : float64 arrays
        The candle columns, as long as ``ts``. All arrays are C-contiguous.
    count_f, count_i : float64 array, int64 array
        ``trade_count``: exactly one of them is as long as ``ts``, the other
        is empty (a float64 count must also be a whole number).
    tf_us : int
        Timeframe length; ``0`` skips the grid rule.

    Returns
    -------
    ndarray of int64
        One row index per rule, in the order of :data:`RULES`.
    """
    first = np.full(len(RULES), -1, dtype=np.int64)
    use_f = count_f.shape[0] == ts.shape[0]
    inf = np.inf
    prev = _NAT
    for i in range(ts.shape[0]):
        o, h, lo, c, v, t = open_[i], high[i], low[i], close[i], volume[i], ts[i]
        k = count_f[i] if use_f else 0.0
        j = 0 if use_f else count_i[i]
        # fast test of a clean row: bitwise & (no short circuit, no branches);
        # 0 < low <= open, close <= high < inf implies positive finite prices
        ok = (lo > 0) & (lo <= o) & (lo <= c) & (h >= o) & (h >= c) & (h < inf)
        ok &= (v >= 0) & (v < inf)
        if use_f:
            ok &= (k >= 0) & (k < inf) & (np.floor(k) == k)
        else:
            ok &= (j >= 0) & (j <= _EXACT)
        if tf_us > 0:
            # a step of exactly tf (either way) from a row on the grid stays on it,
            # and until the first row off the grid every earlier row is on it; steps
            # only between stamps far from int64's ends (numba's integer overflow is
            # undefined behaviour, not wrap-around)
            near = -_SAFE < t < _SAFE and -_SAFE < prev < _SAFE  # prev = NaT at i = 0
            if not (near and (t - prev == tf_us or prev - t == tf_us)):
                ok &= t % tf_us == 0
        if not ok:
            broken = _broken_rules_nb(o, h, lo, c, v, k, j, use_f, t, tf_us)
            for r in range(len(RULES)):
                if broken[r] and first[r] < 0:
                    first[r] = i
        if not t > prev and first[4] < 0:  # prev is NaT before the first row
            first[4] = i
        prev = t
    return first


def first_bad_rows(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    trade_count: np.ndarray,
    tf_us: int,
) -> np.ndarray:
    """:func:`first_bad_rows_nb` for any 1-d arrays; ``trade_count`` float64 or int64.

    Copies only the arrays that are not C-contiguous.
    """
    if trade_count.dtype == np.int64:
        count_f, count_i = np.empty(0, dtype=np.float64), trade_count
    else:
        count_f, count_i = trade_count, np.empty(0, dtype=np.int64)
    arrays = (ts, open_, high, low, close, volume, count_f, count_i)
    return first_bad_rows_nb(*(np.ascontiguousarray(a) for a in arrays), tf_us)
