"""Candle storage contract, run against every backend (DuckDB, PostgreSQL)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_lab.errors import DataError
from tcp_lab.store.schema import SCHEMA_VERSION
from tcp_lab.timeframes import TS_DTYPE

KEY = ("binance", "BTC/USDT", "1m")


def test_round_trip_keeps_values_dtypes_and_order(store, candle_factory):
    df = candle_factory(300)
    assert store.save_candles(df.iloc[::-1], *KEY) == 300  # unsorted input is fine
    out = store.load_candles(*KEY)
    assert out.index.dtype == TS_DTYPE and out.index.name == "ts"
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "trade_count"]
    pd.testing.assert_frame_equal(out, df)


@pytest.mark.parametrize("n", [3, 200], ids=["small-batch", "bulk-batch"])
def test_writing_the_same_candles_twice_keeps_one_row_each(store, candle_factory, n):
    df = candle_factory(n)
    store.save_candles(df, *KEY)
    store.save_candles(df, *KEY)
    pd.testing.assert_frame_equal(store.load_candles(*KEY), df)
    assert store.info()["tables"]["market_data"] == n


@pytest.mark.parametrize("n", [5, 150], ids=["small-batch", "bulk-batch"])
def test_an_updated_last_candle_replaces_the_stored_one(store, candle_factory, n):
    df = candle_factory(n)
    store.save_candles(df, *KEY)
    last = df.iloc[[-1]].copy()
    last[["high", "close", "volume", "trade_count"]] = [last["high"].iloc[0] + 5,
                                                        last["high"].iloc[0] + 4, 99.5, 7]
    store.save_candles(last, *KEY)
    expected = pd.concat([df.iloc[:-1], last])
    pd.testing.assert_frame_equal(store.load_candles(*KEY), expected)


def test_overlapping_batches_take_the_newest_values(store, candle_factory):
    first = candle_factory(150, seed=1)
    second = candle_factory(150, start="2024-03-01 01:41", seed=2)  # overlaps rows 100…149
    store.save_candles(first, *KEY)
    store.save_candles(second, *KEY)
    expected = pd.concat([first.iloc[:100], second])
    pd.testing.assert_frame_equal(store.load_candles(*KEY), expected)


def test_range_reads_are_inclusive_on_close_time(store, candle_factory):
    df = candle_factory(100)
    store.save_candles(df, *KEY)
    a, b = df.index[10], df.index[20]
    pd.testing.assert_frame_equal(store.load_candles(*KEY, start=a, end=b), df.loc[a:b])
    pd.testing.assert_frame_equal(store.load_candles(*KEY, start=b), df.loc[b:])
    pd.testing.assert_frame_equal(store.load_candles(*KEY, end=a), df.loc[:a])
    between = a + pd.Timedelta(seconds=30)
    assert store.load_candles(*KEY, start=between, end=between).empty
    with pytest.raises(DataError, match="after"):
        store.load_candles(*KEY, start=b, end=a)


def test_empty_result_has_the_candle_schema(store):
    out = store.load_candles(*KEY)
    assert out.empty and out.index.dtype == TS_DTYPE
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "trade_count"]
    assert store.latest_candle_ts(*KEY) is None


def test_non_utc_times_are_converted_and_naive_ones_rejected(store, candle_factory):
    df = candle_factory(30)
    store.save_candles(df.tz_convert("Asia/Tokyo"), *KEY)
    pd.testing.assert_frame_equal(store.load_candles(*KEY), df)
    start_ny = df.index[5].tz_convert("America/New_York")
    pd.testing.assert_frame_equal(store.load_candles(*KEY, start=start_ny), df.iloc[5:])
    with pytest.raises(DataError, match="time zone"):
        store.save_candles(df.tz_localize(None), *KEY)
    with pytest.raises(DataError, match="time zone"):
        store.load_candles(*KEY, start=pd.Timestamp("2024-03-01"))
    with pytest.raises(DataError, match="time zone"):
        store.load_candles(*KEY, end="2024-03-01 00:10")
    pd.testing.assert_frame_equal(store.load_candles(*KEY), df)


def _nan_price(df):
    df.iloc[3, 0] = np.nan


def _negative_volume(df):
    df.iloc[3, df.columns.get_loc("volume")] = -1.0


def _high_below_low(df):
    df.iloc[3, df.columns.get_loc("high")] = df["low"].iloc[3] - 1


def _off_grid(df):
    df.index = df.index.where(np.arange(len(df)) != 3, df.index[3] + pd.Timedelta(seconds=1))


def _duplicate_key(df):
    df.index = df.index.where(np.arange(len(df)) != 3, df.index[2])


def _missing_column(df):
    del df["close"]


@pytest.mark.parametrize("n", [10, 120], ids=["small-batch", "bulk-batch"])
@pytest.mark.parametrize("spoil", [_nan_price, _negative_volume, _high_below_low, _off_grid,
                                   _duplicate_key, _missing_column])
def test_a_bad_batch_is_rejected_and_stored_data_stays_intact(store, candle_factory, spoil, n):
    stored = candle_factory(n, seed=1)
    store.save_candles(stored, *KEY)
    bad = candle_factory(n, seed=2)  # same keys, new values: a partial write would show
    spoil(bad)
    with pytest.raises(DataError, match="candles for BTC/USDT 1m"):
        store.save_candles(bad, *KEY)
    pd.testing.assert_frame_equal(store.load_candles(*KEY), stored)


def test_bad_timeframe_and_names_are_rejected(store, candle_factory):
    df = candle_factory(5)
    with pytest.raises(DataError, match="7m"):
        store.save_candles(df, "binance", "BTC/USDT", "7m")
    with pytest.raises(DataError, match="exchange"):
        store.save_candles(df, "", "BTC/USDT", "1m")
    with pytest.raises(DataError, match="7m"):
        store.load_candles("binance", "BTC/USDT", "7m")
    assert store.info()["tables"]["market_data"] == 0


def test_vwap_is_kept_when_present_with_nulls(store, candle_factory):
    df = candle_factory(80, vwap=True)
    df.iloc[5, df.columns.get_loc("vwap")] = np.nan
    store.save_candles(df, *KEY)
    pd.testing.assert_frame_equal(store.load_candles(*KEY), df)
    other = ("binance", "ETH/USDT", "1m")
    store.save_candles(candle_factory(4), *other)
    assert "vwap" not in store.load_candles(*other).columns


def test_series_are_kept_apart_and_listed(store, candle_factory):
    m1 = candle_factory(120)
    h1 = candle_factory(5, start="2024-03-01 01:00", timeframe="60m")  # stored as 1h
    eth = candle_factory(7, seed=3)
    store.save_candles(m1, *KEY)
    store.save_candles(h1, "binance", "BTC/USDT", "60m")
    store.save_candles(eth, "binance", "ETH/USDT", "1m")
    store.save_candles(eth, "kraken", "BTC/USDT", "1m")
    pd.testing.assert_frame_equal(store.load_candles("binance", "BTC/USDT", "1h"), h1)
    pd.testing.assert_frame_equal(store.load_candles(*KEY), m1)
    assert store.latest_candle_ts(*KEY) == m1.index[-1]
    assert store.latest_candle_ts("binance", "BTC/USDT", "1h") == h1.index[-1]
    series = store.list_series()
    assert series[["exchange", "symbol", "timeframe", "candles"]].values.tolist() == [
        ["binance", "BTC/USDT", "1m", 120],
        ["binance", "BTC/USDT", "1h", 5],
        ["binance", "ETH/USDT", "1m", 7],
        ["kraken", "BTC/USDT", "1m", 7],
    ]
    assert series["first"].dtype == TS_DTYPE
    assert series["first"][0] == m1.index[0] and series["last"][0] == m1.index[-1]


def test_info_reports_backend_version_and_counts(store, store_url, candle_factory):
    store.save_candles(candle_factory(12), *KEY)
    info = store.info()
    assert info["backend"] == store_url.split(":")[0]
    assert info["url"] == store_url
    assert info["schema_version"] == info["latest_schema_version"] == SCHEMA_VERSION
    assert info["tables"] == {"market_data": 12, "raw_trades": 0, "bots": 0, "signals": 0,
                              "trades": 0, "bot_performance": 0, "bot_owners": 0,
                              "bot_corrections": 0, "quiet_slots": 0, "series_sources": 0}


def test_init_schema_is_repeatable(store, candle_factory):
    store.save_candles(candle_factory(3), *KEY)
    assert store.init_schema() == SCHEMA_VERSION
    assert store.init_schema() == SCHEMA_VERSION
    assert store.info()["tables"]["market_data"] == 3


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(
    st.tuples(st.integers(0, 120), st.integers(1, 90), st.integers(0, 2**32 - 1)),
    min_size=1, max_size=5))
def test_any_sequence_of_overlapping_batches_is_last_writer_wins(store, candle_factory,
                                                                  batches):
    symbol = f"PROP{uuid.uuid4().hex[:8]}/USDT"  # a fresh series per example
    base = pd.Timestamp("2024-05-01 00:01", tz="UTC")
    expected: dict[pd.Timestamp, pd.Series] = {}
    for offset, length, seed in batches:
        df = candle_factory(length, start=str(base + pd.Timedelta(minutes=offset))[:19],
                            seed=seed)
        store.save_candles(df, "prop", symbol, "1m")
        expected.update({ts: row for ts, row in df.iterrows()})
    want = pd.DataFrame(expected.values(), index=pd.DatetimeIndex(list(expected), name="ts"))
    want = want.sort_index().astype({"trade_count": "int64"})
    pd.testing.assert_frame_equal(store.load_candles("prop", symbol, "1m"), want,
                                  check_freq=False)
