"""Trades -> OHLCV candles, and candles -> higher-timeframe candles.

The rule (see :mod:`tcp_lab.timeframes`): a candle stamped ``T`` holds the
trades with time in ``(T - tf, T]``, buckets anchored at the Unix epoch, so a
trade at exactly 09:05:00.000 belongs to the 5m candle stamped 09:05:00 and 1d
candles close at 00:00 UTC.

Within a candle trades are ordered stably by ``ts``, then by ``id`` when an
``id`` column is present; ``open`` is the first trade's price and ``close`` the
last one's. ``volume`` is the summed amount, ``trade_count`` the number of
trades, ``vwap`` = sum(price * amount) / volume (NaN when the volume is 0).
Trades repeating an ``id`` are dropped (the first occurrence is kept).

**Gaps.** A bucket without trades is *absent*: there are no zero-volume filler
rows, so a gap shows as missing index entries (e.g. 09:05 followed by 09:15 in
5m candles). Use ``candles.index.to_series().diff()`` to find them, and
``candles.asfreq(...)`` if a dense grid is needed.

All functions are vectorised: a numba kernel makes one pass over the sorted
trade arrays (:mod:`tcp_lab.data._kernels`); unsorted input is sorted first.

Examples
--------
>>> import pandas as pd
>>> trades = pd.DataFrame({
...     "ts": pd.to_datetime(["2024-01-01 09:00:30.000", "2024-01-01 09:05:00.000",
...                           "2024-01-01 09:05:00.001"], utc=True),
...     "price": [100.0, 101.0, 99.0], "amount": [1.0, 2.0, 1.0]})
>>> candles = aggregate_trades(trades, "5m")
>>> candles.index.strftime("%H:%M").tolist(), candles["trade_count"].tolist()
(['09:05', '09:10'], [2, 1])
>>> candles["close"].tolist(), candles["volume"].tolist()
([101.0, 99.0], [3.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.data import _kernels as K
from tcp_lab.data._bars import (
    Bar,
    BeforeCarriedError,
    KernelResult,
    candle_frame,
    run_trades_kernel,
)
from tcp_lab.data._trades import TradeArrays, readonly, trade_arrays
from tcp_lab.errors import DataError
from tcp_lab.timeframes import Timeframe, parse_timeframe, validate_candles

__all__ = [
    "aggregate_trades",
    "aggregate_trade_chunks",
    "iter_aggregate_trade_chunks",
    "resample_candles",
]

_DAY_US = 86_400_000_000
_Arrays = tuple[np.ndarray, ...]  # end, open, high, low, close, volume, count, pv


def _empty(vwap: bool = True) -> pd.DataFrame:
    e = np.empty(0)
    return candle_frame(np.empty(0, np.int64), e, e, e, e, e, np.empty(0, np.int64),
                        e if vwap else None)


def _frame(arrays: _Arrays, tf: Timeframe) -> pd.DataFrame:
    df = candle_frame(*arrays)
    df.attrs["timeframe"] = tf.name
    return df


def _result_arrays(res: KernelResult, lo: int = 0, hi: int | None = None) -> _Arrays:
    s = slice(lo, hi)
    return (res.end[s], res.open[s], res.high[s], res.low[s], res.close[s], res.volume[s],
            res.count[s], res.pv[s])


def _bar_arrays(bar: Bar) -> _Arrays:
    return (np.array([bar.end], np.int64), np.array([bar.open]), np.array([bar.high]),
            np.array([bar.low]), np.array([bar.close]), np.array([bar.volume]),
            np.array([bar.count], np.int64), np.array([bar.pv]))


def aggregate_trades(trades: pd.DataFrame, timeframe: str | Timeframe, *,
                     name: str = "trades") -> pd.DataFrame:
    """Aggregate trades into right-aligned OHLCV candles.

    Parameters
    ----------
    trades
        Columns ``ts`` (tz-aware), ``price``, ``amount``, optional ``id``
        (int64 exchange trade id) and ``side`` (ignored). Any order.
    timeframe
        ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``… (anything dividing a day).
    name
        How to call the trades in error messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``open high low close volume trade_count vwap``, index ``ts``
        (``datetime64[us, UTC]``, the close time), sorted; buckets without
        trades are absent. ``attrs["timeframe"]`` holds the timeframe name.

    Raises
    ------
    DataError
        Missing columns, naive or missing timestamps, NaN/infinite/non-positive
        prices, negative amounts, non-integer ids (the message names the rows),
        or an invalid timeframe.

    Examples
    --------
    >>> trades = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 09:05"], utc=True),
    ...                        "price": [100.0], "amount": [0.5]})
    >>> aggregate_trades(trades, "5m").index[0]
    Timestamp('2024-01-01 09:05:00+0000', tz='UTC')
    """
    tf = parse_timeframe(timeframe)
    arr = trade_arrays(trades, name=name)
    if arr.n == 0:
        return _empty()
    return _frame(_result_arrays(run_trades_kernel(arr, tf.us, name=name)), tf)


class _ChunkAggregator:
    """Aggregates time-ordered chunks, carrying the still-open bucket across chunks.

    Duplicate ids across a chunk boundary are found among the previous chunk and
    the carried bucket (where re-sent trades of overlapping pages land).
    """

    def __init__(self, tf: Timeframe, name: str) -> None:
        self.tf, self.name = tf, name
        self.carry: Bar | None = None
        self.carry_ids: list[np.ndarray] = []  # ids of the carried bucket's trades
        self.prev_ids: np.ndarray | None = None  # ids of the previous chunk
        self.chunks = 0
        self.trades = 0

    def _drop_seen(self, arr: TradeArrays) -> TradeArrays:
        if arr.ids is None or self.carry is None:
            return arr
        cand = np.flatnonzero(arr.ts <= self.carry.last_ts)
        if not len(cand):
            return arr
        seen = np.concatenate([*self.carry_ids, self.prev_ids if self.prev_ids is not None
                               else np.empty(0, np.int64)])
        hit = np.isin(arr.ids[cand], seen)
        if not hit.any():
            return arr
        keep = np.ones(arr.n, bool)
        keep[cand[hit]] = False
        return arr.take(np.flatnonzero(keep))

    def feed(self, chunk: Any) -> _Arrays | None:
        """Aggregate one chunk; returns the candles it completed (None if none)."""
        self.chunks += 1
        where = f"{self.name} chunk {self.chunks}"
        arr = self._drop_seen(trade_arrays(chunk, name=where))
        if arr.n == 0:
            return None
        self.trades += arr.n
        carry, tf_us = self.carry, self.tf.us
        try:
            res = run_trades_kernel(arr, tf_us, carry, name=where)
        except BeforeCarriedError:
            assert carry is not None
            early = arr.ts <= carry.end - tf_us
            first = pd.Timestamp(int(arr.ts[early].min()), unit="us", tz="UTC")
            raise DataError(
                f"{where}: {int(early.sum())} trade(s) from {first} belong to candles "
                f"already completed by earlier chunks (the carried {self.tf.name} candle "
                f"closes at {pd.Timestamp(carry.end, unit='us', tz='UTC')})",
                hint="chunks must be in time order: sort the trades, or aggregate the "
                "overlapping chunks together",
            ) from None
        arr = res.trades
        k = len(res.end)
        first_id = None if arr.ids is None else int(arr.ids[0])
        out: _Arrays | None
        if carry is not None and Bar.before(int(arr.ts[0]), first_id, carry.last_ts,
                                             carry.last_id):
            # rare: trades inside the carried bucket but earlier than its last trade
            res = run_trades_kernel(arr, tf_us, None, name=where)
            k = len(res.end)
            carry.merge(Bar.from_result(res, 0, None))
            closed = [_bar_arrays(carry), _result_arrays(res, 1, k - 1)] if k > 1 else []
            out = tuple(np.concatenate(p) for p in zip(*closed, strict=True)) if closed else None
            new_carry = carry if k == 1 else Bar.from_result(res, k - 1, None)
        else:
            out = _result_arrays(res, 0, k - 1) if k > 1 else None
            new_carry = Bar.from_result(res, k - 1, carry if k == 1 else None)
        if arr.ids is not None:
            tail = arr.ids[int(res.start[k - 1]):]
            self.carry_ids = [*self.carry_ids, tail] if carry is not None and k == 1 else [tail]
            self.prev_ids = arr.ids
        self.carry = new_carry
        return out

    def finish(self) -> _Arrays | None:
        """The last (still-open) bucket, once no more chunks follow."""
        return None if self.carry is None else _bar_arrays(self.carry)


def iter_aggregate_trade_chunks(chunks: Iterable[pd.DataFrame], timeframe: str | Timeframe,
                                *, name: str = "trades",
                                progress: bool = False) -> Iterator[pd.DataFrame]:
    """Aggregate time-ordered trade chunks, yielding candles as they complete.

    Same result as :func:`aggregate_trades` on the concatenated trades, with
    memory bounded by one chunk: the bucket still open at the end of a chunk is
    carried into the next one. Each yielded frame holds the candles a chunk
    completed (the last one also the final candle); frames may be empty.

    Parameters
    ----------
    chunks
        Trade frames in time order. Within a chunk any order is fine; a trade
        may also fall in the candle still open from the previous chunk, but not
        in an earlier one.
    timeframe, name
        As for :func:`aggregate_trades`.
    progress
        Show a ``tqdm`` progress bar (chunks and trades).

    Raises
    ------
    DataError
        As :func:`aggregate_trades`, and when a chunk holds trades belonging to
        candles already completed by earlier chunks (the message names the chunk).

    Notes
    -----
    Sums are bit-identical to the batch result when chunks are in time order.
    Trades landing inside the carried candle *before* its last trade are merged
    correctly (open/high/low/close/trade_count exact), volume and vwap then equal
    the batch result up to float rounding. A re-sent trade (same id) is dropped
    when it repeats a trade of the previous chunk or of the carried candle.
    """
    tf = parse_timeframe(timeframe)
    agg = _ChunkAggregator(tf, name)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="chunk", desc=f"aggregate {tf.name}")
    try:
        for chunk in chunks:
            out = agg.feed(chunk)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(trades=agg.trades, refresh=False)
            if out is not None:
                yield _frame(out, tf)
        last = agg.finish()
        yield _frame(last, tf) if last is not None else _empty()
    finally:
        if bar is not None:
            bar.close()


def aggregate_trade_chunks(chunks: Iterable[pd.DataFrame], timeframe: str | Timeframe, *,
                           name: str = "trades", progress: bool = False) -> pd.DataFrame:
    """Aggregate an iterable of time-ordered trade chunks into one candle frame.

    Identical to ``aggregate_trades(pd.concat(chunks), timeframe)`` but holds
    only one chunk of trades in memory; see :func:`iter_aggregate_trade_chunks`
    for the rules and a generator version.

    Examples
    --------
    >>> ts = pd.date_range("2024-01-01 09:00:10", periods=6, freq="60s", tz="UTC")
    >>> trades = pd.DataFrame({"ts": ts, "price": 100.0, "amount": 1.0})
    >>> chunks = (trades.iloc[i:i + 4] for i in range(0, 6, 4))
    >>> aggregate_trade_chunks(chunks, "5m")["trade_count"].tolist()
    [5, 1]
    """
    tf = parse_timeframe(timeframe)
    parts = [f for f in iter_aggregate_trade_chunks(chunks, tf, name=name, progress=progress)
             if len(f)]
    if not parts:
        return _empty()
    df = pd.concat(parts) if len(parts) > 1 else parts[0]
    df.attrs["timeframe"] = tf.name
    return df


def _source_timeframe(candles: pd.DataFrame, source: str | Timeframe | None,
                      name: str) -> tuple[Timeframe | None, bool]:
    """The source timeframe: given, from ``attrs``, or inferred (flag) from the stamps."""
    if source is None:
        source = candles.attrs.get("timeframe")
    if source is not None:
        return parse_timeframe(source), False
    return None, True


def resample_candles(candles: pd.DataFrame, timeframe: str | Timeframe, *,
                     source_timeframe: str | Timeframe | None = None,
                     name: str = "candles") -> pd.DataFrame:
    """Aggregate candles into a higher timeframe (1m -> 5m -> 1h …).

    A target candle ``T`` aggregates the source candles with close time in
    ``(T - tf, T]``: first open, max high, min low, last close, summed volume
    and trade_count, volume-weighted vwap. The result equals aggregating the
    underlying trades directly: open/high/low/close/trade_count exactly,
    volume and vwap up to float rounding of the sums (exactly when the partial
    sums are exact, e.g. amounts on a binary grid). Target buckets without
    source candles are absent, like in :func:`aggregate_trades`.

    Parameters
    ----------
    candles
        A candle frame (see :func:`tcp_lab.timeframes.validate_candles`),
        optionally with ``vwap``.
    timeframe
        The target timeframe; must be a whole multiple of the source's.
    source_timeframe
        The source timeframe. Default: ``candles.attrs["timeframe"]`` (set by
        :func:`aggregate_trades`), else inferred from the stamps (the coarsest
        grid they all lie on, which may be coarser than the truth for sparse
        data: pass it explicitly then).
    name
        How to call the candles in error messages.

    Raises
    ------
    DataError
        Invalid candles; a target that is not a multiple of the source.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01 00:01", periods=10, freq="1min", tz="UTC", name="ts")
    >>> one = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
    ...                     "volume": 1.0, "trade_count": 3}, index=idx)
    >>> resample_candles(one, "5m", source_timeframe="1m")["trade_count"].tolist()
    [15, 15]
    """
    tf = parse_timeframe(timeframe)
    src, inferred = _source_timeframe(candles, source_timeframe, name)
    has_vwap = isinstance(candles, pd.DataFrame) and "vwap" in candles.columns
    df = validate_candles(candles, src, name=name)
    if df.empty:
        return _empty(has_vwap)
    ts = df.index.asi8
    if src is None:
        grid = int(np.gcd.reduce(np.append(ts % _DAY_US, _DAY_US)))
        if grid % 60_000_000:
            raise DataError(
                f"{name}: timestamps are not on any timeframe's close grid "
                f"(common step {grid / 1e6:g} s)",
                hint="candles are stamped with their close time on a whole-minute grid",
            )
        src = parse_timeframe(f"{grid // 60_000_000}m")
    if tf.us % src.us:
        guess = " (inferred from the timestamps; pass source_timeframe= if finer)" \
            if inferred else ""
        raise DataError(
            f"{name}: cannot resample {src.name}{guess} candles to {tf.name}: "
            f"{tf.name} is not a whole multiple of {src.name}",
            hint=f"choose a target timeframe that is a multiple of {src.name}",
        )
    volume = df["volume"].to_numpy()
    if has_vwap:
        vwap = df["vwap"].to_numpy()
        pv = np.where(volume > 0, vwap * np.where(volume > 0, volume, 0.0), 0.0)
    else:
        pv = np.zeros(len(df))
    out = K.resample_candles_nb(
        readonly(ts, np.int64), *(readonly(df[c].to_numpy(), np.float64)
                                  for c in ("open", "high", "low", "close", "volume")),
        readonly(df["trade_count"].to_numpy(), np.int64), readonly(pv, np.float64), tf.us)
    end, o, h, lo, c, v, n, pvs = out
    return _frame((end, o, h, lo, c, v, n, pvs if has_vwap else None), tf)
