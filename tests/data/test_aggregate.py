"""Hand-written cases for trades -> candles: the boundary rule, ordering, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.data import _kernels as K
from tcp_lab.data.aggregate import (
    aggregate_trade_chunks,
    aggregate_trades,
    iter_aggregate_trade_chunks,
    resample_candles,
)
from tcp_lab.errors import DataError
from tcp_lab.timeframes import validate_candles

COLUMNS = ["open", "high", "low", "close", "volume", "trade_count", "vwap"]


def trades(rows, ids=None, tz="UTC"):
    """Trades from (time string, price, amount) rows."""
    df = pd.DataFrame(rows, columns=["ts", "price", "amount"])
    df["ts"] = pd.to_datetime(df["ts"], format="ISO8601").dt.tz_localize(tz)
    if ids is not None:
        df["id"] = np.array(ids, np.int64)
    return df


def stamps(df):
    return [str(t) for t in df.index]


# -- the boundary rule ----------------------------------------------------------------------
def test_trade_on_a_boundary_belongs_to_the_candle_closing_there():
    df = aggregate_trades(trades([("2024-01-01 09:05:00.000", 100.0, 1.0),
                                  ("2024-01-01 09:05:00.001", 101.0, 2.0)]), "5m")
    assert stamps(df) == ["2024-01-01 09:05:00+00:00", "2024-01-01 09:10:00+00:00"]
    assert df["trade_count"].tolist() == [1, 1]
    assert df["close"].tolist() == [100.0, 101.0]


def test_first_microsecond_after_the_open_belongs_to_the_candle():
    df = aggregate_trades(trades([("2024-01-01 09:00:00.000001", 100.0, 1.0),
                                  ("2024-01-01 09:00:00", 99.0, 1.0)]), "5m")
    assert stamps(df) == ["2024-01-01 09:00:00+00:00", "2024-01-01 09:05:00+00:00"]


def test_daily_candles_close_at_midnight_utc():
    df = aggregate_trades(trades([("2024-01-01 00:00:00.000001", 1.0, 1.0),
                                  ("2024-01-01 23:59:59.999999", 2.0, 1.0),
                                  ("2024-01-02 00:00:00", 3.0, 1.0),
                                  ("2024-01-02 00:00:00.000001", 4.0, 1.0)]), "1d")
    assert stamps(df) == ["2024-01-02 00:00:00+00:00", "2024-01-03 00:00:00+00:00"]
    assert df["open"].tolist() == [1.0, 4.0]
    assert df["close"].tolist() == [3.0, 4.0]


def test_other_time_zones_are_converted_not_relabelled():
    # 10:05 in Paris (UTC+1 in January) is 09:05 UTC: on the boundary
    df = aggregate_trades(trades([("2024-01-01 10:05:00", 100.0, 1.0)], tz="Europe/Paris"), "5m")
    assert stamps(df) == ["2024-01-01 09:05:00+00:00"]


def test_trades_indexed_by_ts_are_accepted():
    t = trades([("2024-01-01 09:04:00", 100.0, 1.0), ("2024-01-01 09:04:30", 101.0, 1.0)])
    pd.testing.assert_frame_equal(aggregate_trades(t.set_index("ts"), "1m"),
                                  aggregate_trades(t, "1m"))


def test_nanosecond_input_gives_the_microsecond_schema():
    df = trades([("2024-01-01 09:04:00", 100.0, 1.0)])
    df["ts"] = df["ts"].dt.as_unit("ns")
    out = aggregate_trades(df, "1m")
    assert str(out.index.dtype) == "datetime64[us, UTC]"
    assert stamps(out) == ["2024-01-01 09:04:00+00:00"]


# -- columns, gaps, order ------------------------------------------------------------------
def test_ohlcv_columns_and_vwap():
    df = aggregate_trades(trades([("2024-01-01 09:00:10", 10.0, 1.0),
                                  ("2024-01-01 09:00:20", 12.0, 3.0),
                                  ("2024-01-01 09:00:30", 8.0, 0.5),
                                  ("2024-01-01 09:00:40", 11.0, 0.5)]), "1m")
    assert list(df.columns) == COLUMNS
    assert df.index.name == "ts"
    row = df.iloc[0]
    assert (row.open, row.high, row.low, row.close) == (10.0, 12.0, 8.0, 11.0)
    assert (row.volume, row.trade_count) == (5.0, 4)
    assert row.vwap == pytest.approx((10 * 1 + 12 * 3 + 8 * 0.5 + 11 * 0.5) / 5)
    pd.testing.assert_frame_equal(validate_candles(df, "1m"), df)
    assert df.attrs["timeframe"] == "1m"


def test_buckets_without_trades_are_absent():
    df = aggregate_trades(trades([("2024-01-01 09:01:00", 1.0, 1.0),
                                  ("2024-01-01 09:14:00", 1.0, 1.0)]), "5m")
    assert stamps(df) == ["2024-01-01 09:05:00+00:00", "2024-01-01 09:15:00+00:00"]
    assert (df["volume"] > 0).all()


def test_unsorted_input_is_sorted_and_ties_keep_input_order():
    df = aggregate_trades(trades([("2024-01-01 09:00:30", 3.0, 1.0),
                                  ("2024-01-01 09:00:10", 1.0, 1.0),
                                  ("2024-01-01 09:00:30", 4.0, 1.0),
                                  ("2024-01-01 09:00:10", 2.0, 1.0)]), "1m")
    assert (df["open"].iloc[0], df["close"].iloc[0]) == (1.0, 4.0)


def test_ties_are_ordered_by_id_when_present():
    df = aggregate_trades(trades([("2024-01-01 09:00:30", 3.0, 1.0),
                                  ("2024-01-01 09:00:30", 1.0, 1.0),
                                  ("2024-01-01 09:00:30", 2.0, 1.0)], ids=[9, 5, 7]), "1m")
    assert (df["open"].iloc[0], df["close"].iloc[0]) == (1.0, 3.0)


def test_duplicate_ids_are_dropped_keeping_the_first():
    df = aggregate_trades(trades([("2024-01-01 09:00:10", 1.0, 1.0),
                                  ("2024-01-01 09:00:20", 2.0, 1.0),
                                  ("2024-01-01 09:00:10", 5.0, 7.0)], ids=[1, 2, 1]), "1m")
    assert df["trade_count"].tolist() == [2]
    assert df["volume"].tolist() == [2.0]
    assert df["high"].tolist() == [2.0]


def test_string_ids_that_are_numbers_are_accepted():
    df = trades([("2024-01-01 09:00:10", 1.0, 1.0), ("2024-01-01 09:00:20", 2.0, 1.0)])
    df["id"] = ["12", "11"]
    assert aggregate_trades(df, "1m")["open"].tolist() == [1.0]


def test_zero_amount_trades_count_and_give_nan_vwap_when_alone():
    df = aggregate_trades(trades([("2024-01-01 09:00:10", 1.0, 0.0)]), "1m")
    assert df["trade_count"].tolist() == [1]
    assert np.isnan(df["vwap"].iloc[0])


def test_empty_trades_give_empty_candles():
    df = aggregate_trades(trades([]), "1m")
    assert df.empty and list(df.columns) == COLUMNS
    assert str(df.index.dtype) == "datetime64[us, UTC]"


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "amount", "words"),
    [(np.nan, 1.0, "price"), (-1.0, 1.0, "price"), (0.0, 1.0, "price"),
     (np.inf, 1.0, "price"), (1.0, -0.5, "amount"), (1.0, np.nan, "amount")],
)
def test_bad_values_raise_naming_the_rows(price, amount, words):
    df = trades([("2024-01-01 09:00:10", 1.0, 1.0), ("2024-01-01 09:00:20", price, amount)])
    df.index = ["a", "b"]
    with pytest.raises(DataError, match=rf"{words}.*1 row\(s\): row b \(ts 2024-01-01 09:00:20"):
        aggregate_trades(df, "1m")


def test_bad_values_are_found_in_unsorted_input_too():
    df = trades([("2024-01-01 09:00:20", 1.0, 1.0), ("2024-01-01 09:00:10", -2.0, 1.0)])
    with pytest.raises(DataError, match=r"row 1 .*price=-2.0"):
        aggregate_trades(df, "1m")


def test_naive_timestamps_are_rejected():
    df = trades([("2024-01-01 09:00:10", 1.0, 1.0)])
    df["ts"] = df["ts"].dt.tz_localize(None)
    with pytest.raises(DataError, match="no time zone.*1 rows"):
        aggregate_trades(df, "1m")


def test_missing_timestamps_are_rejected():
    df = trades([("2024-01-01 09:00:10", 1.0, 1.0), ("2024-01-01 09:00:10", 1.0, 1.0)])
    df.loc[1, "ts"] = pd.NaT
    with pytest.raises(DataError, match=r"NaT.*row 1"):
        aggregate_trades(df, "1m")


def test_integer_timestamps_are_rejected_with_a_hint():
    df = pd.DataFrame({"ts": [1_704_099_600_000], "price": [1.0], "amount": [1.0]})
    with pytest.raises(DataError, match="tz-aware.*unit='ms'"):
        aggregate_trades(df, "1m")


def test_missing_columns_and_bad_ids_are_rejected():
    with pytest.raises(DataError, match="missing column.*amount"):
        aggregate_trades(pd.DataFrame({"ts": [], "price": []}), "1m")
    df = trades([("2024-01-01 09:00:10", 1.0, 1.0), ("2024-01-01 09:00:11", 1.0, 1.0)])
    df["id"] = [1.0, np.nan]
    with pytest.raises(DataError, match=r"non-integer id.*row 1"):
        aggregate_trades(df, "1m")


def test_invalid_timeframe_is_rejected():
    with pytest.raises(DataError, match="divide a UTC day"):
        aggregate_trades(trades([("2024-01-01 09:00:10", 1.0, 1.0)]), "7m")


# -- resampling -------------------------------------------------------------------------------
def test_resample_applies_the_same_boundary_rule():
    t = trades([("2024-01-01 09:04:00", 1.0, 1.0), ("2024-01-01 09:05:00", 2.0, 1.0),
                ("2024-01-01 09:05:00.5", 3.0, 1.0), ("2024-01-01 09:12:00", 4.0, 2.0)])
    one = aggregate_trades(t, "1m")
    pd.testing.assert_frame_equal(resample_candles(one, "5m"), aggregate_trades(t, "5m"))


def test_resample_rejects_a_target_that_is_not_a_multiple():
    one = aggregate_trades(trades([("2024-01-01 09:04:00", 1.0, 1.0)]), "2m")
    with pytest.raises(DataError, match="3m is not a whole multiple of 2m"):
        resample_candles(one, "3m")
    with pytest.raises(DataError, match="not a whole multiple"):
        resample_candles(one, "1m")


def test_resample_infers_the_source_timeframe_and_says_so():
    idx = pd.date_range("2024-01-01 09:02", periods=3, freq="2min", tz="UTC", name="ts")
    c = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0,
                      "trade_count": 1}, index=idx)
    assert resample_candles(c, "4m")["trade_count"].tolist() == [2, 1]
    with pytest.raises(DataError, match="inferred from the timestamps.*source_timeframe"):
        resample_candles(c, "3m")
    assert resample_candles(c, "3m", source_timeframe="1m")["trade_count"].tolist() == [1, 2]


def test_resample_without_vwap_and_empty():
    c = aggregate_trades(trades([("2024-01-01 09:04:00", 1.0, 1.0)]), "1m").drop(columns="vwap")
    out = resample_candles(c, "1h", source_timeframe="1m")
    assert "vwap" not in out.columns and out["trade_count"].tolist() == [1]
    assert resample_candles(c.iloc[:0], "1h", source_timeframe="1m").empty


# -- chunks ------------------------------------------------------------------------------------
def test_chunks_must_be_in_time_order():
    a = trades([("2024-01-01 09:10:00", 1.0, 1.0)])
    b = trades([("2024-01-01 09:04:00", 1.0, 1.0)])
    with pytest.raises(DataError, match=r"chunk 2: 1 trade\(s\) from 2024-01-01 09:04:00"):
        aggregate_trade_chunks([a, b], "5m")


def test_a_chunk_may_reach_back_into_the_carried_candle():
    t = trades([("2024-01-01 09:01:00", 1.0, 1.0), ("2024-01-01 09:03:00", 3.0, 1.0),
                ("2024-01-01 09:02:00", 2.0, 1.0), ("2024-01-01 09:07:00", 4.0, 1.0)],
               ids=[1, 3, 2, 4])
    got = aggregate_trade_chunks([t.iloc[:2], t.iloc[2:]], "5m")
    pd.testing.assert_frame_equal(got, aggregate_trades(t, "5m"))
    assert got["close"].tolist() == [3.0, 4.0]


def test_a_resent_trade_across_a_chunk_boundary_is_dropped():
    t = trades([("2024-01-01 09:04:00", 1.0, 1.0), ("2024-01-01 09:06:00", 2.0, 1.0),
                ("2024-01-01 09:04:00", 1.0, 1.0), ("2024-01-01 09:08:00", 3.0, 1.0)],
               ids=[1, 2, 1, 3])
    got = aggregate_trade_chunks([t.iloc[:2], t.iloc[2:]], "5m")
    pd.testing.assert_frame_equal(got, aggregate_trades(t, "5m"))
    assert got["trade_count"].tolist() == [1, 2]


def test_iter_chunks_yields_candles_as_they_complete():
    t = trades([("2024-01-01 09:01:00", 1.0, 1.0), ("2024-01-01 09:06:00", 2.0, 1.0),
                ("2024-01-01 09:07:00", 3.0, 1.0)])
    frames = list(iter_aggregate_trade_chunks([t.iloc[:1], t.iloc[1:2], t.iloc[2:]], "5m"))
    assert [len(f) for f in frames] == [1, 1]
    assert stamps(frames[0]) == ["2024-01-01 09:05:00+00:00"]
    assert frames[1]["trade_count"].tolist() == [2]


def test_kernels_compile_one_specialisation():
    t = trades([("2024-01-01 09:01:00", 1.0, 1.0), ("2024-01-01 09:00:30", 2.0, 1.0)], ids=[2, 1])
    aggregate_trades(t, "1m")
    aggregate_trades(t.drop(columns="id"), "1m")
    aggregate_trade_chunks([t.iloc[:1], t.iloc[1:]], "1h")
    resample_candles(aggregate_trades(t, "1m"), "5m")
    assert len(K.aggregate_trades_nb.signatures) == 1
    assert len(K.resample_candles_nb.signatures) == 1
