"""A deterministic, random-access model of a spot market's trades and klines (pure numpy).

:class:`MarketModel` defines, for a ``seed`` and each symbol, every aggregate trade from
the genesis time onwards (see :mod:`tcp_lab.data.emulator.generate` for the processes).
Any window can be queried without generating the history before it: day-level state is
a cheap chained sequence, and a day's trades are generated on their own and cached.
The model has no clock: callers pass ``until_ms`` ("now") to hide the future.

Klines follow Binance's convention: the kline opened at ``t`` holds the trades with time
in ``[t, t + tf)`` and is stamped with ``t``; a kline without trades has volume 0 and
``open = high = low = close`` = the previous close. They are, by construction, the
aggregation of :meth:`MarketModel.trades` (a test pins this).

>>> m = MarketModel(["BTC/USDT"], seed=1)
>>> t = m.trades("BTC/USDT", m.genesis_ms, m.genesis_ms + 60_000)
>>> k = m.klines("BTC/USDT", "1m", m.genesis_ms, m.genesis_ms + 60_000)
>>> bool(k.high[0] == t.price.max()) and int(k.count[0]) == len(t)
True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import numpy as np

from tcp_lab.data.emulator.generate import (
    DAY_MS,
    MINUTE_MS,
    MINUTES_PER_DAY,
    DayLevels,
    DayTrades,
    day_levels,
    day_trades,
)
from tcp_lab.data.emulator.specs import SymbolSpec, make_spec
from tcp_lab.data.emulator.summary import merge_rows, summarize_minutes
from tcp_lab.errors import DataError
from tcp_lab.timeframes import to_utc_timestamp

__all__ = ["DEFAULT_GENESIS", "INTERVALS", "MarketModel", "Trades", "Klines", "interval_ms"]

DEFAULT_GENESIS = "2024-01-01T00:00Z"
_H, _D = 3_600_000, DAY_MS
#: Binance kline intervals served, as (length ms, alignment offset ms from the epoch).
INTERVALS = {
    "1m": (MINUTE_MS, 0), "3m": (3 * MINUTE_MS, 0), "5m": (5 * MINUTE_MS, 0),
    "15m": (15 * MINUTE_MS, 0), "30m": (30 * MINUTE_MS, 0), "1h": (_H, 0), "2h": (2 * _H, 0),
    "4h": (4 * _H, 0), "6h": (6 * _H, 0), "8h": (8 * _H, 0), "12h": (12 * _H, 0),
    "1d": (_D, 0), "3d": (3 * _D, 0), "1w": (7 * _D, 4 * _D),  # weeks start on Monday
}


def interval_ms(interval: str) -> tuple[int, int]:
    """``(length_ms, offset_ms)`` of a Binance kline interval; opens are ``offset + k*length``.

    Raises
    ------
    DataError
        For an interval the emulator does not serve (``1s``, ``1M``, typos).
    """
    try:
        return INTERVALS[interval]
    except (KeyError, TypeError):
        raise DataError(f"kline interval {interval!r} is not served by the emulator",
                        hint="use one of " + ", ".join(INTERVALS)) from None


@dataclass(frozen=True, slots=True)
class Trades:
    """Aggregate trades in time order (arrays of equal length).

    ``buyer_maker`` is Binance's ``m``: True when the buyer was the maker, i.e. the
    taker sold (ccxt side ``"sell"``).
    """

    id: np.ndarray
    time: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    buyer_maker: np.ndarray

    def __len__(self) -> int:
        return len(self.id)

    def select(self, keep: np.ndarray) -> Trades:
        """The trades where the boolean mask (or index array) ``keep`` selects."""
        return Trades(*(getattr(self, f.name)[keep] for f in fields(self)))

    @property
    def side(self) -> np.ndarray:
        """Taker side, ``"buy"`` or ``"sell"``."""
        return np.where(self.buyer_maker, "sell", "buy")

    def to_frame(self):
        """These trades as tcp_lab's trades DataFrame (``ts price amount id side``)."""
        import pandas as pd

        ts = pd.to_datetime(self.time, unit="ms", utc=True).as_unit("us")
        return pd.DataFrame({"ts": ts, "price": self.price, "amount": self.amount,
                             "id": self.id, "side": self.side})


@dataclass(frozen=True, slots=True)
class Klines:
    """Klines in open-time order; ``close_time = open_time + length - 1`` (Binance)."""

    open_time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    count: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote_volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)


def _concat_trades(parts: list[tuple[DayTrades, slice]], spec: SymbolSpec) -> Trades:
    if not parts:
        e = np.empty(0, np.int64)
        return Trades(e, e, np.empty(0), np.empty(0), np.empty(0, bool))
    cat = lambda f: np.concatenate([f(dt)[s] for dt, s in parts])  # noqa: E731
    return Trades(id=cat(lambda d: d.ids), time=cat(lambda d: d.time),
                  price=spec.prices(cat(lambda d: d.price_ticks)),
                  amount=spec.amounts(cat(lambda d: d.lots)),
                  buyer_maker=cat(lambda d: d.buyer_maker))


