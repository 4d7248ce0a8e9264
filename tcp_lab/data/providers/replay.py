"""The replay provider: trades or candles from files (or frames), replayed in time order.

For tests, the demo and offline research: ``DataCollector(provider="replay",
provider_options={"sources": {"BTC/USDT": "btc_trades.parquet"}})`` backfills
and "follows" the files as if they were an exchange.

- **Sources.** One CSV or Parquet file (or DataFrame) per symbol, holding
  either trades (``ts price amount [id] [side]``) or candles (``ts open high low
  close volume [trade_count] [vwap]``, right-aligned, one timeframe); the kind
  is recognised from the columns. Times must carry a time zone. Trades
  without ids are numbered 0, 1, … in time order.
- **Clock.** The replay clock starts at ``start`` (default: the end of the
  data, so everything is history) and runs ``speed`` times faster than the
  wall clock; with ``speed=None`` the live feed is replayed as fast as it is
  read, and the clock follows the last trade delivered.
- **Candles.** From trades: aggregated by tcp_lab's rule. From candles:
  resampled to the requested timeframe (which must be a multiple of the
  file's). Only candles closed at the replay clock are returned.
- **Live.** Trade sources deliver their trades after ``start`` in time order,
  then :class:`~tcp_lab.data.providers.base.EndOfData`; candle sources have no
  live trades (the collector polls for newly closed candles).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.data.aggregate import aggregate_trades, resample_candles
from tcp_lab.data.providers.base import CandlePage, EndOfData, empty_trades, no_candles
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.timeframes import Timeframe, parse_timeframe, to_utc_timestamp, validate_candles

__all__ = ["ReplayProvider", "read_table"]

Source = str | Path | pd.DataFrame
_BATCH = 1000


def read_table(path: str | Path, *, what: str = "replay file") -> pd.DataFrame:
    """A ``.csv`` or ``.parquet`` file as a DataFrame, ``ts`` parsed as tz-aware times.

    ``what`` names the file in error messages (``"candle file"``, ``"replay file"``).

    Raises
    ------
    DataError
        Missing file, unknown extension, unreadable content, or naive times.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix == ".csv":
            df = pd.read_csv(p)
        else:
            raise DataError(f"{what} {p}: unknown extension {suffix!r}",
                            hint="use .csv or .parquet")
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{what} {p}: cannot read it ({e})") from e
    if df.index.name == "ts":
        df = df.reset_index()
    if "ts" not in df.columns:
        raise DataError(f"{what} {p}: no 'ts' column", hint="name the time column ts")
    if not isinstance(df["ts"].dtype, pd.DatetimeTZDtype):
        try:
            df["ts"] = pd.to_datetime(df["ts"], format="ISO8601")
        except (ValueError, TypeError) as e:
            raise DataError(f"{what} {p}: column ts is not times ({e})") from None
        if df["ts"].dt.tz is None:
            raise DataError(f"{what} {p}: times have no time zone",
                            hint="write them as 2024-01-01T00:01:00Z")
    return df


