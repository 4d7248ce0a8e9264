"""The tcp_lab message bus: publish/subscribe over Redis, or fakeredis in-process.

``open_bus(url)`` picks the backend from the URL (see :mod:`tcp_lab.bus.backends`):
``memory://`` (the default, one process) or ``redis://host:6379/0`` (shared by
the collector, the bots and the notebooks). Channel names live in
:mod:`tcp_lab.bus.channels`, message shapes in :mod:`tcp_lab.bus.messages`.

>>> import pandas as pd
>>> from tcp_lab.bus import open_bus, market_channel, CandleMessage
>>> bus = open_bus("memory://example")
>>> sub = bus.subscribe(market_channel("BTC/USDT"))
>>> candle = CandleMessage(exchange="binance", symbol="BTC/USDT", timeframe="1m",
...                        ts=pd.Timestamp("2024-03-01 09:05", tz="UTC"), open=1.0,
...                        high=2.0, low=0.5, close=1.5, volume=10.0, trade_count=3)
>>> bus.publish(market_channel("BTC/USDT"), candle)
1
>>> sub.get(timeout=1.0) == candle
True
>>> bus.close()   # closes the subscription too

Logging goes to the ``tcp_lab.bus`` logger: dropped malformed messages,
handler errors, retries and every reconnect attempt.
"""

from __future__ import annotations

from tcp_lab.bus._retry import Backoff
from tcp_lab.bus.backends import backend_schemes, memory_server, register_backend
from tcp_lab.bus.channels import (
    SYSTEM_EVENTS,
    market_channel,
    market_pattern,
    signals_channel,
    signals_pattern,
    status_channel,
    status_pattern,
    system_channel,
    trades_channel,
    trades_pattern,
)
from tcp_lab.bus.core import Bus, open_bus
from tcp_lab.bus.messages import (
    BOT_STATUSES,
    VERSION,
    BaseMessage,
    CandleMessage,
    EventMessage,
    Message,
    MessageError,
    MessageTypeError,
    MessageVersionError,
    SignalMessage,
    StatusMessage,
    TradesMessage,
    candles_from_messages,
    decode,
    encode,
)
from tcp_lab.bus.subscription import Handler, Subscription

__all__ = [
    "open_bus",
    "Bus",
    "Subscription",
    "Handler",
    "Backoff",
    "register_backend",
    "backend_schemes",
    "memory_server",
    "market_channel",
    "trades_channel",
    "signals_channel",
    "status_channel",
    "system_channel",
    "SYSTEM_EVENTS",
    "market_pattern",
    "trades_pattern",
    "signals_pattern",
    "status_pattern",
    "VERSION",
    "BOT_STATUSES",
    "Message",
    "BaseMessage",
    "CandleMessage",
    "TradesMessage",
    "SignalMessage",
    "StatusMessage",
    "EventMessage",
    "MessageError",
    "MessageVersionError",
    "MessageTypeError",
    "encode",
    "decode",
    "candles_from_messages",
]
