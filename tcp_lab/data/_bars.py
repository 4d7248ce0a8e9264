"""Partial candles, the kernel driver and the emitted-candle record.

:class:`Bar` is a candle under construction plus the (ts, id) keys of its first
and last trade, so late or out-of-order trades merge correctly;
:func:`run_trades_kernel` runs the numba kernel over :class:`TradeArrays`
(continuing a carried ``Bar``); :func:`candle_frame` builds the candle frame;
:class:`ClosedCandle` is what :class:`~tcp_lab.data.streaming.StreamingAggregator`
emits. Sums are sequential float64 additions in trade order everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from tcp_lab.data import _kernels as K
from tcp_lab.data._trades import (
    EMPTY_IDS,
    TradeArrays,
    drop_duplicate_ids,
    raise_bad_values,
    sort_trades,
)
from tcp_lab.errors import DataError
from tcp_lab.timeframes import Timeframe, empty_candles, parse_timeframe

__all__ = ["Bar", "BeforeCarriedError", "ClosedCandle", "KernelResult", "candle_frame",
           "run_trades_kernel"]


class BeforeCarriedError(DataError):
    """Trades that belong before the carried (still open) bucket; callers reword it."""


class KernelResult(NamedTuple):
    """Buckets produced by :func:`aggregate_trades_nb` and the trades they came from."""

    trades: TradeArrays
    end: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    pv: np.ndarray
    count: np.ndarray
    start: np.ndarray
    duplicates: int


def _before(ts: int, id_: int | None, ts2: int, id2: int | None) -> bool:
    """Whether trade (ts, id_) sorts strictly before (ts2, id2); ties keep arrival order."""
    if ts != ts2:
        return ts < ts2
    return id_ is not None and id2 is not None and id_ < id2


class Bar:
    """A partial candle plus the keys (ts, id) of its first and last trade.

    The keys let an out-of-order trade (or another partial candle) be merged
    while keeping open = earliest trade and close = latest trade.
    """

    __slots__ = ("end", "open", "high", "low", "close", "volume", "pv", "count",
                 "first_ts", "first_id", "last_ts", "last_id")

    before = staticmethod(_before)

    def __init__(self, end: int, ts: int, price: float, amount: float, id_: int | None) -> None:
        self.end = end
        self.open = self.high = self.low = self.close = price
        self.volume = amount
        self.pv = price * amount
        self.count = 1
        self.first_ts = self.last_ts = ts
        self.first_id = self.last_id = id_

    @classmethod
    def from_result(cls, res: KernelResult, j: int, init: Bar | None) -> Bar:
        """Bucket ``j`` of a kernel result (``init`` when bucket 0 continued it)."""
        tr = res.trades
        bar = cls.__new__(cls)
        bar.end = int(res.end[j])
        bar.open, bar.high, bar.low = float(res.open[j]), float(res.high[j]), float(res.low[j])
        bar.close, bar.volume = float(res.close[j]), float(res.volume[j])
        bar.pv, bar.count = float(res.pv[j]), int(res.count[j])
        last = (int(res.start[j + 1]) if j + 1 < len(res.start) else tr.n) - 1
        if j == 0 and init is not None:
            bar.first_ts, bar.first_id = init.first_ts, init.first_id
        else:
            s = int(res.start[j])
            bar.first_ts = int(tr.ts[s])
            bar.first_id = None if tr.ids is None else int(tr.ids[s])
        if last >= 0:
            bar.last_ts = int(tr.ts[last])
            bar.last_id = None if tr.ids is None else int(tr.ids[last])
        else:  # carried bucket that received no new trades
            bar.last_ts, bar.last_id = init.last_ts, init.last_id  # type: ignore[union-attr]
        return bar

    def add(self, ts: int, price: float, amount: float, id_: int | None) -> None:
        """Merge one trade, wherever it falls in time relative to this bar's trades."""
        if _before(ts, id_, self.first_ts, self.first_id):
            self.open, self.first_ts, self.first_id = price, ts, id_
        if not _before(ts, id_, self.last_ts, self.last_id):
            self.close, self.last_ts, self.last_id = price, ts, id_
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += amount
        self.pv += price * amount
        self.count += 1

    def merge(self, other: Bar) -> None:
        """Merge a partial candle of the same bucket that arrived after this one."""
        if _before(other.first_ts, other.first_id, self.first_ts, self.first_id):
            self.open, self.first_ts, self.first_id = other.open, other.first_ts, other.first_id
        if not _before(other.last_ts, other.last_id, self.last_ts, self.last_id):
            self.close, self.last_ts, self.last_id = other.close, other.last_ts, other.last_id
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.volume += other.volume
        self.pv += other.pv
        self.count += other.count

    @property
    def vwap(self) -> float:
        return self.pv / self.volume if self.volume > 0 else float("nan")


