"""Numba kernels for candle aggregation: numpy arrays in, numpy arrays out.

Every kernel is a single pass over arrays sorted by time. Timestamps are int64
epoch microseconds; a value ``t`` belongs to the bucket that closes at
``ceil(t / tf) * tf`` (right-aligned, anchored at the epoch), so a trade exactly
on a boundary belongs to the candle stamped with that boundary.

Sums are plain sequential float64 additions in input order, the same order the
streaming path uses, so batch, chunked and streaming results agree bit for bit
when they see the trades in the same order.

The pandas-facing wrappers live in :mod:`tcp_lab.data._trades` and
:mod:`tcp_lab.data.aggregate`. Inputs are passed as read-only C-contiguous arrays
so that each kernel compiles exactly one specialisation (cached on disk).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "OK",
    "BAD_PRICE",
    "BAD_AMOUNT",
    "UNSORTED",
    "IDS_NOT_INCREASING",
    "BAD_TS",
    "close_time_nb",
    "aggregate_trades_nb",
    "resample_candles_nb",
]

#: Kernel status codes (first element of the returned tuple).
OK = 0
BAD_PRICE = 1  # NaN, infinite, zero or negative price at ``bad_index``
BAD_AMOUNT = 2  # NaN, infinite or negative amount at ``bad_index``
UNSORTED = 3  # not sorted by (ts, id), or a trade before the carried bucket
IDS_NOT_INCREASING = 4  # ids not strictly increasing (possible duplicates)
BAD_TS = 5  # a missing timestamp (NaT)
NAT = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)
def close_time_nb(t, tf_us):
    """Close time (epoch us) of the bucket holding ``t``: ``ceil(t / tf) * tf``."""
    return -((-t) // tf_us) * tf_us


@njit(cache=True, nogil=True)
def aggregate_trades_nb(
    ts,
    price,
    amount,
    ids,
    has_ids,
    strict_ids,
    tf_us,
    has_init,
    init_end,
    init_open,
    init_high,
    init_low,
    init_close,
    init_volume,
    init_pv,
    init_count,
):
    """Aggregate trades sorted by (ts, id) into right-aligned OHLCV buckets.

    Parameters
    ----------
    ts, price, amount
        int64 epoch us, float64, float64; sorted by ``ts`` (then ``ids``).
    ids, has_ids
        int64 trade ids (ignored, may be empty, when ``has_ids`` is False).
    strict_ids
        When True, ids must be strictly increasing over the whole array (which
        proves there are no duplicates); otherwise only within equal ``ts``.
    tf_us
        Bucket length in microseconds.
    has_init, init_*
        A carried, still-open bucket (from a previous chunk or batch) that the
        first trades continue: sums keep accumulating in the same order.

    Returns
    -------
    tuple
        ``(status, bad_index, end, open, high, low, close, volume, pv, count,
        start)``: one entry per non-empty bucket; ``pv`` is sum(price*amount),
        ``start`` the index of each bucket's first trade (0 for a continued
        carried bucket). On a non-OK status the arrays are empty (the caller
        locates the offending rows; ``bad_index`` is -1, kept for the layout).
    """
    n = ts.shape[0]
    cap = 1
    status = OK
    if n > 0:
        first_end = init_end if has_init else close_time_nb(ts[0], tf_us)
        last_end = close_time_nb(ts[n - 1], tf_us)
        if ts[0] == NAT:  # when sorted, a missing time (NaT) comes first
            cap, status = 0, BAD_TS
        elif last_end < first_end or (has_init and ts[0] <= init_end - tf_us):
            cap, status = 0, UNSORTED
        else:
            cap = (last_end - first_end) // tf_us + 1
            if cap <= 0 or cap > n + 1:  # overflow from a NaT further on, or sparse input
                cap = n + 1
    out_end = np.empty(cap, np.int64)
    out_open = np.empty(cap, np.float64)
    out_high = np.empty(cap, np.float64)
    out_low = np.empty(cap, np.float64)
    out_close = np.empty(cap, np.float64)
    out_volume = np.empty(cap, np.float64)
    out_pv = np.empty(cap, np.float64)
    out_count = np.empty(cap, np.int64)
    out_start = np.empty(cap, np.int64)
    if cap == 0:
        return (status, -1, out_end, out_open, out_high, out_low, out_close,
                out_volume, out_pv, out_count, out_start)

    k = -1
    end = np.int64(0)
    o = h = lo = c = v = pv = 0.0
    cnt = np.int64(0)
    if has_init:
        k = 0
        end = init_end
        o, h, lo, c = init_open, init_high, init_low, init_close
        v, pv, cnt = init_volume, init_pv, init_count
        out_start[0] = 0
    # Checks cost almost nothing: sortedness is one compare per trade; bad prices
    # and amounts show up in the per-bucket results (a NaN or infinity poisons the
    # sums, a non-positive price the low) plus a running minimum of the amounts.
    # The wrapper locates the offending rows when a check fails.
    unsorted = False
    ids_down = False
    amount_min = 0.0
    prev_t = ts[0] if n > 0 else np.int64(0)
    prev_id = np.int64(0)
    if has_ids and n > 0:
        prev_id = ids[0]
    for i in range(n):
        t = ts[i]
        p = price[i]
        a = amount[i]
        unsorted |= t < prev_t
        if a < amount_min:
            amount_min = a
        if has_ids:
            cur_id = ids[i]
            down = (cur_id <= prev_id) & (i > 0)
            ids_down |= down
            unsorted |= down & (t == prev_t)
            prev_id = cur_id
        prev_t = t
        if k >= 0 and t <= end:
            if p > h:
                h = p
            if p < lo:
                lo = p
            c = p
            v += a
            pv += p * a
            cnt += 1
        else:
            if k + 1 >= cap:  # more buckets than sorted input can have
                unsorted = True
                break
            if k >= 0:
                out_end[k] = end
                out_open[k] = o
                out_high[k] = h
                out_low[k] = lo
                out_close[k] = c
                out_volume[k] = v
                out_pv[k] = pv
                out_count[k] = cnt
            k += 1
            end = close_time_nb(t, tf_us)
            o = h = lo = c = p
            v = a
            pv = p * a
            cnt = 1
            out_start[k] = i
    if k >= 0:
        out_end[k] = end
        out_open[k] = o
        out_high[k] = h
        out_low[k] = lo
        out_close[k] = c
        out_volume[k] = v
        out_pv[k] = pv
        out_count[k] = cnt
    bad_amount = amount_min < 0.0
    bad_price = False
    for j in range(k + 1):
        bad_amount |= not (np.abs(out_volume[j]) < np.inf)
        bad_price |= not ((out_low[j] > 0.0) & (np.abs(out_high[j]) < np.inf)
                          & (np.abs(out_pv[j]) < np.inf))
    if bad_amount:
        status = BAD_AMOUNT
    elif bad_price:
        status = BAD_PRICE
    elif unsorted:
        status = UNSORTED
    elif strict_ids and ids_down:
        status = IDS_NOT_INCREASING
    if status != OK:
        return (status, -1, out_end[:0], out_open[:0], out_high[:0], out_low[:0],
                out_close[:0], out_volume[:0], out_pv[:0], out_count[:0], out_start[:0])
    m = k + 1
    return (OK, -1, out_end[:m], out_open[:m], out_high[:m], out_low[:m], out_close[:m],
            out_volume[:m], out_pv[:m], out_count[:m], out_start[:m])


@njit(cache=True, nogil=True)
def resample_candles_nb(ts, open_, high, low, close, volume, count, pv, tf_us):
    """Aggregate candles (close times strictly increasing) into ``tf_us`` buckets.

    A source candle stamped ``T`` goes to the bucket closing at ``ceil(T / tf)
    * tf``; the caller guarantees the source length divides ``tf_us`` and the
    stamps lie on the source grid, so no source candle straddles two buckets.

    Returns
    -------
    tuple
        ``(end, open, high, low, close, volume, count, pv)``, one entry per
        non-empty bucket; ``pv`` is the summed ``pv`` (sum of price*amount).
    """
    n = ts.shape[0]
    out_end = np.empty(n, np.int64)
    out_open = np.empty(n, np.float64)
    out_high = np.empty(n, np.float64)
    out_low = np.empty(n, np.float64)
    out_close = np.empty(n, np.float64)
    out_volume = np.empty(n, np.float64)
    out_count = np.empty(n, np.int64)
    out_pv = np.empty(n, np.float64)
    k = -1
    end = np.int64(0)
    for i in range(n):
        t = ts[i]
        if k >= 0 and t <= end:
            if high[i] > out_high[k]:
                out_high[k] = high[i]
            if low[i] < out_low[k]:
                out_low[k] = low[i]
            out_close[k] = close[i]
            out_volume[k] += volume[i]
            out_count[k] += count[i]
            out_pv[k] += pv[i]
        else:
            k += 1
            end = close_time_nb(t, tf_us)
            out_end[k] = end
            out_open[k] = open_[i]
            out_high[k] = high[i]
            out_low[k] = low[i]
            out_close[k] = close[i]
            out_volume[k] = volume[i]
            out_count[k] = count[i]
            out_pv[k] = pv[i]
    m = k + 1
    return (out_end[:m], out_open[:m], out_high[:m], out_low[:m], out_close[:m],
            out_volume[:m], out_count[:m], out_pv[:m])
