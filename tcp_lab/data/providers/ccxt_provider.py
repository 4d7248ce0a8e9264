"""The ccxt provider: klines by REST, live trades by ccxt.pro (or REST polling).

Conventions applied here, once, at the exchange boundary:

- **Open time -> close time.** Exchanges stamp a kline with its *open* time;
  tcp_lab stamps candles with their *close* time. :func:`klines_to_candles`
  adds the timeframe: the 5m kline opened at 09:00 is the candle stamped 09:05.
  Binance's kline covers ``[open, open + tf)`` while tcp_lab's rule is
  ``(T - tf, T]``: the two differ only for a trade exactly on a boundary
  millisecond, which is accepted for history (the live path aggregates trades by
  tcp_lab's rule).
- **Empty klines are dropped.** A kline with zero volume or zero trades is not
  a candle (a candle with no trades is absent); its slot is reported as
  confirmed empty in :attr:`CandlePage.empty`.
- **Extra kline fields.** ccxt's ``fetch_ohlcv`` returns six numbers; where the
  raw answer has Binance's layout (``exchange.last_json_response``), the trade
  count and the quote volume (``vwap = quote volume / volume``) are read from
  it. Elsewhere ``trade_count`` is 0 (unknown) and there is no ``vwap``.
- **One trade-id space.** On Binance-like exchanges the live stream is
  ``<symbol>@aggTrade`` (not ``@trade``), whose ids are those of REST
  ``aggTrades`` (ccxt's ``fetch_trades``), so a gap in the live ids can be
  filled by REST.
- **Errors.** ccxt's ``OperationFailed`` family (network errors, timeouts,
  429/418 rate limits, 5xx, bad responses) becomes :class:`TransientError`
  with the server's ``Retry-After``; an answer ccxt accepted but that is not
  what was asked (a truncated body) too. ``BadSymbol``, ``AuthenticationError``
  and ``NotSupported`` become :class:`~tcp_lab.errors.ConfigError`; other
  exchange errors :class:`~tcp_lab.errors.ServiceError`.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ccxt
import numpy as np
import pandas as pd

from tcp_lab.data.providers.base import (
    CandlePage,
    TransientError,
    empty_trades,
    no_candles,
    trades_frame,
)
from tcp_lab.data.providers.ccxt_client import api_key_env, client_source, make_exchange
from tcp_lab.errors import ConfigError, ServiceError, TcpLabError
from tcp_lab.retry import one_line
from tcp_lab.timeframes import Timeframe, parse_timeframe, validate_candles

__all__ = ["CcxtProvider", "klines_to_candles", "translate_error"]

log = logging.getLogger("tcp_lab.data.providers")
T = TypeVar("T")
_BINANCE_LIKE = {"binance", "binanceus"}
_RAW_KLINE_FIELDS = 9  # open time, o, h, l, c, v, close time, quote volume, trade count


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def translate_error(error: Exception, *, exchange: str, what: str, symbol: str | None = None,
                    headers: Any = None) -> TcpLabError:
    """The tcp_lab error for a ccxt error raised while doing ``what``.

    Examples
    --------
    >>> type(translate_error(ccxt.RequestTimeout("slow"), exchange="binance", what="x")).__name__
    'TransientError'
    """
    msg = one_line(error)
    where = f"{exchange}" + (f" {symbol}" if symbol else "")
    if isinstance(error, ccxt.OperationFailed):  # network, timeouts, 429/418, 5xx, bad responses
        wait = _retry_after(headers) if isinstance(error, ccxt.DDoSProtection) else None
        return TransientError(f"{where}: {what} failed: {type(error).__name__}: {msg}",
                              retry_after=wait)
    if isinstance(error, ccxt.BadSymbol):
        return ConfigError(f"{exchange}: symbol {symbol!r} is not listed ({msg})",
                           hint="use a ccxt unified symbol the exchange lists, e.g. 'BTC/USDT'")
    if isinstance(error, ccxt.AuthenticationError):
        key, secret = api_key_env(exchange)
        return ConfigError(f"{exchange}: the exchange refused the API credentials ({msg})",
                           hint=f"fix or unset {key} / {secret} (market data needs no key)")
    if isinstance(error, ccxt.NotSupported):
        return ConfigError(f"{where}: {what} is not supported by ccxt's {exchange} ({msg})")
    return ServiceError(f"{where}: {what} failed: {type(error).__name__}: {msg}",
                        hint="check the exchange status; the request was not retried")


def _malformed(exchange: str, symbol: str, what: str, detail: str) -> TransientError:
    return TransientError(f"{exchange} {symbol}: {what}: malformed answer ({detail})")


def klines_to_candles(rows: Sequence[Sequence[Any]], timeframe: str | Timeframe, *,
                      raw: Any = None) -> pd.DataFrame:
    """Exchange klines (ccxt OHLCV rows, open time first) as right-aligned candles.

    Parameters
    ----------
    rows
        ``[open_ms, open, high, low, close, volume]`` per kline, as ccxt returns.
    timeframe
        The klines' timeframe.
    raw
        The exchange's raw answer when it has Binance's layout (a list of rows
        with the trade count at index 8 and the quote volume at index 7); None
        otherwise.

    Returns
    -------
    pandas.DataFrame
        Candles stamped with their close time (``open + timeframe``), with
        ``vwap`` when ``raw`` is given; klines with zero volume or zero trades
        are dropped.

    Raises
    ------
    ValueError
        Rows that are not numbers, or ``raw`` not matching ``rows``.

    Examples
    --------
    >>> open_0900 = 1_704_099_600_000  # 2024-01-01 09:00 UTC
    >>> c = klines_to_candles([[open_0900, 1.0, 2.0, 0.5, 1.5, 3.0]], "5m")
    >>> str(c.index[0])
    '2024-01-01 09:05:00+00:00'
    """
    tf = parse_timeframe(timeframe)
    if not rows:
        return no_candles() if raw is not None else no_candles().drop(columns="vwap")
    arr = np.asarray([list(r[:6]) for r in rows], dtype=object)
    if arr.ndim != 2 or arr.shape[1] != 6 or any(v is None for v in arr.ravel()):
        raise ValueError("klines with missing fields")
    opens = arr[:, 0].astype(np.int64)
    values = arr[:, 1:].astype(np.float64)
    count = np.zeros(len(rows), np.int64)
    vwap = None
    if raw is not None:
        if not isinstance(raw, list) or len(raw) != len(rows) or not all(
                isinstance(r, list) and len(r) >= _RAW_KLINE_FIELDS for r in raw):
            raise ValueError("raw klines do not match the parsed rows")
        if [int(r[0]) for r in raw] != opens.tolist():
            raise ValueError("raw kline open times do not match the parsed rows")
        count = np.asarray([int(r[8]) for r in raw], np.int64)
        quote = np.asarray([float(r[7]) for r in raw], np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = np.where(values[:, 4] > 0, quote / values[:, 4], np.nan)
        # the exchange rounds the quote volume: an average can land a hair outside the range
        vwap = np.clip(vwap, values[:, 2], values[:, 1])
    keep = (values[:, 4] > 0) & ((count > 0) if raw is not None else True)
    close_us = (opens + tf.ms) * 1000  # the kline opened at t closes at t + tf
    idx = pd.DatetimeIndex(pd.to_datetime(close_us[keep], unit="us", utc=True), name="ts")
    data = {"open": values[keep, 0], "high": values[keep, 1], "low": values[keep, 2],
            "close": values[keep, 3], "volume": values[keep, 4], "trade_count": count[keep]}
    if vwap is not None:
        data["vwap"] = vwap[keep]
    return pd.DataFrame(data, index=idx)


class CcxtProvider:
    """Market data from an exchange through ccxt (sync REST, ccxt.pro websockets).

    Parameters
    ----------
    exchange
        ccxt id, e.g. ``"binance"``.
    exchange_url
        Base URL of the exchange emulator (``EmulatorServer.base_url``); None for
        the real exchange.
    config
        Extra ccxt settings (``{"timeout": 3000}``), deep-merged by
        :func:`~tcp_lab.data.providers.ccxt_client.make_exchange`.
    page_limit
        Klines per request (Binance's maximum is 1000).
    live
        ``"auto"`` (websocket where ccxt.pro has ``watchTrades``, else REST
        polling), ``"ws"`` or ``"poll"``.
    poll_interval
        Seconds between REST polls of trades when polling.

    Examples
    --------
    >>> p = CcxtProvider("binance", exchange_url=emu.base_url)   # doctest: +SKIP
    >>> p.fetch_candles("BTC/USDT", "1m", start, end).candles     # doctest: +SKIP
    """

    name = "ccxt"

    def __init__(self, exchange: str = "binance", exchange_url: str | None = None, *,
                 config: dict[str, Any] | None = None, page_limit: int = 1000,
                 live: str = "auto", poll_interval: float = 1.0) -> None:
        if live not in ("auto", "ws", "poll"):
            raise ConfigError(f"live={live!r} is not one of 'auto', 'ws', 'poll'")
        self.exchange = exchange
        self.exchange_url = exchange_url
        self._config = {"enableLastJsonResponse": True, **(config or {})}
        self._rest = make_exchange(exchange, exchange_url=exchange_url, **self._config)
        #: Where the data comes from, recorded with each series it writes (redacted).
        self.source = client_source(self._rest)
        self._lock = threading.Lock()
        self._binance_like = exchange in _BINANCE_LIKE
        self.page_limit = int(page_limit)
        self.poll_interval = float(poll_interval)
        self.sequential_trade_ids = self._binance_like
        pro_has = False
        if live != "poll":
            import ccxt.pro

            cls = getattr(ccxt.pro, exchange, None)
            pro_has = bool(cls is not None and cls().has.get("watchTrades"))
            if live == "ws" and not pro_has:
                raise ConfigError(f"{exchange}: ccxt.pro has no watchTrades",
                                  hint="use live='poll' (REST polling of trades)")
        self._use_ws = pro_has
        self.has_live_trades = bool(pro_has or self._rest.has.get("fetchTrades"))
        self._pro: Any = None
        self._pro_loop: asyncio.AbstractEventLoop | None = None
        self._poll_cursor: dict[str, tuple[int | None, pd.Timestamp | None]] = {}

    def __repr__(self) -> str:
        where = f" at {self.exchange_url}" if self.exchange_url else ""
        return f"CcxtProvider({self.exchange!r}{where})"

    # ------------------------------------------------------------------ REST plumbing
    def _call(self, fn: Callable[[], T], what: str, symbol: str | None = None) -> T:
        with self._lock:
            try:
                return fn()
            except ccxt.BaseError as e:
                raise translate_error(e, exchange=self.exchange, what=what, symbol=symbol,
                                      headers=self._rest.last_response_headers) from e

    def _call_json(self, fn: Callable[[], T], what: str, symbol: str) -> tuple[T, Any]:
        """``fn()`` and the raw JSON it parsed; a body that was not JSON is transient.

        ccxt turns a truncated or HTML body into an empty (or junk) result rather
        than an error; an empty page would look like "no data there".
        """
        def call() -> tuple[T, Any]:
            self._rest.last_json_response = None
            result = fn()
            return result, self._rest.last_json_response

        result, raw = self._call(call, what, symbol)
        if raw is None:
            raise _malformed(self.exchange, symbol, what, "the body is not JSON")
        return result, raw

    def _markets(self) -> dict[str, Any]:
        if not self._rest.markets:
            self._call(self._rest.load_markets, "load markets")
        return self._rest.markets

    def check(self, symbols: list[str], timeframes: list[str]) -> None:
        """Raise :class:`ConfigError` for unlisted symbols or timeframes without klines."""
        markets = self._markets()
        for s in symbols:
            if s not in markets:
                guess = difflib.get_close_matches(s, list(markets), n=1)
                raise ConfigError(
                    f"{self.exchange}: symbol {s!r} is not listed"
                    + (f" (did you mean {guess[0]!r}?)" if guess else ""),
                    hint="use a ccxt unified symbol such as 'BTC/USDT'")
        have = self._rest.timeframes or {}
        for t in timeframes:
            name = parse_timeframe(t).name
            if have and name not in have:
                raise ConfigError(f"{self.exchange}: no {name} klines",
                                  hint="available: " + ", ".join(have))

    def now(self) -> pd.Timestamp:
        """The exchange's clock (``fetch_time``), or the local clock where it has none."""
        if not self._rest.has.get("fetchTime"):
            return pd.Timestamp.now("UTC").as_unit("us")
        ms = self._call(self._rest.fetch_time, "fetch time")
        if not isinstance(ms, int | float) or isinstance(ms, bool) or not math.isfinite(ms):
            raise _malformed(self.exchange, "", "fetch time", f"server time {ms!r}")
        return pd.Timestamp(int(ms), unit="ms", tz="UTC").as_unit("us")

    # ------------------------------------------------------------------ candles
    def fetch_candles(self, symbol: str, timeframe: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> CandlePage:
        """One page of klines from the candle closing at ``start`` (see :class:`Provider`)."""
        tf = parse_timeframe(timeframe)
        wanted = (end.value - start.value) // 1000 // tf.us + 1
        limit = int(max(1, min(self.page_limit, wanted)))
        since = start.value // 1_000_000 - tf.ms  # open time of the candle closing at start
        what = f"fetch {tf.name} klines"

        rows, raw = self._call_json(
            lambda: self._rest.fetch_ohlcv(symbol, tf.name, since=since, limit=limit),
            what, symbol)
        try:
            if not isinstance(rows, list):
                raise ValueError(f"expected a list of klines, got {type(rows).__name__}")
            candles = klines_to_candles(rows, tf, raw=raw if self._binance_like else None)
            if len(rows) and int(rows[0][0]) < since:
                raise ValueError("klines before the requested start")
        except (ValueError, TypeError, OverflowError) as e:
            raise _malformed(self.exchange, symbol, what, str(e)) from None
        candles = validate_candles(candles.loc[candles.index <= end], tf,
                                   name=f"{self.exchange} {symbol} {tf.name} klines")
        if len(rows) >= limit:  # a full page: covered up to its last kline
            last = pd.Timestamp((int(rows[-1][0]) + tf.ms) * 1000, unit="us", tz="UTC")
            covered = min(last, end)
        else:  # nothing more up to now: the whole range is covered
            covered = end
        return CandlePage.covering(candles, start, covered, tf)

    # ------------------------------------------------------------------ trades
    def _frame(self, trades: Any, symbol: str, what: str) -> pd.DataFrame:
        if not isinstance(trades, list):
            raise _malformed(self.exchange, symbol, what, f"got {type(trades).__name__}")
        if not trades:
            return empty_trades() if self.sequential_trade_ids else empty_trades().drop(
                columns="id")
        try:
            ts = [int(t["timestamp"]) for t in trades]
            price = [float(t["price"]) for t in trades]
            amount = [float(t["amount"]) for t in trades]
            side = [t.get("side") if t.get("side") in ("buy", "sell") else None for t in trades]
            raw_ids = [t.get("id") for t in trades]
            ids = ([int(i) for i in raw_ids]
                   if all(isinstance(i, str | int) and str(i).isdigit() for i in raw_ids)
                   else None)
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed(self.exchange, symbol, what, f"trade fields: {e}") from None
        if self.sequential_trade_ids and ids is None:
            raise _malformed(self.exchange, symbol, what, "trades without numeric ids")
        df = trades_frame(ts, price, amount, ids, side)
        return df.sort_values(["ts", "id"] if ids is not None else ["ts"], ignore_index=True)

    def fetch_trades(self, symbol: str, *, from_id: int | None = None,
                     since: pd.Timestamp | None = None, limit: int = 1000) -> pd.DataFrame:
        """Up to ``limit`` trades from id ``from_id`` (Binance) or time ``since``."""
        params: dict[str, Any] = {}
        since_ms = None
        if from_id is not None:
            if not self.sequential_trade_ids:
                raise ConfigError(f"{self.exchange}: trades cannot be fetched by id")
            params["fromId"] = int(from_id)
        elif since is not None:
            since_ms = since.value // 1_000_000
        what = "fetch trades"
        rows, _ = self._call_json(lambda: self._rest.fetch_trades(
            symbol, since=since_ms, limit=limit, params=params), what, symbol)
        return self._frame(rows, symbol, what)

    # ------------------------------------------------------------------ live
    async def _pro_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._pro is not None and self._pro_loop is loop:
            return self._pro
        await self.aclose()
        pro = make_exchange(self.exchange, exchange_url=self.exchange_url, pro=True,
                            **self._config)
        markets = self._markets()
        pro.set_markets(markets)
        self._pro, self._pro_loop = pro, loop
        return pro

    async def watch_trades(self, symbol: str) -> pd.DataFrame:
        """The next live trades of ``symbol`` (websocket, or a REST poll)."""
        if not self._use_ws:
            return await self._poll(symbol)
        pro = await self._pro_client()
        params = {"name": "aggTrade"} if self._binance_like else {}
        try:
            trades = await pro.watch_trades(symbol, params=params)
        except ccxt.BaseError as e:
            raise translate_error(e, exchange=self.exchange, what="watch trades",
                                  symbol=symbol) from e
        return self._frame(trades, symbol, "watch trades")

    async def _poll(self, symbol: str) -> pd.DataFrame:
        if symbol not in self._poll_cursor:  # live starts now, not with the recent history
            self._poll_cursor[symbol] = (None, await asyncio.to_thread(self.now))
        last_id, last_ts = self._poll_cursor[symbol]
        await asyncio.sleep(self.poll_interval)
        if last_id is not None and self.sequential_trade_ids:
            df = await asyncio.to_thread(self.fetch_trades, symbol, from_id=last_id + 1)
        else:
            df = await asyncio.to_thread(self.fetch_trades, symbol, since=last_ts)
            if last_ts is not None and len(df):  # ``since`` is inclusive: drop what we had
                df = df.loc[df["ts"] > last_ts].reset_index(drop=True)
        if len(df):
            self._poll_cursor[symbol] = (int(df["id"].iloc[-1]) if "id" in df else None,
                                         df["ts"].iloc[-1])
        return df

    async def aclose(self) -> None:
        """Close the ccxt.pro client opened by :meth:`watch_trades` (in its own loop)."""
        pro, self._pro, self._pro_loop = self._pro, None, None
        if pro is not None:
            try:
                await pro.close()
            except Exception as e:  # closing a dead connection: nothing left to release
                log.debug("%s: closing the websocket client: %s", self.exchange, one_line(e))

    def close(self) -> None:
        """Close the REST session (the websocket client is closed by :meth:`aclose`)."""
        session = getattr(self._rest, "session", None)
        if session is not None:
            session.close()