class MarketModel:
    """Deterministic trades and klines for a set of symbols, from ``genesis`` onwards.

    Parameters
    ----------
    symbols
        ccxt unified spot symbols, e.g. ``("BTC/USDT", "ETH/USDT")``.
    seed
        Non-negative integer; the same seed gives the same market, byte for byte.
    genesis
        First instant of the market (tz-aware; floored to the minute). No trade exists
        before it.
    trade_rate
        Multiplier of every symbol's mean trade count (e.g. ``0.1`` for light tests).
    cache_days
        How many generated days of raw trades to keep in memory.

    Examples
    --------
    >>> m = MarketModel(["ETH/USDT"], seed=7)
    >>> t = m.trades_from_id("ETH/USDT", m.spec("ETH/USDT").first_id, limit=3)
    >>> [int(i) - m.spec("ETH/USDT").first_id for i in t.id]
    [0, 1, 2]
    """

    def __init__(self, symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT"), seed: int = 0,
                 genesis: object = DEFAULT_GENESIS, *, trade_rate: float = 1.0,
                 cache_days: int = 8) -> None:
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise DataError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        ts = to_utc_timestamp(genesis, name="genesis")
        self.genesis_ms = int(ts.value // 1_000_000) // MINUTE_MS * MINUTE_MS
        self._specs = {s: make_spec(s, trade_rate=trade_rate) for s in symbols}
        if not self._specs:
            raise DataError("MarketModel needs at least one symbol, got none",
                            hint="pass symbols=('BTC/USDT',)")
        self._by_id = {s.market_id: s for s in self._specs.values()}
        self._lock = threading.RLock()
        self._levels: dict[str, DayLevels] = {}
        self._days: OrderedDict[tuple[str, int], DayTrades] = OrderedDict()
        self._tables: OrderedDict[tuple[str, int], dict[str, np.ndarray]] = OrderedDict()
        self._daily: dict[tuple[str, int], dict[str, np.ndarray]] = {}  # tiny; kept forever
        self._cache_days = max(2, int(cache_days))

    # ----------------------------------------------------------------- symbols
    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this market trades."""
        return tuple(self._specs)

    def spec(self, symbol: str) -> SymbolSpec:
        """The constants of ``symbol``; raises :class:`DataError` for an unknown one."""
        try:
            return self._specs[symbol]
        except KeyError:
            raise DataError(f"symbol {symbol!r} is not traded by this emulated market",
                            hint="known symbols: " + ", ".join(self._specs)) from None

    def spec_by_id(self, market_id: str) -> SymbolSpec | None:
        """The spec for an exchange id like ``"BTCUSDT"``, or None."""
        return self._by_id.get(market_id)

    # ----------------------------------------------------------------- caches
    def _day_index(self, ms: int) -> int:
        return (int(ms) - self.genesis_ms) // DAY_MS

    def _levels_for(self, spec: SymbolSpec, day: int) -> DayLevels:
        lv = self._levels.get(spec.symbol)
        if lv is None or len(lv) <= day:
            lv = day_levels(spec, self.seed, self.genesis_ms, day + 1, lv)
            self._levels[spec.symbol] = lv
        return lv

    def _day(self, spec: SymbolSpec, day: int) -> DayTrades:
        key = (spec.symbol, day)
        dt = self._days.get(key)
        if dt is None:
            levels = self._levels_for(spec, day)
            dt = day_trades(spec, self.seed, levels, day, self.genesis_ms + day * DAY_MS)
            self._days[key] = dt
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
        else:
            self._days.move_to_end(key)
        return dt

    def _table(self, spec: SymbolSpec, day: int) -> dict[str, np.ndarray]:
        """Per-minute summary of a whole day (cached; needs the previous close)."""
        chain = [day]
        while True:  # walk back only while a day opens with empty minutes
            d = chain[-1]
            if (d == 0 or self._day(spec, d).minute_counts[0] > 0
                    or (spec.symbol, d - 1) in self._tables):
                break
            chain.append(d - 1)
        for d in reversed(chain):
            if (spec.symbol, d) in self._tables:
                continue
            dt = self._day(spec, d)
            before = self._tables.get((spec.symbol, d - 1))
            prev = (before["close"][-1] if before is not None
                    else round(spec.start_price / spec.tick))
            minute = ((dt.time - (self.genesis_ms + d * DAY_MS)) // MINUTE_MS).astype(np.intp)
            table = summarize_minutes(minute, dt.price_ticks, dt.lots, dt.buyer_maker,
                                      MINUTES_PER_DAY, int(prev))
            self._tables[(spec.symbol, d)] = table
            while len(self._tables) > 64 * self._cache_days:
                self._tables.popitem(last=False)
        self._tables.move_to_end((spec.symbol, day))
        return self._tables[(spec.symbol, day)]

    # ----------------------------------------------------------------- trades
    def trades(self, symbol: str, start_ms: int, end_ms: int) -> Trades:
        """All trades with ``start_ms <= time < end_ms`` (epoch ms)."""
        spec = self.spec(symbol)
        start, end = max(int(start_ms), self.genesis_ms), int(end_ms)
        parts = []
        with self._lock:
            if end > start:
                for d in range(self._day_index(start), self._day_index(end - 1) + 1):
                    dt = self._day(spec, d)
                    i0, i1 = np.searchsorted(dt.time, [start, end], side="left")
                    if i1 > i0:
                        parts.append((dt, slice(i0, i1)))
            return _concat_trades(parts, spec)

    def trades_from_id(self, symbol: str, from_id: int, limit: int,
                       until_ms: int | None = None) -> Trades:
        """Up to ``limit`` trades with ``id >= from_id`` (and ``time <= until_ms`` if given)."""
        spec = self.spec(symbol)
        last_day = None if until_ms is None else self._day_index(until_ms)
        parts, n = [], 0
        with self._lock:
            levels = self._levels_for(spec, 0)
            while levels.first_id[-1] + levels.count[-1] <= from_id and (
                    last_day is None or len(levels) <= last_day):
                levels = self._levels_for(spec, len(levels))
            d = max(0, int(np.searchsorted(levels.first_id, from_id, side="right")) - 1)
            while n < limit and (last_day is None or d <= last_day):
                dt = self._day(spec, d)
                i0 = max(0, int(from_id) - dt.first_id)
                i1 = (len(dt) if until_ms is None
                      else int(np.searchsorted(dt.time, until_ms, "right")))
                i1 = min(i1, i0 + limit - n)
                if i1 > i0:
                    parts.append((dt, slice(i0, i1)))
                    n += i1 - i0
                d += 1
            return _concat_trades(parts, spec)

    def first_id_at(self, symbol: str, ms: int) -> int:
        """Id of the first trade with ``time >= ms`` (the next id to be made if none yet)."""
        spec = self.spec(symbol)
        ms = max(int(ms), self.genesis_ms)
        with self._lock:
            dt = self._day(spec, self._day_index(ms))
            return dt.first_id + int(np.searchsorted(dt.time, ms, side="left"))

    def last_trades(self, symbol: str, until_ms: int, limit: int) -> Trades:
        """The ``limit`` most recent trades with ``time <= until_ms``."""
        spec = self.spec(symbol)
        parts, n = [], 0
        with self._lock:
            d = self._day_index(until_ms)
            while n < limit and d >= 0:
                dt = self._day(spec, d)
                i1 = int(np.searchsorted(dt.time, until_ms, "right"))
                i0 = max(0, i1 - (limit - n))
                if i1 > i0:
                    parts.append((dt, slice(i0, i1)))
                    n += i1 - i0
                d -= 1
            return _concat_trades(parts[::-1], spec)

    # ----------------------------------------------------------------- klines
    def _minutes(self, spec: SymbolSpec, m0: int, m1: int, until_ms: int | None) -> dict:
        """Per-minute summaries for minutes ``[m0, m1)`` since genesis, cut at ``until_ms``."""
        if until_ms is not None:
            m_now = (int(until_ms) - self.genesis_ms) // MINUTE_MS
            m1 = min(m1, m_now + 1)
        cols: dict[str, list[np.ndarray]] = {}
        for d in range(m0 // MINUTES_PER_DAY, (m1 - 1) // MINUTES_PER_DAY + 1):
            table = self._table(spec, d)
            a, b = max(m0 - d * MINUTES_PER_DAY, 0), min(m1 - d * MINUTES_PER_DAY, MINUTES_PER_DAY)
            for k, v in table.items():
                cols.setdefault(k, []).append(v[a:b])
        out = {k: np.concatenate(v) for k, v in cols.items()}
        if until_ms is not None and m1 == m_now + 1:  # the minute in progress: trades <= now
            start = self.genesis_ms + m_now * MINUTE_MS
            dt = self._day(spec, self._day_index(start))
            i0, i1 = np.searchsorted(dt.time, [start, int(until_ms) + 1], side="left")
            prev = out["close"][-2] if len(out["close"]) > 1 else self._close_before(spec, m_now)
            part = summarize_minutes(np.zeros(i1 - i0, np.intp), dt.price_ticks[i0:i1],
                                     dt.lots[i0:i1], dt.buyer_maker[i0:i1], 1, int(prev))
            for k, v in part.items():
                out[k][-1] = v[0]
        return out

    def _close_before(self, spec: SymbolSpec, minute: int) -> int:
        if minute <= 0:
            return round(spec.start_price / spec.tick)
        d, i = divmod(minute - 1, MINUTES_PER_DAY)
        return int(self._table(spec, d)["close"][i])

    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int, *,
               until_ms: int | None = None) -> Klines:
        """Klines with open time in ``[start_ms, end_ms)``; with ``until_ms`` the future is hidden.

        The kline containing ``until_ms`` is the one still forming: it aggregates the
        trades up to ``until_ms`` only, as Binance's last kline does.
        """
        spec = self.spec(symbol)
        tf, off = interval_ms(interval)
        first = self.genesis_ms - (self.genesis_ms - off) % tf  # open of the genesis kline
        lo = max(int(start_ms), first)
        lo += (-(lo - off)) % tf  # round up onto the grid
        hi = int(end_ms) if until_ms is None else min(int(end_ms), int(until_ms) + 1)
        if hi <= lo:
            return Klines(*(np.empty(0, np.int64) for _ in fields(Klines)))
        g = self.genesis_ms
        last_open = lo + (hi - 1 - lo) // tf * tf
        with self._lock:
            if tf % DAY_MS == 0 and g % DAY_MS == 0:  # whole days: use the day summaries
                unit, u0 = DAY_MS, (max(lo, g) - g) // DAY_MS
                rows = self._day_rows(spec, u0, (last_open + tf - g) // DAY_MS, until_ms)
            else:
                unit, u0 = MINUTE_MS, (max(lo, g) - g) // MINUTE_MS
                rows = self._minutes(spec, u0, (last_open + tf - g) // MINUTE_MS, until_ms)
        bucket = (g + (u0 + np.arange(len(rows["count"]))) * unit - lo) // tf
        starts, k = merge_rows(rows, bucket)
        opens = lo + bucket[starts] * tf
        qs = spec.tick * spec.step
        return Klines(
            open_time=opens, close_time=opens + tf - 1,
            open=spec.prices(k["open"]), high=spec.prices(k["high"]), low=spec.prices(k["low"]),
            close=spec.prices(k["close"]), volume=spec.amounts(k["lots"]),
            quote_volume=k["quote"] * qs, count=k["count"],
            taker_buy_volume=spec.amounts(k["buy_lots"]),
            taker_buy_quote_volume=k["buy_quote"] * qs,
        )

    def _daily_row(self, spec: SymbolSpec, d: int) -> dict[str, np.ndarray]:
        """Summary of a whole day straight from its trades (cached forever: 9 numbers)."""
        row = self._daily.get((spec.symbol, d))
        if row is None:
            dt = self._day(spec, d)
            prev = 0 if len(dt) else self._close_before(spec, d * MINUTES_PER_DAY)
            row = summarize_minutes(np.zeros(len(dt), np.intp), dt.price_ticks, dt.lots,
                                    dt.buyer_maker, 1, prev)
            self._daily[(spec.symbol, d)] = row
        return row

    def warm_daily(self, symbol: str, start_ms: int, end_ms: int,
                   should_stop: Callable[[], bool] = lambda: False) -> int:
        """Precompute the day summaries of ``[start_ms, end_ms)``, newest day first.

        Generating a day costs about 10 ms per 100k trades; a server warms the days a
        client is likely to ask for (``fetch_ohlcv(symbol, "1d")``) in the background.
        Returns the number of days computed; stops early when ``should_stop()``.
        """
        spec = self.spec(symbol)
        first = self._day_index(max(int(start_ms), self.genesis_ms))
        done = 0
        for d in range(self._day_index(int(end_ms) - 1), first - 1, -1):
            if should_stop():
                break
            with self._lock:
                if (symbol, d) not in self._daily:
                    self._daily_row(spec, d)
                    done += 1
        return done

    def _day_rows(self, spec: SymbolSpec, d0: int, d1: int, until_ms: int | None) -> dict:
        """One summary row per day ``[d0, d1)``; the day in progress is cut at ``until_ms``."""
        d_now = None if until_ms is None else self._day_index(until_ms)
        if d_now is not None:
            d1 = min(d1, d_now + 1)
        rows = []
        for d in range(d0, d1):
            if d == d_now:
                part = self._minutes(spec, d * MINUTES_PER_DAY, (d + 1) * MINUTES_PER_DAY, until_ms)
                rows.append(merge_rows(part, np.zeros(len(part["count"]), np.int64))[1])
                continue
            rows.append(self._daily_row(spec, d))
        return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}

    def last_price(self, symbol: str, until_ms: int) -> float:
        """Price of the last trade at or before ``until_ms`` (the start price before genesis)."""
        t = self.last_trades(symbol, until_ms, 1)
        spec = self.spec(symbol)
        if len(t):
            return float(t.price[-1])
        return float(spec.prices(round(spec.start_price / spec.tick)))
