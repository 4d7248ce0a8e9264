"""Timeframes, the right-aligned bucket rule, and the candle schema check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcp_lab.errors import DataError
from tcp_lab.timeframes import (
    TS_DTYPE,
    close_time,
    parse_timeframe,
    to_utc_timestamp,
    validate_candles,
)


@pytest.mark.parametrize(
    ("text", "name", "seconds"),
    [("1m", "1m", 60), ("5m", "5m", 300), ("15m", "15m", 900), ("30m", "30m", 1800),
     ("1h", "1h", 3600), ("4h", "4h", 14400), ("1d", "1d", 86400), ("60m", "1h", 3600),
     ("1440m", "1d", 86400), ("24h", "1d", 86400), ("12h", "12h", 43200), ("90m", "90m", 5400)],
)
def test_parse_timeframe(text, name, seconds):
    tf = parse_timeframe(text)
    assert (tf.name, tf.seconds) == (name, seconds)
    assert tf.us == seconds * 1_000_000
    assert tf.delta == pd.Timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7m", "1w", "2d", "0m", "abc", "", "5", "m5", "1s", "25h"])
def test_parse_timeframe_rejects(text):
    with pytest.raises(DataError, match="timeframe"):
        parse_timeframe(text)


def test_per_year_uses_a_365_day_year():
    assert parse_timeframe("1d").per_year == 365
    assert parse_timeframe("1h").per_year == 365 * 24


@pytest.mark.parametrize(
    ("ts", "tf", "expected"),
    [
        # a trade on the boundary belongs to the candle it closes
        ("2024-01-01 09:05:00", "5m", "2024-01-01 09:05:00"),
        ("2024-01-01 09:05:00.001", "5m", "2024-01-01 09:10:00"),
        ("2024-01-01 09:00:00.001", "5m", "2024-01-01 09:05:00"),
        ("2024-01-01 00:00:00", "1d", "2024-01-01 00:00:00"),
        ("2024-01-01 00:00:00.000001", "1d", "2024-01-02 00:00:00"),
        ("2024-01-01 13:30:00", "4h", "2024-01-01 16:00:00"),
    ],
)
def test_close_time_is_right_aligned(ts, tf, expected):
    assert close_time(pd.Timestamp(ts, tz="UTC"), tf) == pd.Timestamp(expected, tz="UTC")


@given(st.integers(min_value=0, max_value=4_000_000_000_000_000), st.sampled_from(
    ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]))
def test_close_time_bucket_rule_holds_for_all_times(us, tf):
    t = pd.Timestamp(us, unit="us", tz="UTC")
    T = close_time(t, tf)
    width = parse_timeframe(tf).delta
    assert T - width < t <= T
    assert T.value % (parse_timeframe(tf).us * 1000) == 0


def test_to_utc_timestamp_converts_aware_and_rejects_naive():
    t = to_utc_timestamp("2024-01-01T01:00+01:00")
    assert t == pd.Timestamp("2024-01-01T00:00", tz="UTC")
    with pytest.raises(DataError, match="no time zone"):
        to_utc_timestamp("2024-01-01 00:00")
    with pytest.raises(DataError, match="not a timestamp"):
        to_utc_timestamp("yesterday-ish")


def _candles(n=5, tz="UTC"):
    idx = pd.date_range("2024-01-01 00:01", periods=n, freq="1min", tz=tz, name="ts")
    c = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"open": c, "high": c + 1, "low": c - 1, "close": c + 0.5, "volume": 1.0,
         "trade_count": 3}, index=idx)


def test_validate_candles_normalises():
    out = validate_candles(_candles().iloc[::-1], "1m")
    assert str(out.index.dtype) == TS_DTYPE
    assert out.index.name == "ts"
    assert out.index.is_monotonic_increasing
    assert out["trade_count"].dtype == np.int64
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "trade_count"]


def test_validate_candles_converts_other_zones_without_shifting():
    c = _candles(tz="UTC").tz_convert("America/New_York")
    out = validate_candles(c, "1m")
    assert out.index[0] == pd.Timestamp("2024-01-01 00:01", tz="UTC")


def test_validate_candles_accepts_ts_column():
    c = _candles().reset_index()
    assert len(validate_candles(c, "1m")) == 5


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.tz_localize(None), "no time zone"),
        (lambda c: c.assign(close=[1, 2, np.nan, 4, 5]), r"NaN.*1 row\(s\) at 2024-01-01 00:03"),
        (lambda c: c.assign(open=-c["open"]), "non-positive price"),
        (lambda c: c.assign(volume=-1.0), "negative volume"),
        (lambda c: c.assign(high=c["low"] - 1), "high/low do not bracket"),
        (lambda c: c.drop(columns=["close"]), "missing column"),
        (lambda c: pd.concat([c, c.iloc[[1]]]), "duplicate timestamps"),
        (lambda c: c.set_axis(c.index + pd.Timedelta(seconds=1)), "not on the 1m close grid"),
    ],
)
def test_validate_candles_rejects_bad_input_naming_rows(mutate, match):
    with pytest.raises(DataError, match=match):
        validate_candles(mutate(_candles()), "1m", name="candles for BTC/USDT 1m")


def test_validate_candles_message_names_the_series():
    c = _candles().assign(volume=-1.0)
    with pytest.raises(DataError, match="^candles for BTC/USDT 1m"):
        validate_candles(c, "1m", name="candles for BTC/USDT 1m")
