"""A bot's trailing window of closed candles, as NumPy arrays.

The arrays are the ones :meth:`~tcp_lab.strategies.BaseStrategy.compute_arrays`
takes (``ts`` as int64 microseconds, then ``open high low close volume
trade_count``), so a strategy with an array path runs on them directly; the
others get a DataFrame built from them (:func:`~tcp_lab.strategies.decision.frame_of`).
A window from the store and one grown from bus messages hold the same columns
and dtypes, so the strategy sees the same thing either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tcp_lab.bus import CandleMessage
from tcp_lab.strategies import candle_arrays
from tcp_lab.timeframes import CANDLE_COLUMNS

__all__ = ["Window", "of_frame", "of_message", "appended", "rows", "last_ts", "last_bar"]

Window = dict[str, np.ndarray]
_DTYPES = {"ts": np.int64, "trade_count": np.int64}


def _dtype(column: str) -> type:
    return _DTYPES.get(column, np.float64)


def of_frame(frame: pd.DataFrame) -> Window:
    """The window of a candle frame (index = close times), oldest first.

    :func:`~tcp_lab.strategies.candle_arrays` of its candle columns, each in
    the dtype a message gives it.
    """
    arrays = candle_arrays(frame[list(CANDLE_COLUMNS)])
    return {k: np.ascontiguousarray(v, dtype=_dtype(k)) for k, v in arrays.items()}


def of_message(msg: CandleMessage) -> Window:
    """A one-candle window."""
    out: Window = {"ts": np.array([msg.ts.value // 1000], dtype=np.int64)}
    for c in CANDLE_COLUMNS:
        out[c] = np.array([getattr(msg, c)], dtype=_dtype(c))
    return out


def appended(window: Window, new: Window, size: int) -> Window:
    """``window`` then ``new``, keeping the last ``size`` candles (new arrays)."""
    start = max(len(window["ts"]) - max(size - len(new["ts"]), 0), 0)
    return {k: np.concatenate((window[k][start:], new[k]))[-size:] for k in window}


def rows(window: Window, start: int, stop: int) -> Window:
    """Rows ``start:stop`` (views, no copy)."""
    return {k: v[start:stop] for k, v in window.items()}


def last_ts(window: Window) -> pd.Timestamp | None:
    """Close time of the newest candle (None when empty)."""
    ts = window["ts"]
    return pd.Timestamp(int(ts[-1]), unit="us", tz="UTC") if len(ts) else None


def last_bar(window: Window) -> tuple[float, float, float, float]:
    """Open, high, low and close of the newest candle."""
    return (float(window["open"][-1]), float(window["high"][-1]), float(window["low"][-1]),
            float(window["close"][-1]))
