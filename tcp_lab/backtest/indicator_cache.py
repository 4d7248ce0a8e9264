"""Compute each indicator once per distinct argument during a sweep of any strategy.

A generic sweep calls ``strategy.compute(candles)`` once per parameter
combination. Most combinations share indicators (``rsi_reversion`` with 5
periods x 20 ``lower`` x 20 ``upper`` needs 5 RSIs, not 2,000), but only the
strategy knows which parameters feed which indicator. :func:`indicator_cache`
finds out by memoizing the shared indicator functions of
:mod:`tcp_lab.strategies.indicators` while it is active: a call whose array
arguments are the candles' own columns is keyed by the function, the column
names and the other arguments — in effect by the strategy's sub-parameters —
and computed once. Other calls (on derived arrays) pass straight through.

The indicators route their calls through
:data:`tcp_lab.strategies.indicators.INDICATOR_MEMO`, a ``ContextVar``: the memo
is active only in the thread (or task) running the ``with`` block, so a bot
running in another thread never sees it. Callers get a copy of the cached
result, so a strategy that edits an indicator array in place cannot spoil it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["indicator_cache"]

def _key_of(value: Any, columns: dict[tuple[int, int], str]) -> Any:
    """A hashable key for one argument, or ``None`` when the call is not cacheable."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return None
        return columns.get((value.__array_interface__["data"][0], value.shape[0]))
    if isinstance(value, (int, float, str, bool, type(None))):
        return (type(value).__name__, value)
    return None


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return value


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    return 64


@contextmanager
def indicator_cache(
    candles: pd.DataFrame, *, max_bytes: int = 512 * 2**20
) -> Iterator[dict[str, int]]:
    """Memoize the shared indicators on ``candles`` while the block runs.

    Parameters
    ----------
    candles
        The candle frame the strategy will be computed on (its columns are
        the cacheable inputs).
    max_bytes
        Least recently used results are dropped beyond this size.

    Yields
    ------
    dict
        Counters ``{"hits": ..., "misses": ...}``, updated as the block runs.

    Examples
    --------
    >>> from tcp_lab.strategies import get_strategy
    >>> from tcp_lab.testing import make_candles
    >>> c = make_candles(500)
    >>> cls = type(get_strategy("rsi_reversion"))
    >>> with indicator_cache(c) as stats:
    ...     for lower in (20.0, 25.0, 30.0):
    ...         _ = cls({"period": 14, "lower": lower}).compute(c)
    >>> stats
    {'hits': 2, 'misses': 1}
    """
    from tcp_lab.strategies.indicators import INDICATOR_MEMO

    columns = {}
    for name in candles.columns:
        arr = candles[name].to_numpy()
        columns[(arr.__array_interface__["data"][0], arr.shape[0])] = name
    memo = _Memo(columns, max_bytes)
    token = INDICATOR_MEMO.set(memo)
    try:
        yield memo.stats
    finally:
        INDICATOR_MEMO.reset(token)


class _Memo:
    """Least-recently-used results of indicator calls on the candles' own columns."""

    def __init__(self, columns: dict[tuple[int, int], str], max_bytes: int) -> None:
        self.columns = columns
        self.max_bytes = max_bytes
        self.cache: OrderedDict[tuple, Any] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0}
        self.size = 0

    def call(self, func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        arg_keys = tuple(_key_of(a, self.columns) for a in args)
        kw_keys = tuple((k, _key_of(v, self.columns)) for k, v in sorted(kwargs.items()))
        if None in arg_keys or any(k[1] is None for k in kw_keys):
            return func(*args, **kwargs)  # not on the candles' own columns
        key = (func.__qualname__, arg_keys, kw_keys)
        if key in self.cache:
            self.stats["hits"] += 1
            self.cache.move_to_end(key)
            return _copy(self.cache[key])
        self.stats["misses"] += 1
        value = func(*args, **kwargs)
        self.cache[key] = _copy(value)
        self.size += _nbytes(value)
        while self.size > self.max_bytes and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.size -= _nbytes(old)
        return value
