"""Message models: JSON round trip, version field, timestamps, decode errors."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tcp_lab.bus import (
    BOT_STATUSES,
    VERSION,
    CandleMessage,
    EventMessage,
    MessageError,
    MessageTypeError,
    MessageVersionError,
    SignalMessage,
    StatusMessage,
    candles_from_messages,
    decode,
    encode,
)
from tcp_lab.bus.channels import NAME_PATTERN
from tcp_lab.timeframes import TIMEFRAMES, parse_timeframe, validate_candles

TS = pd.Timestamp("2024-03-01 09:05", tz="UTC")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# -- strategies ------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(
    lambda s: re.fullmatch(NAME_PATTERN, s) is not None)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(UTC)).map(pd.Timestamp)
prices = st.floats(min_value=1e-8, max_value=1e9, allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=10,
)


@st.composite
def candles(draw) -> CandleMessage:
    tf = parse_timeframe(draw(st.sampled_from(TIMEFRAMES)))
    ts = pd.Timestamp(draw(st.integers(1, 4_000_000_000 // tf.seconds)) * tf.seconds,
                      unit="s", tz="UTC")
    a, b, lo, hi = (draw(prices) for _ in range(4))
    low, high = min(a, b, lo, hi), max(a, b, lo, hi)
    return CandleMessage(
        exchange=draw(names), symbol=draw(names), timeframe=tf.name, ts=ts, open=a, high=high,
        low=low, close=b, volume=draw(st.floats(0, 1e12)), trade_count=draw(st.integers(0, 10**9)),
        vwap=draw(st.none() | st.just((low + high) / 2)), corrected=draw(st.booleans()),
    )


signals = st.builds(
    SignalMessage, bot_id=names, ts=times, action=st.sampled_from(["buy", "sell", "hold"]),
    confidence=st.floats(0, 1), price=prices,
    indicators=st.dictionaries(st.text(max_size=8),
                               st.none() | st.floats(allow_infinity=False), max_size=4),
)
statuses = st.builds(
    StatusMessage, bot_id=names, ts=times, status=st.sampled_from(BOT_STATUSES),
    detail=st.text(max_size=30), heartbeat=st.none() | times, last_candle_ts=st.none() | times,
)
events = st.builds(
    EventMessage, kind=names, source=names, ts=times,
    detail=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
messages = candles() | signals | statuses | events


def _status(**kw) -> StatusMessage:
    return StatusMessage(**{"bot_id": "b1", "status": "running", "ts": TS, **kw})


# -- round trip ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(messages)
def test_json_round_trip_keeps_every_field(msg):
    wire = encode(msg)
    back = decode(wire)
    assert type(back) is type(msg)
    assert back == msg
    assert encode(back) == wire
    data = json.loads(wire)
    assert data["v"] == VERSION == 1
    assert data["type"] == msg.type
    assert ISO_Z.match(data["ts"])
    assert back.ts.tz is not None and back.ts.unit == "us"


@settings(max_examples=30, deadline=None)
@given(messages)
def test_bytes_payloads_decode_like_text(msg):
    assert decode(encode(msg).encode()) == msg


def test_wire_format_is_pinned():
    wire = encode(_status(heartbeat=TS))
    assert json.loads(wire) == {
        "v": 1, "type": "status", "ts": "2024-03-01T09:05:00.000000Z", "bot_id": "b1",
        "status": "running", "detail": "", "heartbeat": "2024-03-01T09:05:00.000000Z",
        "last_candle_ts": None,
    }


# -- timestamps ------------------------------------------------------------------------------

@pytest.mark.parametrize("naive", [
    datetime(2024, 1, 1), pd.Timestamp("2024-01-01"), "2024-01-01T00:00:00",
])
def test_naive_timestamp_is_rejected(naive):
    with pytest.raises(ValidationError, match="no time zone"):
        _status(ts=naive)


@pytest.mark.parametrize("epoch", [1_700_000_000_000, 1.7e9, True])
def test_epoch_numbers_are_rejected(epoch):
    with pytest.raises(ValidationError, match="epoch"):
        _status(ts=epoch)


def test_other_time_zones_are_converted_to_utc():
    cet = datetime(2024, 3, 1, 10, 5, tzinfo=timezone(timedelta(hours=1)))
    msg = _status(ts=cet, last_candle_ts="2024-03-01T11:05:00+02:00")
    assert msg.ts == TS and str(msg.ts.tz) == "UTC"
    assert msg.last_candle_ts == TS
    assert json.loads(encode(msg))["ts"] == "2024-03-01T09:05:00.000000Z"


def test_sub_microsecond_digits_are_truncated():
    msg = _status(ts=pd.Timestamp("2024-03-01 09:05:00.123456789", tz="UTC"))
    assert msg.ts == pd.Timestamp("2024-03-01 09:05:00.123456", tz="UTC")


# -- validation ------------------------------------------------------------------------------

def _candle(**kw) -> CandleMessage:
    base = dict(exchange="binance", symbol="BTC/USDT", timeframe="5m", ts=TS, open=10.0,
                high=12.0, low=9.0, close=11.0, volume=5.0, trade_count=7)
    return CandleMessage(**{**base, **kw})


@pytest.mark.parametrize("bad, match", [
    ({"high": 10.5}, "bracket"),
    ({"low": 10.5}, "bracket"),
    ({"ts": TS + pd.Timedelta(minutes=1)}, "close time"),
    ({"timeframe": "7m"}, "divide"),
    ({"open": -1.0}, "greater than 0"),
    ({"volume": math.nan}, "finite"),
    ({"trade_count": -1}, "greater than or equal"),
    ({"symbol": "BTC USDT"}, "pattern"),
    ({"extra": 1}, "Extra inputs"),
])
def test_invalid_candles_are_rejected(bad, match):
    with pytest.raises(ValidationError, match=match):
        _candle(**bad)


def test_timeframe_is_canonicalised():
    assert _candle(timeframe="60m", ts=TS.ceil("1h")).timeframe == "1h"


def test_signal_nan_indicators_become_none_and_confidence_is_bounded():
    sig = SignalMessage(bot_id="b", ts=TS, action="buy", confidence=0.5, price=10.0,
                        indicators={"sma": math.nan, "rsi": 55})
    assert sig.indicators == {"sma": None, "rsi": 55.0}
    with pytest.raises(ValidationError):
        SignalMessage(bot_id="b", ts=TS, action="buy", confidence=1.5, price=10.0)
    with pytest.raises(ValidationError):
        SignalMessage(bot_id="b", ts=TS, action="short", confidence=0.5, price=10.0)
    with pytest.raises(ValidationError):
        SignalMessage(bot_id="b", ts=TS, action="buy", confidence=0.5, price=math.inf)


def test_status_values_and_frozen_models():
    with pytest.raises(ValidationError):
        _status(status="dancing")
    msg = _status()
    with pytest.raises(ValidationError, match="frozen"):
        msg.status = "stopped"  # type: ignore[misc]


def test_event_detail_must_be_json():
    with pytest.raises(ValidationError):
        EventMessage(kind="k", source="s", ts=TS, detail={"x": object()})


# -- decode errors ---------------------------------------------------------------------------

GOOD = json.loads(encode(_status()))


@pytest.mark.parametrize("raw, error, match", [
    ("not json", MessageError, "not valid JSON"),
    (b"\xff\xfe", MessageError, "not valid JSON"),
    ("[1, 2]", MessageError, "expected an object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "v"}), MessageError, "no version"),
    (json.dumps({**GOOD, "v": 2}), MessageVersionError, "v=2"),
    (json.dumps({**GOOD, "v": "1"}), MessageVersionError, "v='1'"),
    (json.dumps({**GOOD, "v": True}), MessageVersionError, "v=True"),
    (json.dumps({**GOOD, "type": "statsu"}), MessageTypeError, "did you mean 'status'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "type"}), MessageTypeError, "None"),
    (json.dumps({**GOOD, "colour": "red"}), MessageError, "colour"),
    (json.dumps({**GOOD, "ts": "2024-03-01T09:05:00"}), MessageError, "no time zone"),
    (json.dumps({**GOOD, "status": 3}), MessageError, "status"),
])
def test_decode_errors_are_specific(raw, error, match):
    with pytest.raises(error, match=match) as info:
        decode(raw)
    assert "\n" not in str(info.value)


def test_decode_error_quotes_a_truncated_payload():
    with pytest.raises(MessageError) as info:
        decode("x" * 5000)
    assert len(str(info.value)) < 400 and "xxxx…" in str(info.value)


def test_encode_rejects_non_messages():
    with pytest.raises(MessageError, match="dict"):
        encode({"v": 1, "type": "status"})  # type: ignore[arg-type]


# -- candle frames -----------------------------------------------------------------------------

def test_candle_frame_round_trip_and_corrections():
    idx = pd.DatetimeIndex(["2024-03-01 09:05", "2024-03-01 09:10"], tz="UTC", name="ts")
    df = validate_candles(pd.DataFrame(
        {"open": [10.0, 11.0], "high": [12.0, 11.5], "low": [9.0, 10.5], "close": [11.0, 11.2],
         "volume": [5.0, 1.0], "trade_count": [7, 2], "vwap": [10.5, math.nan]}, index=idx), "5m")
    msgs = CandleMessage.from_candles(df, exchange="binance", symbol="BTC/USDT", timeframe="5m")
    assert [m.ts for m in msgs] == list(idx) and msgs[1].vwap is None
    pd.testing.assert_frame_equal(candles_from_messages(msgs), df)
    fixed = msgs[0].model_copy(update={"close": 11.9, "corrected": True})
    out = candles_from_messages([*msgs, fixed])
    assert out["close"].tolist() == [11.9, 11.2]
    assert candles_from_messages([]).empty


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_the_fast_path_reads_encoded_times_as_the_general_one(when):
    """A time as encode writes it ("…ffffffZ") parses to the same UTC µs Timestamp through the
    fast path as through to_utc_timestamp."""
    from tcp_lab.bus.messages import _format_utc, _to_utc
    from tcp_lab.timeframes import to_utc_timestamp

    text = _format_utc(pd.Timestamp(when, tz="UTC"))
    fast = _to_utc(text)
    general = to_utc_timestamp(text, name="time").floor("us").as_unit("us")
    assert fast == general and fast.unit == "us" and fast.tzinfo is UTC
