"""Channel names of the tcp_lab bus, defined once.

==========================  ================  ======================================
channel                     message type      published by
==========================  ================  ======================================
``market:{symbol}``         ``candle``        the data collector, per closed candle
``trades:{symbol}``         ``trades``        the data collector, live trades in
                                              batches, while someone subscribes
``signals:{bot_id}``        ``signal``        a bot, once per candle it evaluates
``status:{bot_id}``         ``status``        a bot: lifecycle changes, heartbeats
``system:events``           ``event``         any service (gaps, restarts, errors…)
==========================  ================  ======================================

Build names with the helpers (:func:`market_channel`, :func:`status_pattern`…)
rather than by hand, so a rename happens here only. Names are given to
:class:`~tcp_lab.bus.Bus` *without* the bus prefix (``?prefix=`` in the bus
URL); the bus adds and strips it.

>>> market_channel("BTC/USDT")
'market:BTC/USDT'
>>> status_pattern()
'status:*'
"""

from __future__ import annotations

import re

from tcp_lab.errors import DataError

__all__ = [
    "NAME_PATTERN",
    "SYSTEM_EVENTS",
    "CHANNEL_MESSAGE_TYPES",
    "market_channel",
    "trades_channel",
    "signals_channel",
    "status_channel",
    "system_channel",
    "market_pattern",
    "trades_pattern",
    "signals_pattern",
    "status_pattern",
    "check_name",
    "check_channel",
    "check_pattern",
    "channel_family",
]

#: What a symbol, bot id or exchange may look like on the bus: no whitespace and
#: none of Redis' glob characters, so a name can never act as a pattern.
NAME_PATTERN = r"^[^\s*?\[\]\\]+$"
_NAME = re.compile(NAME_PATTERN)
_GLOB = re.compile(r"[*?\[\]\\]")

MARKET = "market"
TRADES = "trades"
SIGNALS = "signals"
STATUS = "status"
SYSTEM = "system"
#: The one system-wide channel.
SYSTEM_EVENTS = f"{SYSTEM}:events"

#: Channel family (the part before the first ``:``) -> the message ``type`` it carries.
CHANNEL_MESSAGE_TYPES = {MARKET: "candle", TRADES: "trades", SIGNALS: "signal", STATUS: "status",
                         SYSTEM: "event"}


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it can be part of a channel name, else raise.

    Raises
    ------
    DataError
        Empty, not a string, or containing whitespace or ``* ? [ ] \\``.

    Examples
    --------
    >>> check_name("BTC/USDT", "symbol")
    'BTC/USDT'
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise DataError(
            f"{what} {value!r} cannot be used in a bus channel name",
            hint="use a non-empty string without spaces or the characters * ? [ ] \\",
        )
    return value


def check_channel(channel: str) -> str:
    """Return ``channel`` if it is a valid concrete channel name (no glob characters).

    Raises
    ------
    DataError
        For an empty name, whitespace or glob characters (use ``patterns=`` for those).
    """
    if isinstance(channel, str) and _GLOB.search(channel):
        raise DataError(
            f"channel {channel!r} contains glob characters",
            hint="pass it as a pattern: bus.subscribe(patterns=[...]); publish to concrete names",
        )
    return check_name(channel, "channel")


def check_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a usable Redis glob pattern (``status:*``).

    Raises
    ------
    DataError
        For a non-string, an empty pattern or one containing whitespace.
    """
    if not isinstance(pattern, str) or not pattern or any(c.isspace() for c in pattern):
        raise DataError(
            f"pattern {pattern!r} is not a valid channel pattern",
            hint="use a Redis glob such as 'status:*' (no spaces)",
        )
    return pattern


def channel_family(channel: str) -> str:
    """The part of ``channel`` before the first ``:`` (``"market"`` for ``market:BTC/USDT``)."""
    return channel.split(":", 1)[0]


def market_channel(symbol: str) -> str:
    """Channel of the closed candles of ``symbol`` (every exchange and timeframe).

    Examples
    --------
    >>> market_channel("ETH/USDT")
    'market:ETH/USDT'
    """
    return f"{MARKET}:{check_name(symbol, 'symbol')}"


def trades_channel(symbol: str) -> str:
    """Channel of the live market trades of ``symbol``, in batches (every exchange).

    The collector publishes on it only while someone subscribes, and a candle's
    trades before the candle itself (on :func:`market_channel`).

    Examples
    --------
    >>> trades_channel("ETH/USDT")
    'trades:ETH/USDT'
    """
    return f"{TRADES}:{check_name(symbol, 'symbol')}"


def signals_channel(bot_id: str) -> str:
    """Channel of the signals of bot ``bot_id``.

    Examples
    --------
    >>> signals_channel("sma-btc")
    'signals:sma-btc'
    """
    return f"{SIGNALS}:{check_name(bot_id, 'bot_id')}"


def status_channel(bot_id: str) -> str:
    """Channel of the status updates and heartbeats of bot ``bot_id``.

    Examples
    --------
    >>> status_channel("sma-btc")
    'status:sma-btc'
    """
    return f"{STATUS}:{check_name(bot_id, 'bot_id')}"


def system_channel() -> str:
    """The system-wide events channel, ``system:events``."""
    return SYSTEM_EVENTS


def market_pattern() -> str:
    """Pattern matching every market channel, ``market:*``."""
    return f"{MARKET}:*"


def trades_pattern() -> str:
    """Pattern matching every trades channel, ``trades:*``.

    The collector publishes trades only to channels with direct subscribers
    (``PUBSUB NUMSUB``): a pattern subscription alone does not make it publish.
    """
    return f"{TRADES}:*"


def signals_pattern() -> str:
    """Pattern matching every bot's signals channel, ``signals:*``."""
    return f"{SIGNALS}:*"


def status_pattern() -> str:
    """Pattern matching every bot's status channel, ``status:*``."""
    return f"{STATUS}:*"