class _Series:
    """One symbol's data: trades (with ids) or candles of one timeframe."""

    def __init__(self, symbol: str, source: Source) -> None:
        df = read_table(source) if not isinstance(source, pd.DataFrame) else source
        if df.index.name == "ts":
            df = df.reset_index()
        name = f"replay {symbol}"
        self.symbol = symbol
        self.candle_tf: Timeframe | None = None
        if {"price", "amount"} <= set(df.columns):
            ts = pd.DatetimeIndex(df["ts"])
            if ts.tz is None:
                raise DataError(f"{name}: trade times have no time zone")
            trades = pd.DataFrame({"ts": ts.tz_convert("UTC").as_unit("us"),
                                   "price": df["price"].to_numpy(np.float64),
                                   "amount": df["amount"].to_numpy(np.float64)})
            if "side" in df.columns:
                trades["side"] = pd.array(df["side"].to_numpy(object), dtype="str")
            if "id" in df.columns:
                trades["id"] = df["id"].to_numpy(np.int64)
                trades = trades.sort_values(["ts", "id"], ignore_index=True)
            else:
                trades = trades.sort_values("ts", kind="stable", ignore_index=True)
                trades["id"] = np.arange(len(trades), dtype=np.int64)
            if "side" not in trades.columns:
                trades["side"] = pd.array([None] * len(trades), dtype="str")
            self.trades = trades[["ts", "price", "amount", "id", "side"]]
            self.ts_us = pd.DatetimeIndex(trades["ts"]).asi8
            self.candles = None
            self.first, self.last = (trades["ts"].iloc[0], trades["ts"].iloc[-1]) if len(
                trades) else (None, None)
        elif {"open", "high", "low", "close", "volume"} <= set(df.columns):
            candles = validate_candles(df, name=name)
            if len(candles) > 1:
                step = int(np.diff(candles.index.asi8).min())
                if step % 60_000_000:
                    raise DataError(f"{name}: candle spacing {step} us is not whole minutes")
                self.candle_tf = parse_timeframe(f"{step // 60_000_000}m")
            elif len(candles):
                raise DataError(f"{name}: one candle is not enough to tell its timeframe")
            if self.candle_tf is not None:
                candles = validate_candles(candles, self.candle_tf, name=name)
            self.candles, self.trades = candles, None
            self.first, self.last = (candles.index[0], candles.index[-1]) if len(
                candles) else (None, None)
        else:
            raise DataError(f"{name}: neither trades (ts price amount) nor candles "
                            "(ts open high low close volume)",
                            hint="columns found: " + ", ".join(map(str, df.columns)))


