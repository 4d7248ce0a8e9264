"""Where collected data goes: candles and raw trades into the store, messages onto the bus.

One :class:`Sink` per collector. With an ``origin`` (the provider's redacted
base URL), the first candles it stores of each series record that series'
source (:meth:`~tcp_lab.store.Store.save_series_source`).

The store is the source of truth: a candle is published only after it was
stored, and a bus that is down is logged and counted (bots catch up from the
store) rather than stopping the collection. Live trades go only onto the bus,
and only to a channel someone subscribes to (asked at most once per
:data:`LISTENERS_TTL` seconds per channel).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import pandas as pd

from tcp_lab.bus import (
    SYSTEM_EVENTS,
    CandleMessage,
    EventMessage,
    TradesMessage,
    market_channel,
    trades_channel,
)
from tcp_lab.data._trades import sort_trades, trade_arrays
from tcp_lab.errors import TcpLabError
from tcp_lab.retry import one_line

__all__ = ["Sink", "LISTENERS_TTL"]

log = logging.getLogger("tcp_lab.data.collector")
#: Seconds a channel's subscriber count is trusted before the bus is asked again.
LISTENERS_TTL = 1.0


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


class Sink:
    """Store candles and trades of one exchange; publish closed candles and events.

    Parameters
    ----------
    store
        An open :class:`~tcp_lab.store.Store`.
    bus
        An open :class:`~tcp_lab.bus.Bus`, or None (nothing is published).
    exchange
        The exchange id the data is stored under.
    source
        ``source`` of the events (``"collector:binance"``).
    origin
        Where the data comes from (the provider's ``source``: the exchange's or
        emulator's base URL), recorded with each series this sink writes; None
        records nothing (a repair keeps the source a series was collected from).
    """

    def __init__(self, store: Any, bus: Any, exchange: str, source: str, *,
                 origin: str | None = None) -> None:
        self.store, self.bus, self.exchange, self.source = store, bus, exchange, source
        self.origin = origin
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listeners: dict[str, tuple[int, float]] = {}  # channel -> (count, asked at)
        self._sourced: set[tuple[str, str]] = set()  # series whose source is recorded

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def save_candles(self, candles: pd.DataFrame, symbol: str, timeframe: str, *,
                     publish: bool = False, corrected: Any = False) -> int:
        """Upsert ``candles``; publish them (in time order) when ``publish``.

        ``corrected`` is one flag for all rows, or a boolean Series indexed like
        ``candles`` (corrected re-writes are published with ``corrected=True``).
        """
        if candles.empty:
            return 0
        n = self.store.save_candles(candles, self.exchange, symbol, timeframe)
        self._count("candles_stored", n)
        if self.origin is not None and (symbol, timeframe) not in self._sourced:
            self.store.save_series_source(self.exchange, symbol, timeframe, self.origin)
            with self._lock:
                self._sourced.add((symbol, timeframe))
        if publish and self.bus is not None:
            flags = (corrected.reindex(candles.index, fill_value=False)
                     if isinstance(corrected, pd.Series)
                     else pd.Series(bool(corrected), index=candles.index))
            messages: list[CandleMessage] = []
            for flag in (False, True):
                part = candles.loc[flags.to_numpy() == flag]
                if len(part):
                    messages += CandleMessage.from_candles(
                        part, exchange=self.exchange, symbol=symbol, timeframe=timeframe,
                        corrected=flag)
            messages.sort(key=lambda m: m.ts)
            channel = market_channel(symbol)
            for m in messages:
                if self._publish(channel, m):
                    self._count("candles_published")
                    if m.corrected:
                        self._count("corrections_published")
        return n

    def save_quiet(self, slots: pd.DatetimeIndex, symbol: str, timeframe: str) -> int:
        """Record slots the exchange confirmed had no trades (see
        :meth:`~tcp_lab.store.Store.save_quiet_slots`)."""
        if not len(slots):
            return 0
        n = self.store.save_quiet_slots(slots, self.exchange, symbol, timeframe)
        self._count("quiet_slots_recorded", n)
        return n

    def save_trades(self, trades: pd.DataFrame, symbol: str) -> int:
        """Store raw trades (idempotent by trade id)."""
        if trades.empty:
            return 0
        n = self.store.save_raw_trades(trades, self.exchange, symbol)
        self._count("trades_stored", n)
        return n

    def publish_trades(self, frames: list[pd.DataFrame], symbol: str, *, stream: str,
                       seq: int, until: pd.Timestamp | None = None) -> bool:
        """Publish live trades as batch ``seq`` of ``stream`` on ``trades:{symbol}``, if
        anyone subscribes there; True when published.

        ``frames`` are trades frames (``ts price amount [id]``) in arrival
        order; the batch is sorted by (ts, id), as the store returns trades.
        ``until``: every trade up to then has been handed over (see
        :class:`~tcp_lab.bus.TradesMessage`).
        """
        if self.bus is None or not (frames or until is not None):
            return False
        channel = trades_channel(symbol)
        if not self._listened(channel):
            self._count("trade_batches_unheard")
            return False
        frame = (frames[0] if len(frames) == 1 else
                 pd.concat(frames, ignore_index=True) if frames else
                 pd.DataFrame({"ts": pd.DatetimeIndex([], tz="UTC"), "price": [], "amount": []}))
        try:
            arr = sort_trades(trade_arrays(frame, name=f"{self.exchange} {symbol} live trades"))
            message = TradesMessage.from_arrays(exchange=self.exchange, symbol=symbol,
                                                stream=stream, seq=seq, times=arr.ts,
                                                prices=arr.price, amounts=arr.amount,
                                                until=until)
        except ValueError as e:  # the aggregator took them; subscribers will see a gap
            self._count("publish_errors")
            log.error("%s: could not publish trades of %s: %s", self.source, symbol,
                      one_line(e))
            return False
        if not self._publish(channel, message):
            return False
        self._count("trade_batches_published")
        self._count("trades_published", arr.n)
        return True

    def _listened(self, channel: str) -> bool:
        """Whether ``channel`` has a subscriber (the bus is asked at most every
        :data:`LISTENERS_TTL` seconds; an unanswered question counts as none)."""
        now = time.monotonic()
        count, asked = self._listeners.get(channel, (0, -LISTENERS_TTL))
        if now - asked >= LISTENERS_TTL:
            try:
                count = self.bus.subscribers(channel)
            except TcpLabError as e:
                log.warning("%s: could not count the subscribers of %s: %s", self.source,
                            channel, one_line(e))
                count = 0
            self._listeners[channel] = (count, now)
        return count > 0

    def event(self, kind: str, /, **detail: Any) -> None:
        """Publish ``collector.<kind>`` on ``system:events`` (and log it)."""
        log.info("%s: %s %s", self.source, kind, detail)
        if self.bus is None:
            return
        message = EventMessage(kind=f"collector.{kind}", source=self.source,
                               ts=pd.Timestamp.now("UTC"), detail=_jsonable(detail))
        if self._publish(SYSTEM_EVENTS, message):
            self._count("events_published")

    def _publish(self, channel: str, message: Any) -> bool:
        try:
            self.bus.publish(channel, message)
            return True
        except TcpLabError as e:  # the bus retried already; the store has the data
            self._count("publish_errors")
            log.error("%s: could not publish on %s: %s", self.source, channel, one_line(e))
            return False
