"""Live trades -> candles: :class:`StreamingAggregator` closes candles as trades and ticks arrive.

The streaming path follows the batch rules of :mod:`tcp_lab.data.aggregate`
(right-aligned buckets, order by ts then id, duplicate ids dropped, same
sequential sums), so for the same trades it yields the same candles as
:func:`~tcp_lab.data.aggregate.aggregate_trades`, however they are split into
batches and interleaved with clock ticks.

A candle is emitted once, when it *closes*: a trade past its end arrives, or a
clock tick reaches its end (so quiet markets still close candles). Empty
buckets emit nothing (gaps are absent candles, as in batch).

Late trades. Closed candles are kept for ``late_window`` behind the *watermark*
(the latest close boundary reached in any timeframe). A trade at or before the
watermark but within the window is merged into its candles; each affected
closed candle is emitted again with ``corrected=True`` (the caller upserts it;
a bucket that was empty appears for the first time that way). A trade older
than the window changes nothing: it is counted in ``metrics["too_late_trades"]``
and kept for :meth:`StreamingAggregator.pop_too_late`, so the caller can repair
that range from the exchange. Nothing is silently lost.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.data._bars import Bar, ClosedCandle, run_trades_kernel
from tcp_lab.data._trades import check_values, drop_duplicate_ids, sort_trades, trade_arrays
from tcp_lab.errors import DataError
from tcp_lab.timeframes import (
    TIMEFRAMES,
    Timeframe,
    parse_timeframe,
    to_utc_timestamp,
)

__all__ = ["ClosedCandle", "StreamingAggregator"]

_FAR_PAST = -(1 << 62)
_INF = math.inf


def _us(value: Any, what: str) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return int(to_utc_timestamp(value, name=what).value // 1000)  # .value is always ns


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _window_us(late_window: Any) -> int:
    """Microseconds of a duration: seconds, ``"30s"``/``"5m"``/``"2h"``/``"1d"``, Timedelta."""
    if isinstance(late_window, (int, float)) and not isinstance(late_window, bool):
        late_window = timedelta(seconds=late_window)
    elif isinstance(late_window, str) and (m := _DURATION.match(late_window)):
        late_window = timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    try:
        us = int(pd.Timedelta(late_window) // pd.Timedelta(microseconds=1))
    except (TypeError, ValueError) as e:
        raise DataError(f"late_window={late_window!r} is not a duration ({e})") from None
    if us < 0:
        raise DataError(f"late_window={late_window!r} is negative", hint="use e.g. '5m' or 0")
    return us


class StreamingAggregator:
    """Aggregate a live trade feed into candles of several timeframes at once.

    Parameters
    ----------
    timeframes
        The timeframes to build (default: :data:`tcp_lab.timeframes.TIMEFRAMES`).
    late_window
        How far behind the watermark late trades are still merged (a duration:
        ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``, a ``pd.Timedelta``/``timedelta``
        or seconds). Closed candles
        and seen trade ids are kept this long, which bounds memory.
    name
        How to call the feed in error messages (``"binance BTC/USDT trades"``).

    Attributes
    ----------
    metrics
        Counters: ``trades`` (received), ``duplicates`` (dropped repeated ids),
        ``late_trades`` (merged into closed candles), ``too_late_trades``
        (older than the window, see :meth:`pop_too_late`), ``candles_closed``,
        ``candles_corrected``.

    Examples
    --------
    >>> agg = StreamingAggregator(["1m", "5m"])
    >>> agg.add_trade(1_704_099_630_000_000, 100.0, 0.5, id=1)    # 09:00:30
    []
    >>> [(c.timeframe, str(c.ts)) for c in agg.add_trade(1_704_099_690_000_000, 101.0, 1.0, id=2)]
    [('1m', '2024-01-01 09:01:00+00:00')]
    >>> [c.timeframe for c in agg.tick(pd.Timestamp("2024-01-01 09:05", tz="UTC"))]
    ['1m', '5m']
    """

    def __init__(self, timeframes: Sequence[str | Timeframe] = TIMEFRAMES, *,
                 late_window: Any = "5m", name: str = "trades") -> None:
        if isinstance(timeframes, (str, Timeframe)):
            timeframes = [timeframes]
        tfs = list(dict.fromkeys(parse_timeframe(t) for t in timeframes))
        if not tfs:
            raise DataError("StreamingAggregator needs at least one timeframe",
                            hint="e.g. StreamingAggregator(['1m', '5m'])")
        self.timeframes = tuple(tf.name for tf in tfs)
        self.late_window = pd.Timedelta(microseconds=_window_us(late_window))
        self.name = name
        self._tf_us = [tf.us for tf in tfs]
        self._late_us = _window_us(late_window)
        self._open: list[Bar | None] = [None] * len(tfs)
        self._closed_upto = [_FAR_PAST] * len(tfs)
        self._retained: list[dict[int, Bar]] = [{} for _ in tfs]
        self._watermark = _FAR_PAST
        self._seen: set[int] = set()  # ids of trades after the horizon
        self._seen_log: deque[tuple[int, Any]] = deque()  # (latest ts, ids) as added
        self._last_ts = _FAR_PAST
        self._last_id: int | None = None
        self._too_late: list[tuple[int, float, float, int | None]] = []
        self.metrics = {"trades": 0, "duplicates": 0, "late_trades": 0,
                        "too_late_trades": 0, "candles_closed": 0, "candles_corrected": 0}

    # -- emission and bookkeeping -------------------------------------------------------
    def _emit(self, j: int, bar: Bar, *, corrected: bool = False,
              closed: bool = True) -> ClosedCandle:
        return ClosedCandle(self.timeframes[j], pd.Timestamp(bar.end, unit="us", tz="UTC"),
                            bar.open, bar.high, bar.low, bar.close, bar.volume, bar.count,
                            bar.vwap, corrected, closed)

    def _close(self, j: int, bar: Bar, out: list[ClosedCandle]) -> None:
        self._retained[j][bar.end] = bar
        self.metrics["candles_closed"] += 1
        out.append(self._emit(j, bar))

    def _advance(self) -> None:
        """Recompute the watermark; forget candles and ids older than the window.

        Call whenever a ``_closed_upto`` entry grew: a trade at or before the
        watermark is late, which the in-order paths rely on.
        """
        self._watermark = wm = max(self._closed_upto)
        horizon = wm - self._late_us
        for kept in self._retained:
            for end in [e for e in kept if e <= horizon]:
                del kept[end]
        log, seen = self._seen_log, self._seen
        while log and log[0][0] <= horizon:
            seen.difference_update(log.popleft()[1])

    # -- single trades --------------------------------------------------------------------
    def add_trade(self, ts_us: int, price: float, amount: float,
                  id: int | None = None) -> list[ClosedCandle]:  # noqa: A002 - trade field
        """Add one trade (the fast path of the live feed).

        Parameters
        ----------
        ts_us
            Trade time as epoch microseconds (UTC).
        price, amount
            Price > 0, amount >= 0.
        id
            Exchange trade id; a repeated id is dropped.

        Returns
        -------
        list of ClosedCandle
            Candles closed by this trade (its time is past their end), or
            corrected candles when the trade is late.

        Raises
        ------
        DataError
            NaN, infinite or non-positive price; NaN, infinite or negative amount.
        """
        if not (price > 0.0 and price < _INF and amount >= 0.0 and amount < _INF):
            raise DataError(
                f"{self.name}: invalid trade at {pd.Timestamp(ts_us, unit='us', tz='UTC')} "
                f"(id {id}): price={price!r}, amount={amount!r}; expected price > 0, amount >= 0",
                hint="drop or repair the trade before feeding it",
            )
        self.metrics["trades"] += 1
        if id is not None and id in self._seen:
            self.metrics["duplicates"] += 1
            return []
        return self._apply(ts_us, price, amount, id)

    def _apply(self, ts: int, price: float, amount: float, id_: int | None) -> list[ClosedCandle]:
        if ts <= self._watermark:
            return self._late(ts, price, amount, id_)
        if id_ is not None:
            self._seen.add(id_)
            self._seen_log.append((ts, (id_,)))
        last = self._last_ts
        if not (ts > last or (ts == last and (id_ is None or self._last_id is None
                                               or id_ > self._last_id))):
            for bar in self._open:  # inside the open candles, before their last trade
                bar.add(ts, price, amount, id_)  # type: ignore[union-attr]
            return []
        self._last_ts, self._last_id = ts, id_
        out: list[ClosedCandle] = []
        opens = self._open
        pa = price * amount
        rolled = False
        for j in range(len(opens)):
            bar = opens[j]
            if bar is not None and ts <= bar.end:
                if price > bar.high:
                    bar.high = price
                elif price < bar.low:
                    bar.low = price
                bar.close = price
                bar.volume += amount
                bar.pv += pa
                bar.count += 1
                bar.last_ts = ts
                bar.last_id = id_
            else:
                if bar is not None:
                    self._close(j, bar, out)
                tf = self._tf_us[j]
                end = -((-ts) // tf) * tf
                opens[j] = Bar(end, ts, price, amount, id_)
                if end - tf > self._closed_upto[j]:
                    self._closed_upto[j] = end - tf
                rolled = True
        if rolled:
            self._advance()
        return out

    def _late(self, ts: int, price: float, amount: float, id_: int | None) -> list[ClosedCandle]:
        m = self.metrics
        if ts <= self._watermark - self._late_us:
            m["too_late_trades"] += 1
            self._too_late.append((ts, price, amount, id_))
            return []
        m["late_trades"] += 1
        if id_ is not None:
            self._seen.add(id_)
            self._seen_log.append((ts, (id_,)))
        if Bar.before(self._last_ts, self._last_id, ts, id_):
            self._last_ts, self._last_id = ts, id_
        out: list[ClosedCandle] = []
        for j, tf in enumerate(self._tf_us):
            end = -((-ts) // tf) * tf
            bar = self._open[j]
            if bar is not None and end == bar.end:
                bar.add(ts, price, amount, id_)
            elif end > self._closed_upto[j]:  # its open candle was closed by a tick: reopen
                self._open[j] = Bar(end, ts, price, amount, id_)
            else:
                kept = self._retained[j]
                bar = kept.get(end)
                if bar is None:  # the bucket was empty when it closed
                    kept[end] = bar = Bar(end, ts, price, amount, id_)
                else:
                    bar.add(ts, price, amount, id_)
                m["candles_corrected"] += 1
                out.append(self._emit(j, bar, corrected=True))
        return out

    # -- batches --------------------------------------------------------------------------
    def add(self, trades: Any) -> list[ClosedCandle]:
        """Add a batch of trades (a DataFrame, or a mapping of arrays).

        Parameters
        ----------
        trades
            A trades frame (``ts price amount [id]``), or a mapping with
            ``ts`` (int64 epoch us or tz-aware datetimes), ``price``,
            ``amount`` and optionally ``id`` arrays. Any order within the batch.

        Returns
        -------
        list of ClosedCandle
            Candles closed by these trades, and corrections caused by late ones.

        Raises
        ------
        DataError
            As :func:`~tcp_lab.data.aggregate.aggregate_trades`; the batch is
            rejected whole (nothing is applied).
        """
        arr = trade_arrays(trades, name=self.name)
        n = arr.n
        if n == 0:
            return []
        check_values(arr, self.name)
        m = self.metrics
        m["trades"] += n
        if arr.ids is not None:
            arr, dropped = drop_duplicate_ids(arr)
            seen, ids = self._seen, arr.ids.tolist()  # type: ignore[union-attr]
            if not seen.isdisjoint(ids):
                old = np.fromiter(map(seen.__contains__, ids), bool, len(ids))
                dropped += int(old.sum())
                arr = arr.take(np.flatnonzero(~old))
            if dropped:
                m["duplicates"] += dropped
                if arr.n == 0:
                    return []
        arr = sort_trades(arr)
        ts, p, a, ids = arr.ts, arr.price, arr.amount, arr.ids
        # trades that are late or before the last trade take the per-trade path
        split = int(np.searchsorted(ts, max(self._watermark, self._last_ts), side="left"))
        while split < arr.n and (ts[split] <= self._watermark or (
                ts[split] == self._last_ts and ids is not None and self._last_id is not None
                and ids[split] < self._last_id)):
            split += 1
        out: list[ClosedCandle] = []
        for i in range(split):
            out += self._apply(int(ts[i]), float(p[i]), float(a[i]),
                               None if ids is None else int(ids[i]))
        if split < arr.n:
            self._add_in_order(arr.take(np.arange(split, arr.n)) if split else arr, out)
        return out

    def _add_in_order(self, arr: Any, out: list[ClosedCandle]) -> None:
        """Trades after the watermark and the last trade: one kernel call per timeframe."""
        if arr.ids is not None:
            ids = arr.ids.tolist()
            self._seen.update(ids)
            self._seen_log.append((int(arr.ts[-1]), ids))
        for j, tf in enumerate(self._tf_us):
            init = self._open[j]
            res = run_trades_kernel(arr, tf, init, name=self.name, prepared=True)
            k = len(res.end)
            for b in range(k - 1):
                self._close(j, Bar.from_result(res, b, init if b == 0 else None), out)
            bar = Bar.from_result(res, k - 1, init if k == 1 else None)
            self._open[j] = bar
            if bar.end - tf > self._closed_upto[j]:
                self._closed_upto[j] = bar.end - tf
        self._last_ts = int(arr.ts[-1])
        self._last_id = None if arr.ids is None else int(arr.ids[-1])
        if max(self._closed_upto) > self._watermark:
            self._advance()

    # -- clock and shutdown ---------------------------------------------------------------
    def tick(self, now: Any) -> list[ClosedCandle]:
        """Close the candles whose end is at or before ``now`` (a clock tick).

        Parameters
        ----------
        now
            Current time: tz-aware timestamp/datetime, or epoch microseconds.
            Use the exchange's clock or a safe lag behind it, since a trade
            stamped before ``now`` arriving later becomes a late trade.
        """
        now_us = _us(now, "now")
        out: list[ClosedCandle] = []
        for j, tf in enumerate(self._tf_us):
            upto = now_us // tf * tf
            if upto > self._closed_upto[j]:
                self._closed_upto[j] = upto
            bar = self._open[j]
            if bar is not None and bar.end <= now_us:
                self._close(j, bar, out)
                self._open[j] = None
        self._advance()
        return out

    def flush(self) -> list[ClosedCandle]:
        """The still-open candles, flagged ``closed=False`` (for shutdown or a preview).

        Nothing changes: they keep aggregating and close normally later. Never
        store them as final candles.
        """
        return [self._emit(j, bar, closed=False) for j, bar in enumerate(self._open)
                if bar is not None]

    def pop_too_late(self) -> pd.DataFrame:
        """Trades that arrived too late to be merged, since the last call.

        Returns a trades frame (``ts price amount id``); repair the candles of
        that time range from the exchange (e.g. re-download them).
        """
        rows, self._too_late = self._too_late, []
        ts = pd.to_datetime(np.array([r[0] for r in rows], np.int64), unit="us", utc=True)
        return pd.DataFrame({
            "ts": ts, "price": np.array([r[1] for r in rows], np.float64),
            "amount": np.array([r[2] for r in rows], np.float64),
            "id": pd.array([r[3] for r in rows], dtype="Int64"),
        })
