"""Message shapes of the tcp_lab bus, defined once.

Every message is a frozen pydantic model that travels as one JSON object:

``v``
    Wire-format version, always ``1`` for these models. A reader that meets
    another version raises :class:`MessageVersionError` instead of guessing.
``type``
    ``"candle"``, ``"trades"``, ``"signal"``, ``"status"`` or ``"event"``; picks
    the model.
``ts`` (and every other time)
    UTC, ISO 8601 with a ``Z`` suffix and exactly six fractional digits:
    ``"2024-03-01T09:05:00.000000Z"`` (microseconds, tcp_lab's resolution;
    fixed width, so the strings sort like the times). In Python the fields
    are tz-aware UTC ``pandas.Timestamp`` objects; ``datetime``, ``Timestamp``
    or ISO strings with an offset are accepted and converted, naive times
    and epoch numbers are rejected, sub-microsecond digits are truncated.

Floats must be finite (NaN indicator values become ``null``/``None``).
A :class:`TradesMessage` carries its trades as three JSON arrays (times as
integer epoch microseconds, prices, amounts): plain JSON like the others, and
cheap to build and read (about a millisecond per thousand trades both ways);
a float goes through JSON and back bit for bit.
Unknown fields are rejected. Build messages with keyword arguments; invalid
input raises ``pydantic.ValidationError`` (a ``ValueError``).

>>> import pandas as pd
>>> ts = pd.Timestamp("2024-03-01 09:05", tz="UTC")
>>> msg = StatusMessage(bot_id="sma-btc", status="running", ts=ts)
>>> encode(msg)
'{"v":1,"type":"status","ts":"2024-03-01T09:05:00.000000Z","bot_id":"sma-btc","status":"running","detail":"","heartbeat":null,"last_candle_ts":null}'
>>> decode(encode(msg)) == msg
True
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from numbers import Real
from typing import Annotated, Any, Literal, TypeAlias, get_args

import numpy as np
import orjson
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from tcp_lab.bus.channels import NAME_PATTERN
from tcp_lab.errors import DataError
from tcp_lab.timeframes import (
    CANDLE_COLUMNS,
    close_time,
    empty_candles,
    parse_timeframe,
    to_utc_timestamp,
    validate_candles,
)

__all__ = [
    "VERSION",
    "UtcTimestamp",
    "BaseMessage",
    "CandleMessage",
    "TradesMessage",
    "SignalMessage",
    "StatusMessage",
    "EventMessage",
    "Message",
    "MESSAGE_TYPES",
    "BOT_STATUSES",
    "BotStatus",
    "SignalAction",
    "candles_from_messages",
    "MessageError",
    "MessageVersionError",
    "MessageTypeError",
    "encode",
    "decode",
]

#: The wire-format version written by :func:`encode` and accepted by :func:`decode`.
VERSION = 1
#: Lifecycle states a bot reports on ``status:{bot_id}``.
BotStatus: TypeAlias = Literal["starting", "running", "stopping", "stopped", "crashed", "failed"]
BOT_STATUSES: tuple[str, ...] = get_args(BotStatus)
#: What a signal tells the broker to do.
SignalAction: TypeAlias = Literal["buy", "sell", "hold"]
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")  # _TS_FORMAT's output
_SHOWN = 200  # characters of a bad payload quoted in error messages


class MessageError(DataError):
    """A bus payload is not a valid tcp_lab message (bad JSON, bad fields)."""


class MessageVersionError(MessageError):
    """A bus payload has a wire-format version this tcp_lab does not understand."""


class MessageTypeError(MessageError):
    """A bus payload has an unknown ``type``."""


def _to_utc(value: Any) -> pd.Timestamp:
    if isinstance(value, pd.Timestamp) and value.tzinfo is UTC and value.unit == "us":
        return value  # already what the rest would make of it (the common case)
    if isinstance(value, str) and _CANONICAL_TS.fullmatch(value):
        return pd.Timestamp(value)  # what encode writes: UTC, to the µs (a sixth of the cost)
    if isinstance(value, bool | int | float):
        raise ValueError(
            f"epoch number {value!r} is not accepted as a time; "
            "pass a tz-aware UTC time or an ISO 8601 string ending in Z"
        )
    if not isinstance(value, str | datetime):  # pd.Timestamp is a datetime
        raise ValueError(f"expected a tz-aware time, got {type(value).__name__}")
    ts = to_utc_timestamp(value, name="time")  # DataError (a ValueError) if naive
    return ts.floor("us").as_unit("us")


def _format_utc(ts: pd.Timestamp) -> str:
    return ts.strftime(_TS_FORMAT)


#: A tz-aware UTC ``pandas.Timestamp`` (microseconds); ISO 8601 ``…Z`` in JSON.
UtcTimestamp: TypeAlias = Annotated[
    pd.Timestamp,
    PlainValidator(_to_utc),
    PlainSerializer(_format_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=200)]
Price = Annotated[float, Field(gt=0)]


class BaseMessage(BaseModel):
    """Fields every message has: version ``v``, ``type`` and time ``ts`` (UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    v: Literal[1] = VERSION
    type: str
    ts: UtcTimestamp


class CandleMessage(BaseMessage):
    """One closed (or corrected) candle, published on ``market:{symbol}``.

    ``ts`` is the candle's close time: the candle holds trades in
    ``(ts - timeframe, ts]``. ``corrected=True`` marks a re-publication of a
    candle already sent (late trades, a repair); receivers replace the old one.
    """

    type: Literal["candle"] = "candle"
    exchange: Name
    symbol: Name
    timeframe: str
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Annotated[float, Field(ge=0)]
    trade_count: Annotated[int, Field(ge=0)]
    vwap: Price | None = None
    corrected: bool = False

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        return parse_timeframe(v).name  # canonical spelling; DataError is a ValueError

    @model_validator(mode="after")
    def _consistent(self) -> CandleMessage:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(
                f"candle {self.symbol} {self.timeframe} at {self.ts}: high/low do not bracket "
                f"open/close (open={self.open}, high={self.high}, low={self.low}, "
                f"close={self.close})"
            )
        if close_time(self.ts, self.timeframe) != self.ts:
            raise ValueError(
                f"candle {self.symbol} {self.timeframe}: ts={self.ts} is not a close time of "
                f"the {self.timeframe} grid (candles are stamped with their close time)"
            )
        return self

    @classmethod
    def from_candles(
        cls,
        candles: pd.DataFrame,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        corrected: bool = False,
    ) -> list[CandleMessage]:
        """One message per row of a candle frame (checked with ``validate_candles``).

        Examples
        --------
        >>> from tcp_lab.timeframes import validate_candles
        >>> df = pd.DataFrame({"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5],
        ...                    "volume": [3.0], "trade_count": [4]},
        ...                   index=pd.DatetimeIndex(["2024-01-01 00:01"], tz="UTC", name="ts"))
        >>> [m.close for m in CandleMessage.from_candles(df, exchange="binance",
        ...                                              symbol="BTC/USDT", timeframe="1m")]
        [1.5]
        """
        df = validate_candles(candles, timeframe, name=f"candles for {symbol} {timeframe}")
        has_vwap = "vwap" in df.columns
        return [
            cls(
                exchange=exchange, symbol=symbol, timeframe=timeframe, ts=ts,
                open=row.open, high=row.high, low=row.low, close=row.close,
                volume=row.volume, trade_count=row.trade_count,
                vwap=row.vwap if has_vwap and not math.isnan(row.vwap) else None,
                corrected=corrected,
            )
            for ts, row in zip(df.index, df.itertuples(index=False), strict=True)
        ]


def candles_from_messages(messages: Iterable[CandleMessage]) -> pd.DataFrame:
    """A candle frame (the schema of ``validate_candles``) from candle messages.

    Later messages for the same ``ts`` win (so a ``corrected`` candle replaces
    the original); the result is sorted by ``ts``. Exchange, symbol and
    timeframe are not checked: pass the messages of one series.
    """
    rows = {m.ts: m for m in messages}
    if not rows:
        return empty_candles()
    msgs = list(rows.values())
    data: dict[str, list[Any]] = {c: [getattr(m, c) for m in msgs] for c in CANDLE_COLUMNS}
    if any(m.vwap is not None for m in msgs):
        data["vwap"] = [math.nan if m.vwap is None else m.vwap for m in msgs]
    index = pd.DatetimeIndex([m.ts for m in msgs], name="ts")
    return validate_candles(pd.DataFrame(data, index=index), msgs[0].timeframe)


class TradesMessage(BaseMessage):
    """A batch of live market trades of ``symbol``, published on ``trades:{symbol}``.

    ``times`` (epoch microseconds, UTC, non-decreasing), ``prices`` and
    ``amounts`` are equal-length arrays, one entry per trade, in the
    exchange's order. ``seq`` numbers the batches of one ``stream`` (a
    collector's feed of one symbol; a new stream starts at 0 after a restart
    or a break in the exchange feed), so a subscriber that sees anything but
    the previous ``seq + 1`` of the same stream knows it missed trades.
    ``until`` (None: no claim) says that every trade of the stream at or
    before it is in this batch or an earlier one: the collector sets it on the
    batch it sends just before the candles closing up to then, which may then
    hold no trade. ``ts`` is the newest trade's time, or ``until`` if later.

    Examples
    --------
    >>> m = TradesMessage.from_arrays(exchange="binance", symbol="BTC/USDT", stream="c1",
    ...                               seq=0, times=[1_709_283_900_000_000],
    ...                               prices=[0.00012345], amounts=[2.5])
    >>> m.ts
    Timestamp('2024-03-01 09:05:00+0000', tz='UTC')
    >>> [a.tolist() for a in decode(encode(m)).arrays()]
    [[1709283900000000], [0.00012345], [2.5]]
    """

    type: Literal["trades"] = "trades"
    exchange: Name
    symbol: Name
    stream: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    seq: Annotated[int, Field(ge=0)]
    until: UtcTimestamp | None = None
    times: list[int]
    prices: list[Price]
    amounts: list[Annotated[float, Field(ge=0)]]

    @model_validator(mode="after")
    def _consistent(self) -> TradesMessage:
        n = len(self.times)
        if len(self.prices) != n or len(self.amounts) != n:
            raise ValueError(f"trades of {self.symbol}: {n} times, {len(self.prices)} prices "
                             f"and {len(self.amounts)} amounts; expected one of each per trade")
        t = self.times
        if any(a > b for a, b in zip(t, t[1:], strict=False)):
            raise ValueError(f"trades of {self.symbol}: times are not in order")
        return self

    @classmethod
    def from_arrays(cls, *, exchange: str, symbol: str, stream: str, seq: int, times: Any,
                    prices: Any, amounts: Any, until: Any = None) -> TradesMessage:
        """A message from array-likes (``times`` as epoch microseconds, sorted); ``ts`` is
        the newest trade's time, or ``until`` if later.

        Raises
        ------
        ValueError
            Neither trades nor ``until``, lengths that differ, times out of order,
            bad values.
        """
        t = np.asarray(times, dtype=np.int64)
        newest = [_to_utc(until)] if until is not None else []
        if len(t):
            newest.append(pd.Timestamp(int(t.max()), unit="us", tz="UTC"))
        if not newest:
            raise ValueError(f"trades of {symbol}: a batch needs a trade or an 'until'")
        return cls(exchange=exchange, symbol=symbol, stream=stream, seq=seq, until=until,
                   ts=max(newest), times=t.tolist(),
                   prices=np.asarray(prices, dtype=np.float64).tolist(),
                   amounts=np.asarray(amounts, dtype=np.float64).tolist())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ts, price, amount)``: int64 epoch microseconds and float64 arrays, what
        :meth:`tcp_lab.store.Store.load_trade_prices` returns for stored trades."""
        return (np.array(self.times, dtype=np.int64), np.array(self.prices, dtype=np.float64),
                np.array(self.amounts, dtype=np.float64))


class SignalMessage(BaseMessage):
    """A strategy decision of bot ``bot_id`` on the candle closing at ``ts``.

    ``indicators`` maps indicator names to their values on that candle; NaN
    (e.g. during warm-up) is stored as ``None``. ``symbol`` names the symbol of a
    portfolio bot's signal (one per symbol with a candle at ``ts``); None for a bot
    of one symbol.
    """

    type: Literal["signal"] = "signal"
    bot_id: Name
    symbol: Name | None = None
    action: SignalAction
    confidence: Annotated[float, Field(ge=0, le=1)]
    price: Price
    indicators: dict[str, float | None] = Field(default_factory=dict)

    @field_validator("indicators", mode="before")
    @classmethod
    def _nan_to_none(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        return {
            k: None if isinstance(x, Real) and not isinstance(x, bool) and math.isnan(x) else x
            for k, x in v.items()
        }


class StatusMessage(BaseMessage):
    """A bot's lifecycle state at ``ts``, published on ``status:{bot_id}``.

    ``heartbeat`` is the time of the bot's last loop iteration (set on
    periodic heartbeats); ``last_candle_ts`` the close time of the last candle
    it processed. ``detail`` says why (an error message when ``crashed``).
    """

    type: Literal["status"] = "status"
    bot_id: Name
    status: BotStatus
    detail: str = ""
    heartbeat: UtcTimestamp | None = None
    last_candle_ts: UtcTimestamp | None = None


class EventMessage(BaseMessage):
    """A system event on ``system:events``: ``kind`` (``"collector.gap"``…) from ``source``."""

    type: Literal["event"] = "event"
    kind: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    detail: dict[str, JsonValue] = Field(default_factory=dict)


#: Any bus message; ``type`` picks the model.
Message: TypeAlias = Annotated[
    CandleMessage | TradesMessage | SignalMessage | StatusMessage | EventMessage,
    Field(discriminator="type"),
]
#: ``type`` value -> model class.
MESSAGE_TYPES: dict[str, type[BaseMessage]] = {
    "candle": CandleMessage,
    "trades": TradesMessage,
    "signal": SignalMessage,
    "status": StatusMessage,
    "event": EventMessage,
}


def encode(message: BaseMessage) -> str:
    """Serialise a message model to its compact JSON wire form.

    Raises
    ------
    MessageError
        ``message`` is not a bus message model.

    Examples
    --------
    >>> import pandas as pd
    >>> encode(EventMessage(kind="demo", source="doc", ts=pd.Timestamp(0, tz="UTC")))
    '{"v":1,"type":"event","ts":"1970-01-01T00:00:00.000000Z","kind":"demo","source":"doc","detail":{}}'
    """
    if not isinstance(message, BaseMessage):
        raise MessageError(
            f"cannot publish a {type(message).__name__}: expected a bus message model",
            hint="build one of " + ", ".join(m.__name__ for m in MESSAGE_TYPES.values()),
        )
    return message.model_dump_json()


def _shown(raw: str | bytes) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return repr(text[:_SHOWN] + ("…" if len(text) > _SHOWN else ""))


def decode(raw: str | bytes) -> Message:
    """Parse a JSON payload into its message model.

    Parameters
    ----------
    raw
        The payload as received from the bus (``str`` or UTF-8 ``bytes``).

    Returns
    -------
    CandleMessage | TradesMessage | SignalMessage | StatusMessage | EventMessage

    Raises
    ------
    MessageError
        Not JSON, not an object, no ``v``, or fields that fail validation.
    MessageVersionError
        ``v`` is not a version this tcp_lab reads.
    MessageTypeError
        ``type`` is missing or unknown.

    Examples
    --------
    >>> decode('{"v":1,"type":"event","ts":"2024-01-01T00:00:00Z","kind":"k","source":"s"}').kind
    'k'
    """
    try:
        data = orjson.loads(raw)  # strict JSON (no NaN literals), 5x faster than json
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MessageError(f"bus payload is not valid JSON ({e}): {_shown(raw)}") from None
    if not isinstance(data, dict):
        raise MessageError(
            f"bus payload is a JSON {type(data).__name__}, expected an object: {_shown(raw)}"
        )
    version = data.get("v")
    if "v" not in data:
        raise MessageError(f"bus payload has no version field 'v': {_shown(raw)}")
    if type(version) is not int or version != VERSION:
        raise MessageVersionError(
            f"bus message version v={version!r} is not supported (this tcp_lab reads "
            f"v={VERSION}): {_shown(raw)}",
            hint="run the same tcp_lab version on every publisher and subscriber",
        )
    kind = data.get("type")
    model = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        guess = difflib.get_close_matches(str(kind), MESSAGE_TYPES, n=1)
        did_you_mean = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise MessageTypeError(
            f"bus message type {kind!r} is unknown{did_you_mean}; expected one of "
            + ", ".join(MESSAGE_TYPES) + f": {_shown(raw)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "message"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        reason = err["msg"].removeprefix("Value error, ")
        raise MessageError(
            f"bus {kind} message is invalid at {where}: {reason}{more}: {_shown(raw)}"
        ) from None
