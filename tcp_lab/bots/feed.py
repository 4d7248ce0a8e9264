"""One bus subscription per set of channels, shared by the bots of a process.

On the embedded default every bot is a thread of the same process. Were each
to subscribe on its own, every candle would be decoded once per bot, each in
its own listener thread; with a :class:`CandleFeed` it is decoded once and
handed to every bot's inbox. A reconnect of the shared subscription is
passed on to every bot (each then catches up from the store).

Channels asked for together share one subscription, so their messages keep
the order they were published in (a bot with stops takes ``market:{symbol}``
and ``trades:{symbol}`` together: a candle's trades come before the candle).

Examples
--------
>>> feed = CandleFeed(bus)                                     # doctest: +SKIP
>>> sub = feed.subscribe("market:BTC/USDT", handler=inbox.put)  # doctest: +SKIP
>>> both = feed.subscribe("market:BTC/USDT", "trades:BTC/USDT",  # doctest: +SKIP
...                       handler=inbox.put)
>>> sub.close()                                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcp_lab.bus import Bus, Subscription

__all__ = ["CandleFeed"]

log = logging.getLogger("tcp_lab.bots")

Handler = Callable[[Any], object]


class _Channel:
    def __init__(self) -> None:
        self.listeners: dict[int, tuple[Handler, Callable[[], object] | None]] = {}
        self.subscription: Subscription | None = None

    def deliver(self, message: Any) -> None:
        for handler, _ in list(self.listeners.values()):
            try:
                handler(message)
            except Exception:  # one bot's handler must not starve the others
                log.exception("candle feed: a handler raised")

    def reconnected(self) -> None:
        for _, on_reconnect in list(self.listeners.values()):
            if on_reconnect is not None:
                try:
                    on_reconnect()
                except Exception:
                    log.exception("candle feed: an on_reconnect callback raised")


class _Registration:
    def __init__(self, feed: CandleFeed, channel: tuple[str, ...], key: int) -> None:
        self._feed, self._channel, self._key = feed, channel, key

    def close(self) -> None:
        """Stop delivering to this listener (the last one closes the subscription)."""
        self._feed._remove(self._channel, self._key)


class CandleFeed:
    """Fans messages of the bus's channels out to in-process listeners."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, ...], _Channel] = {}
        self._next = 0

    def subscribe(self, *channels: str, handler: Handler,
                  on_reconnect: Callable[[], object] | None = None) -> _Registration:
        """Deliver the messages of ``channels`` to ``handler`` from now on, in the order
        they were published (as ``Bus.subscribe``)."""
        channel = tuple(channels)
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = _Channel()
                entry.subscription = self.bus.subscribe(*channel, handler=entry.deliver,
                                                        on_reconnect=entry.reconnected)
                self._channels[channel] = entry
            self._next += 1
            entry.listeners[self._next] = (handler, on_reconnect)
            return _Registration(self, channel, self._next)

    def _remove(self, channel: tuple[str, ...], key: int) -> None:
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None or entry.listeners.pop(key, None) is None:
                return
            if entry.listeners:
                return
            del self._channels[channel]
        if entry.subscription is not None:
            entry.subscription.close()
