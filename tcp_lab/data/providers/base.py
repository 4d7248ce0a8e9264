"""What a market-data provider is, and the registry that builds one from a name.

A *provider* is where candles and trades come from: an exchange through ccxt
(``"ccxt"``), files replayed in time order (``"replay"``), or anything
registered with :func:`register_provider`. The collector only talks to the
:class:`Provider` protocol below; every provider speaks tcp_lab's conventions at
its boundary:

- candles are **right-aligned** (stamped with their close time; an exchange
  kline opened at 09:00 for 5m is the candle stamped 09:05), only closed and
  non-empty candles are returned;
- trades are a trades frame (``ts price amount id side``, ``ts`` as
  ``datetime64[us, UTC]``, ``id`` int64 when the exchange numbers its trades);
- errors are tcp_lab errors: :class:`TransientError` (a network fault, a
  rate limit, a malformed answer: retry, after ``retry_after`` seconds when the
  server said so), :class:`~tcp_lab.errors.ConfigError` (an unknown symbol or
  timeframe, refused credentials: fix the call) or
  :class:`~tcp_lab.errors.ServiceError` (anything else the server refused).

Providers do not retry: the caller (the collector) owns the retry policy and
the stop signal.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from tcp_lab.errors import ConfigError, ServiceError
from tcp_lab.timeframes import TS_DTYPE, Timeframe, empty_candles, parse_timeframe

__all__ = [
    "Provider",
    "ProviderFactory",
    "CandlePage",
    "TransientError",
    "EndOfData",
    "register_provider",
    "make_provider",
    "provider_names",
    "empty_trades",
    "trades_frame",
    "grid",
]


class TransientError(ServiceError):
    """A fault worth retrying: network error, timeout, rate limit, 5xx, malformed answer.

    Attributes
    ----------
    retry_after
        Seconds the server asked the client to wait (``Retry-After``), or None.
    """

    def __init__(self, message: str, *, hint: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class EndOfData(Exception):  # noqa: N818 - a signal, like StopIteration, not an error
    """A finite provider (a replay) has no more live trades for the symbol."""


@dataclass(frozen=True, slots=True)
class CandlePage:
    """One page of historical candles, as a provider answers one request.

    Attributes
    ----------
    candles
        Closed, non-empty candles (``validate_candles`` schema, optional
        ``vwap``), close times in ``[start, end]``.
    start, end
        Close times this page *covers*: every grid slot in between that is not
        in ``candles`` is one the exchange reported as empty (no trades).
        ``end < start`` when nothing could be covered.
    empty
        Those empty slots (close times).
    """

    candles: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp
    empty: pd.DatetimeIndex = field(
        default_factory=lambda: pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts"))

    @classmethod
    def covering(cls, candles: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                 timeframe: str | Timeframe) -> CandlePage:
        """A page of ``candles`` covering ``[start, end]``; the other slots are empty."""
        slots = grid(start, end, timeframe)
        empty = slots.difference(candles.index) if len(slots) else slots
        return cls(candles, start, end, empty.rename("ts"))


@runtime_checkable
class Provider(Protocol):
    """Where candles and trades come from (see the module docstring for the rules).

    Attributes
    ----------
    name
        Registry name (``"ccxt"``, ``"replay"``).
    exchange
        The exchange id stored with the data (``"binance"``).
    has_live_trades
        Whether :meth:`watch_trades` delivers live trades; when False the
        collector polls :meth:`fetch_candles` for newly closed candles.
    sequential_trade_ids
        Whether trade ids increase by exactly 1 per trade (Binance), so a jump
        in the live feed is a gap that :meth:`fetch_trades` can fill.
    """

    name: str
    exchange: str
    has_live_trades: bool
    sequential_trade_ids: bool

    def check(self, symbols: list[str], timeframes: list[str]) -> None:
        """Raise :class:`ConfigError` for a symbol or timeframe the exchange does not have."""

    def now(self) -> pd.Timestamp:
        """The exchange's clock (UTC): candles closing after it are still forming."""

    def fetch_candles(self, symbol: str, timeframe: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> CandlePage:
        """One page of closed candles with close times from ``start`` towards ``end``.

        ``end`` must be a close time the caller knows to be closed (at or before
        :meth:`now`); the page covers ``[start, page.end]`` with ``page.end <= end``.
        """

    def fetch_trades(self, symbol: str, *, from_id: int | None = None,
                     since: pd.Timestamp | None = None, limit: int = 1000) -> pd.DataFrame:
        """Up to ``limit`` trades with ``id >= from_id`` (or ``ts >= since``), in order."""

    async def watch_trades(self, symbol: str) -> pd.DataFrame:
        """The next batch of live trades (waits for it); :class:`EndOfData` when done."""

    async def aclose(self) -> None:
        """Release what :meth:`watch_trades` opened in the running event loop."""

    def close(self) -> None:
        """Release everything (idempotent)."""


#: ``factory(exchange=..., exchange_url=..., **options) -> Provider``
ProviderFactory = Callable[..., Provider]
_REGISTRY: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make ``DataCollector(provider=name)`` build providers with ``factory``.

    Parameters
    ----------
    name
        Registry name, e.g. ``"ccxt"`` or ``"my-feed"``.
    factory
        Called as ``factory(exchange=..., exchange_url=..., **provider_options)``
        and returning an object that follows :class:`Provider`.

    Examples
    --------
    >>> register_provider("ccxt-again", lambda **kw: make_provider("ccxt", **kw))
    >>> "ccxt-again" in provider_names()
    True
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"provider name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ConfigError(f"provider {name!r}: factory must be callable, got {factory!r}")
    _REGISTRY[name] = factory


def _builtin(name: str) -> ProviderFactory | None:
    if name == "ccxt":
        from tcp_lab.data.providers.ccxt_provider import CcxtProvider

        return CcxtProvider
    if name == "replay":
        from tcp_lab.data.providers.replay import ReplayProvider

        return ReplayProvider
    return None


def provider_names() -> tuple[str, ...]:
    """The registered provider names (built-ins first)."""
    return tuple(dict.fromkeys(["ccxt", "replay", *_REGISTRY]))


def make_provider(provider: str | Provider | None = None, **options: Any) -> Provider:
    """Build a provider from a registry name (default ``"ccxt"``), or pass one through.

    Raises
    ------
    ConfigError
        An unknown name ("did you mean …?") or an object that is not a provider.
    """
    if provider is None:
        provider = "ccxt"
    if not isinstance(provider, str):
        if not isinstance(provider, Provider):
            raise ConfigError(
                f"provider {provider!r} does not follow the Provider protocol",
                hint="pass 'ccxt', 'replay', a registered name, or a Provider object",
            )
        return provider
    factory = _REGISTRY.get(provider) or _builtin(provider)
    if factory is None:
        guess = difflib.get_close_matches(provider, provider_names(), n=1)
        raise ConfigError(
            f"unknown data provider {provider!r}"
            + (f" (did you mean {guess[0]!r}?)" if guess else ""),
            hint="known: " + ", ".join(provider_names()) + "; add one with register_provider",
        )
    return factory(**options)


# --------------------------------------------------------------------------- helpers
def grid(start: pd.Timestamp, end: pd.Timestamp, timeframe: str | Timeframe) -> pd.DatetimeIndex:
    """Close times of ``timeframe`` from ``start`` to ``end`` inclusive (both on the grid)."""
    tf = parse_timeframe(timeframe)
    lo, hi = start.value // 1000, end.value // 1000
    if hi < lo:
        return pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts")
    us = np.arange(lo, hi + 1, tf.us, dtype=np.int64)
    return pd.DatetimeIndex(pd.to_datetime(us, unit="us", utc=True), name="ts")


def empty_trades() -> pd.DataFrame:
    """An empty trades frame (``ts price amount id side``)."""
    return trades_frame(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0, np.int64),
                        np.empty(0, object))


def trades_frame(ts_ms: Any, price: Any, amount: Any, ids: Any, side: Any) -> pd.DataFrame:
    """A trades frame from epoch-ms times and arrays (``ids`` may be None)."""
    ts = pd.to_datetime(np.asarray(ts_ms, dtype=np.int64), unit="ms", utc=True).as_unit("us")
    out = pd.DataFrame({"ts": ts, "price": np.asarray(price, dtype=np.float64),
                        "amount": np.asarray(amount, dtype=np.float64)})
    if ids is not None:
        out["id"] = np.asarray(ids, dtype=np.int64)
    out["side"] = pd.array(np.asarray(side, dtype=object), dtype="str")
    return out


def no_candles() -> pd.DataFrame:
    """An empty candle frame with a ``vwap`` column."""
    return empty_candles().assign(vwap=pd.Series([], dtype="float64"))