class ReplayProvider:
    """Replay trades or candles from files or DataFrames, one source per symbol.

    Parameters
    ----------
    sources
        ``{symbol: path or DataFrame}``; CSV or Parquet, trades or candles.
    exchange
        The exchange id stored with the data (default ``"replay"``).
    start
        Replay clock at creation (tz-aware); default: the end of the data.
    speed
        Replay seconds per wall second; None replays live trades as fast as they
        are read.
    exchange_url
        Ignored (accepted so the collector can pass it to every provider).

    Examples
    --------
    >>> from tcp_lab.testing import make_trades
    >>> trades = make_trades(500)
    >>> p = ReplayProvider({"BTC/USDT": trades})
    >>> p.now() == trades["ts"].iloc[-1]   # by default everything is history
    True
    >>> page = p.fetch_candles("BTC/USDT", "1m", trades["ts"].iloc[0].ceil("1min"), p.now())
    >>> len(page.candles) > 0
    True
    """

    name = "replay"
    sequential_trade_ids = True

    def __init__(self, sources: Mapping[str, Source] | None = None, *,
                 exchange: str = "replay", start: Any = None, speed: float | None = None,
                 exchange_url: str | None = None) -> None:
        if not sources:
            raise ConfigError("the replay provider needs sources={symbol: file or DataFrame}",
                              hint="e.g. provider_options={'sources': {'BTC/USDT': "
                                   "'btc.parquet'}}")
        if speed is not None and not speed > 0:
            raise ConfigError(f"replay speed must be > 0 or None, got {speed!r}")
        self.exchange = exchange
        self._series = {s: _Series(s, src) for s, src in sources.items()}
        lasts = [x.last for x in self._series.values() if x.last is not None]
        end = max(lasts) if lasts else pd.Timestamp(0, tz="UTC")
        self._end = end.as_unit("us")
        self._start = (to_utc_timestamp(start, name="start").as_unit("us") if start is not None
                       else self._end)
        self._speed = speed
        self._wall0 = time.monotonic()
        self._cursor: dict[str, int] = {}
        self._delivered: dict[str, pd.Timestamp] = {}  # speed=None: per-symbol clocks
        self.has_live_trades = all(x.trades is not None for x in self._series.values())

    def __repr__(self) -> str:
        return f"ReplayProvider({list(self._series)}, now={self.now()})"

    def _get(self, symbol: str) -> _Series:
        try:
            return self._series[symbol]
        except KeyError:
            raise ConfigError(f"replay: no source for symbol {symbol!r}",
                              hint="sources have: " + ", ".join(self._series)) from None

    def check(self, symbols: list[str], timeframes: list[str]) -> None:
        """Raise :class:`ConfigError` for a symbol without source or a timeframe too fine."""
        for s in symbols:
            series = self._get(s)
            for t in timeframes:
                tf = parse_timeframe(t)
                base = series.candle_tf
                if base is not None and tf.seconds % base.seconds:
                    raise ConfigError(f"replay {s}: {tf.name} candles cannot be built from "
                                      f"{base.name} candles",
                                      hint=f"use multiples of {base.name}")

    def now(self) -> pd.Timestamp:
        """The replay clock (never past the end of the data)."""
        if self._speed is None:  # the slowest symbol's last trade: never ahead of any feed
            live = [s for s, x in self._series.items() if x.trades is not None]
            t = min((self._delivered.get(s, self._start) for s in live), default=self._end)
        else:
            elapsed = pd.Timedelta(seconds=(time.monotonic() - self._wall0) * self._speed)
            t = self._start + elapsed
        return min(max(t, self._start), self._end).floor("us")

    def done(self) -> bool:
        """Whether the replay clock has reached the end of the data."""
        return self.now() >= self._end

    def fetch_candles(self, symbol: str, timeframe: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> CandlePage:
        """Closed candles with close times in ``[start, end]`` (one page: all of them)."""
        series, tf = self._get(symbol), parse_timeframe(timeframe)
        last_closed = self.now().value // 1000 // tf.us * tf.us  # the forming candle is not
        end = min(end, pd.Timestamp(last_closed, unit="us", tz="UTC"))
        if end < start:
            return CandlePage(no_candles(), start, end)
        lo = start - tf.delta
        if series.trades is not None:
            t = series.trades
            sel = t.loc[(t["ts"] > lo) & (t["ts"] <= end)]
            candles = aggregate_trades(sel, tf, name=f"replay {symbol}")
        else:
            c = series.candles
            sel = c.loc[(c.index > lo) & (c.index <= end)]
            base = series.candle_tf
            candles = (sel if base is None or base.seconds == tf.seconds
                       else resample_candles(sel, tf))
        candles = candles.loc[(candles["volume"] > 0) | (candles["trade_count"] > 0)]
        return CandlePage.covering(candles, start, end, tf)

    def fetch_trades(self, symbol: str, *, from_id: int | None = None,
                     since: pd.Timestamp | None = None, limit: int = 1000) -> pd.DataFrame:
        """Up to ``limit`` trades from ``from_id`` or ``since``, not past the replay clock."""
        t = self._get(symbol).trades
        if t is None:
            return empty_trades()
        now = self.now()
        sel = t.loc[t["ts"] <= now]
        if from_id is not None:
            sel = sel.loc[sel["id"] >= from_id]
        elif since is not None:
            sel = sel.loc[sel["ts"] >= since]
        return sel.iloc[:limit].reset_index(drop=True)

    async def watch_trades(self, symbol: str) -> pd.DataFrame:
        """The next trades after ``start`` in time order; :class:`EndOfData` at the end."""
        series = self._get(symbol)
        t = series.trades
        if t is None:
            raise EndOfData(symbol)
        i = self._cursor.get(symbol)
        if i is None:
            i = int(np.searchsorted(series.ts_us, self._start.value // 1000, "right"))
        if i >= len(t):
            self._delivered[symbol] = self._end
            raise EndOfData(symbol)
        if self._speed is None:
            j = min(len(t), i + _BATCH)
            await asyncio.sleep(0)
        else:
            while True:
                now = self.now()
                j = int(np.searchsorted(series.ts_us, now.value // 1000, "right"))
                if j > i:
                    break
                await asyncio.sleep(0.05)
        self._cursor[symbol] = j
        batch = t.iloc[i:j].reset_index(drop=True)
        if self._speed is None:  # every trade before the next one has been delivered
            nxt = t["ts"].iloc[j] - pd.Timedelta(microseconds=1) if j < len(t) else self._end
            self._delivered[symbol] = nxt
        return batch

    async def aclose(self) -> None:
        """Nothing to release."""

    def close(self) -> None:
        """Nothing to release."""
