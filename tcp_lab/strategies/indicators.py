"""Indicator functions shared by the strategies: numpy arrays in, numpy arrays out.

Every function is causal (row ``t`` uses rows ``<= t`` only) and returns
``NaN`` where the indicator is not yet defined (the first ``window - 1`` rows).
Recursive indicators (EMA, RSI, MACD) start from the first value; how many
candles they need to forget that start is :func:`ewm_settle`.

Examples
--------
>>> import numpy as np
>>> sma(np.array([1.0, 2.0, 3.0, 4.0]), 2)
array([nan, 1.5, 2.5, 3.5])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import numba
import numpy as np
import pandas as pd

__all__ = [
    "sma",
    "sma_many",
    "ema",
    "rolling_std",
    "rsi",
    "macd",
    "bollinger",
    "crossed_above",
    "crossed_below",
    "ewm_settle",
]


class IndicatorMemo(Protocol):
    """What a sweep installs to compute each indicator once per distinct input."""

    def call(self, func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any: ...


F = TypeVar("F", bound=Callable[..., Any])

#: The memo of the current thread/task, if any (see ``tcp_lab.backtest.indicator_cache``).
#: A ContextVar, so a sweep in one thread never affects a bot in another.
INDICATOR_MEMO: ContextVar[IndicatorMemo | None] = ContextVar("INDICATOR_MEMO", default=None)


def memoizable(func: F) -> F:
    """Route calls through the active :data:`INDICATOR_MEMO` (plain call when none)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        memo = INDICATOR_MEMO.get()
        if memo is None:
            return func(*args, **kwargs)
        return memo.call(func, args, kwargs)

    return wrapper  # type: ignore[return-value]


def _series(x: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(x, dtype=np.float64), copy=False)


@numba.njit(cache=True, nogil=True)
def _rolling_means_nb(x: np.ndarray, windows: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Mean of the last ``windows[j]`` values in row ``j``; NaN while fewer, or when one is NaN.

    A running sum with Kahan compensation (the algorithm pandas uses), O(n)
    per window. The windows run side by side over ``x``: each keeps its own
    sum and compensation, so its result is the same as alone, while the
    processor overlaps the windows' dependent additions.
    """
    n, k = x.size, windows.size
    out = np.full((k, n), np.nan)
    total = np.zeros(k)
    comp = np.zeros(k)
    nans = np.zeros(k, dtype=np.int64)
    for i in range(n):
        v = x[i]
        for j in range(k):
            window = windows[j]
            tot, c = total[j], comp[j]
            if np.isnan(v):
                nans[j] += 1
            else:
                y = v - c
                t = tot + y
                c = (t - tot) - y
                tot = t
            if i >= window:
                old = x[i - window]
                if np.isnan(old):
                    nans[j] -= 1
                else:
                    y = -old - c
                    t = tot + y
                    c = (t - tot) - y
                    tot = t
            total[j], comp[j] = tot, c
            if i >= window - 1 and nans[j] == 0:
                out[j, i] = tot / window
    return out


@memoizable
def sma(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over ``window`` values (NaN for the first ``window - 1``)."""
    return sma_many(x, [window])[0]


def sma_many(x: np.ndarray, windows: Any) -> np.ndarray:
    """:func:`sma` for several windows in one pass: row ``j`` is ``sma(x, windows[j])``,
    bit for bit (a sweep's table of averages)."""
    w = np.asarray(windows, dtype=np.int64).reshape(-1)
    return _rolling_means_nb(np.ascontiguousarray(x, dtype=np.float64), w)


@memoizable
def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation (``ddof=0``) over ``window`` values."""
    return _series(x).rolling(window, min_periods=window).std(ddof=0).to_numpy()


@memoizable
def ema(x: np.ndarray, span: int, *, min_periods: int | None = None) -> np.ndarray:
    """Exponential moving average, ``alpha = 2 / (span + 1)``, started at the first value.

    ``y[0] = x[0]``, ``y[t] = alpha * x[t] + (1 - alpha) * y[t-1]``; NaN for the
    first ``min_periods - 1`` rows (default ``span``). Leading NaNs in ``x``
    are skipped.
    """
    mp = span if min_periods is None else min_periods
    return _series(x).ewm(span=span, adjust=False, min_periods=mp).mean().to_numpy()


@memoizable
def rsi(x: np.ndarray, period: int) -> np.ndarray:
    """Wilder's relative strength index in 0..100.

    Average gain and loss are exponential with ``alpha = 1 / period`` over the
    price changes; ``RSI = 100 - 100 / (1 + gain / loss)`` (100 when there was
    no loss). NaN for the first ``period`` rows.
    """
    s = _series(x)
    delta = s.diff()
    up = delta.clip(lower=0.0).ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean()
    down = (-delta).clip(lower=0.0).ewm(alpha=1.0 / period, adjust=False, min_periods=period)
    gain, loss = up.to_numpy(), down.mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + gain / loss)
    out[(loss == 0) & (gain > 0)] = 100.0
    out[(loss == 0) & (gain == 0)] = 50.0
    return out


@memoizable
def macd(
    x: np.ndarray, fast: int, slow: int, signal: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line (``ema(fast) - ema(slow)``), its signal line (``ema(signal)``) and histogram."""
    line = ema(x, fast, min_periods=slow) - ema(x, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


@memoizable
def bollinger(x: np.ndarray, window: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: middle (SMA), upper and lower (middle ± k population std)."""
    mid = sma(x, window)
    dev = k * rolling_std(x, window)
    return mid, mid + dev, mid - dev


def _pair(a: np.ndarray, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``a`` as float64 and ``b`` as a float64 array of its shape (a scalar broadcast)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if b.shape != a.shape:
        b = np.broadcast_to(b, a.shape)
    return a, b


def crossed_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True where ``a > b`` now and ``a <= b`` on the previous row (NaN never crosses)."""
    a, b = _pair(a, b)
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True where ``a < b`` now and ``a >= b`` on the previous row (NaN never crosses)."""
    a, b = _pair(a, b)
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[1:] < b[1:]) & (a[:-1] >= b[:-1])
    return out


def ewm_settle(alpha: float, tol: float = 1e-9) -> int:
    """Rows after which an exponential average's starting value weighs less than ``tol``.

    The start keeps weight ``(1 - alpha) ** k`` after ``k`` rows; a trailing
    window this long gives the full run's value to about ``tol`` (relative).

    Examples
    --------
    >>> ewm_settle(0.5, 1e-3)
    10
    """
    if alpha >= 1.0:
        return 1
    return int(math.ceil(math.log(tol) / math.log(1.0 - alpha)))