def _call(arr: TradeArrays, tf_us: int, init: Bar | None, strict: bool) -> tuple:
    has_ids = arr.ids is not None
    if init is None:
        return K.aggregate_trades_nb(arr.ts, arr.price, arr.amount,
                                     arr.ids if has_ids else EMPTY_IDS, has_ids, strict,
                                     tf_us, False, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    return K.aggregate_trades_nb(arr.ts, arr.price, arr.amount,
                                 arr.ids if has_ids else EMPTY_IDS, has_ids, strict, tf_us,
                                 True, init.end, init.open, init.high, init.low, init.close,
                                 init.volume, init.pv, init.count)


def run_trades_kernel(arr: TradeArrays, tf_us: int, init: Bar | None = None, *,
                      name: str = "trades", prepared: bool = False) -> KernelResult:
    """Validate, de-duplicate and sort ``arr`` as needed, then aggregate it in one pass.

    The fast path (input already sorted, ids strictly increasing or absent, or
    ``prepared``: already de-duplicated and sorted) is a single kernel call with
    no copies. Otherwise duplicates are dropped (the first kept), the trades are
    sorted stably and the kernel runs again.

    Raises
    ------
    DataError
        Bad prices or amounts (naming rows); :class:`BeforeCarriedError` for
        trades before the carried bucket ``init``.
    """
    dropped = 0
    out = _call(arr, tf_us, init, arr.ids is not None and not prepared)
    if out[0] in (K.UNSORTED, K.IDS_NOT_INCREASING):
        arr, dropped = drop_duplicate_ids(arr)
        arr = sort_trades(arr)
        out = _call(arr, tf_us, init, False)
    status = out[0]
    if status in (K.BAD_PRICE, K.BAD_AMOUNT, K.BAD_TS):
        raise_bad_values(arr, name)
    if status == K.UNSORTED:  # still unsorted after sorting: trades before ``init``
        raise BeforeCarriedError(f"{name}: trades before the candle carried over from earlier "
                                 "trades")
    return KernelResult(arr, *out[2:], duplicates=dropped)


def candle_frame(end: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                 close: np.ndarray, volume: np.ndarray, count: np.ndarray,
                 pv: np.ndarray | None) -> pd.DataFrame:
    """Build a normalised candle frame (index ``ts`` = close time) from kernel arrays.

    ``vwap`` = pv / volume (NaN when the volume is 0); omitted when ``pv`` is None.
    """
    idx = pd.DatetimeIndex(np.asarray(end, np.int64).view("datetime64[us]"), name="ts")
    idx = idx.tz_localize("UTC")  # datetime64[us, UTC], the candle schema's TS_DTYPE
    cols: dict[str, np.ndarray] = {  # in CANDLE_COLUMNS order
        "open": np.array(open_, np.float64), "high": np.array(high, np.float64),
        "low": np.array(low, np.float64), "close": np.array(close, np.float64),
        "volume": np.array(volume, np.float64), "trade_count": np.array(count, np.int64),
    }
    if pv is not None:
        vwap = np.full(len(idx), np.nan)
        np.divide(pv, cols["volume"], out=vwap, where=cols["volume"] > 0)
        cols["vwap"] = vwap
    return pd.DataFrame(cols, index=idx, copy=False)


@dataclass(frozen=True, slots=True)
class ClosedCandle:
    """One candle emitted by :class:`StreamingAggregator`.

    Attributes
    ----------
    timeframe
        Canonical timeframe name (``"1m"``).
    ts
        Close time, a UTC ``pd.Timestamp``.
    open, high, low, close, volume, trade_count, vwap
        As in a candle frame (``vwap`` is NaN when the volume is 0).
    corrected
        True when this re-emits an already closed candle after a late trade:
        upsert it over the earlier version.
    closed
        False only for the still-open candles returned by
        :meth:`StreamingAggregator.flush`: never store those as final.
    """

    timeframe: str
    ts: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: int
    vwap: float
    corrected: bool = False
    closed: bool = True

    @staticmethod
    def to_frame(candles: Iterable[ClosedCandle], timeframe: str | Timeframe | None = None
                 ) -> pd.DataFrame:
        """Build a candle frame (with ``vwap``) from emitted candles of one timeframe.

        A later emission of the same ``ts`` (a correction) replaces the earlier one.

        Raises
        ------
        DataError
            When the candles mix timeframes and ``timeframe`` is not given.

        Examples
        --------
        >>> from tcp_lab.data.streaming import StreamingAggregator
        >>> agg = StreamingAggregator(["1m"])
        >>> closed = agg.add_trade(30_000_000, 100.0, 1.0) + agg.tick(120_000_000)
        >>> ClosedCandle.to_frame(closed)["close"].tolist()
        [100.0]
        """
        items = list(candles)
        if timeframe is not None:
            want = parse_timeframe(timeframe).name
            items = [c for c in items if c.timeframe == want]
        names = sorted({c.timeframe for c in items})
        if len(names) > 1:
            raise DataError(
                f"closed candles mix timeframes {', '.join(names)}",
                hint="pass timeframe= to pick one",
            )
        if not items:
            return empty_candles().assign(vwap=pd.Series([], dtype="float64"))
        rows = {c.ts: c for c in items}  # later emissions win
        idx = pd.DatetimeIndex(list(rows), name="ts").as_unit("us").tz_convert("UTC")
        vals = list(rows.values())
        df = pd.DataFrame({
            "open": [c.open for c in vals], "high": [c.high for c in vals],
            "low": [c.low for c in vals], "close": [c.close for c in vals],
            "volume": [c.volume for c in vals],
            "trade_count": np.array([c.trade_count for c in vals], np.int64),
            "vwap": [c.vwap for c in vals],
        }, index=idx)
        return df.sort_index()
