"""Per-minute summaries of trades and their merging into longer buckets (numpy only).

A summary row holds, in integer ticks and lots: ``count open high low close lots quote
buy_lots buy_quote``. An empty row is flat at the previous close, as Binance's klines.
"""

from __future__ import annotations

import numpy as np

__all__ = ["summarize_minutes", "merge_rows"]

_BIG = np.iinfo(np.int64).max


def summarize_minutes(minute: np.ndarray, ticks: np.ndarray, lots: np.ndarray, maker: np.ndarray,
               n_minutes: int, prev_close: int) -> dict[str, np.ndarray]:
    """Per-minute OHLCV (ticks/lots) of trades sorted by time; empty minutes carry the close."""
    count = np.bincount(minute, minlength=n_minutes).astype(np.int64)
    nonempty = count > 0
    starts = np.concatenate(([0], np.cumsum(count)[:-1]))[nonempty]
    ends = starts + count[nonempty]
    o = np.zeros(n_minutes, np.int64)
    h = np.zeros(n_minutes, np.int64)
    lo = np.zeros(n_minutes, np.int64)
    c = np.zeros(n_minutes, np.int64)
    if len(ticks):
        o[nonempty] = ticks[starts]
        c[nonempty] = ticks[ends - 1]
        h[nonempty] = np.maximum.reduceat(ticks, starts)
        lo[nonempty] = np.minimum.reduceat(ticks, starts)
    last = np.maximum.accumulate(np.where(nonempty, np.arange(n_minutes), -1))
    carried = np.where(last >= 0, c[np.maximum(last, 0)], prev_close)
    o, h, lo, c = (np.where(nonempty, v, carried) for v in (o, h, lo, c))
    quote = (ticks * lots).astype(np.float64)
    buy = ~maker
    weights = lambda v: np.bincount(minute, v, minlength=n_minutes)  # noqa: E731
    return {
        "count": count, "open": o, "high": h, "low": lo, "close": c,
        "lots": np.rint(weights(lots.astype(np.float64))).astype(np.int64),
        "quote": weights(quote),
        "buy_lots": np.rint(weights(np.where(buy, lots, 0).astype(np.float64))).astype(np.int64),
        "buy_quote": weights(np.where(buy, quote, 0.0)),
    }


def merge_rows(rows: dict[str, np.ndarray], bucket: np.ndarray) -> tuple[np.ndarray, dict]:
    """Merge consecutive summary rows with equal ``bucket`` (non-decreasing) into one each.

    Open is the first trade's, high/low over rows with trades, close the last row's
    (carried forward), so an empty bucket is flat at the previous close.
    """
    starts = np.flatnonzero(np.diff(bucket, prepend=bucket[0] - 1))
    ends = np.append(starts[1:], len(bucket)) - 1
    nonempty = rows["count"] > 0
    first_ne = np.minimum.reduceat(np.where(nonempty, np.arange(len(bucket)), _BIG), starts)
    out = {k: np.add.reduceat(rows[k], starts) for k in ("count", "lots", "quote", "buy_lots",
                                                          "buy_quote")}
    close = rows["close"][ends]
    has = out["count"] > 0
    out["open"] = np.where(has, rows["open"][np.where(has, first_ne, 0)], close)
    out["high"] = np.where(has, np.maximum.reduceat(np.where(nonempty, rows["high"], -_BIG),
                                                    starts), close)
    out["low"] = np.where(has, np.minimum.reduceat(np.where(nonempty, rows["low"], _BIG),
                                                   starts), close)
    out["close"] = close
    return starts, out
