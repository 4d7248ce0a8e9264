"""Hand-written cases for the live path: closing, ticks, late and too-late trades, memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tcp_lab
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.data.streaming import ClosedCandle, StreamingAggregator
from tcp_lab.errors import DataError


def us(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value // 1000


def summary(candles):
    return [(c.timeframe, str(c.ts)[11:16], c.open, c.close, c.trade_count, c.corrected)
            for c in candles]


def test_public_names_are_exported_lazily():
    assert tcp_lab.StreamingAggregator is StreamingAggregator
    assert tcp_lab.aggregate_trades is aggregate_trades


def test_a_trade_on_the_end_keeps_the_candle_open_and_one_past_it_closes_it():
    agg = StreamingAggregator(["5m"])
    assert agg.add_trade(us("2024-01-01 09:01"), 1.0, 1.0) == []
    assert agg.add_trade(us("2024-01-01 09:05"), 2.0, 1.0) == []
    closed = agg.add_trade(us("2024-01-01 09:05:00.000001"), 3.0, 1.0)
    assert summary(closed) == [("5m", "09:05", 1.0, 2.0, 2, False)]
    assert agg.metrics["candles_closed"] == 1


def test_ticks_close_quiet_candles_once():
    agg = StreamingAggregator(["1m", "5m"])
    agg.add_trade(us("2024-01-01 09:00:30"), 1.0, 1.0)
    assert agg.tick(pd.Timestamp("2024-01-01 09:00:59", tz="UTC")) == []
    assert summary(agg.tick(us("2024-01-01 09:01"))) == [("1m", "09:01", 1.0, 1.0, 1, False)]
    assert agg.tick(us("2024-01-01 09:04")) == []
    assert summary(agg.tick(us("2024-01-01 09:07"))) == [("5m", "09:05", 1.0, 1.0, 1, False)]
    assert agg.tick(us("2024-01-01 09:30")) == []
    with pytest.raises(DataError, match="no time zone"):
        agg.tick(pd.Timestamp("2024-01-01 09:31"))


def test_a_late_trade_re_emits_the_corrected_candle():
    agg = StreamingAggregator(["1m"], late_window="5m")
    agg.add_trade(us("2024-01-01 09:00:30"), 10.0, 1.0, id=2)
    agg.add_trade(us("2024-01-01 09:00:40"), 11.0, 1.0, id=3)
    agg.add_trade(us("2024-01-01 09:01:10"), 12.0, 1.0, id=4)
    fixed = agg.add_trade(us("2024-01-01 09:00:10"), 9.0, 2.0, id=1)  # the earliest trade
    assert summary(fixed) == [("1m", "09:01", 9.0, 11.0, 3, True)]
    assert fixed[0].volume == 4.0 and fixed[0].low == 9.0
    # a late trade for a bucket that closed empty makes it appear, flagged as a correction
    agg.add_trade(us("2024-01-01 09:03:10"), 13.0, 1.0, id=6)  # 09:03 closes empty
    new = agg.add_trade(us("2024-01-01 09:02:50"), 8.0, 1.0, id=5)
    assert summary(new) == [("1m", "09:03", 8.0, 8.0, 1, True)]
    assert agg.metrics["late_trades"] == 2 and agg.metrics["candles_corrected"] == 2


def test_trades_older_than_the_window_are_reported_not_merged():
    agg = StreamingAggregator(["1m", "1h"], late_window="2m")
    agg.add_trade(us("2024-01-01 09:00:30"), 10.0, 1.0, id=1)
    agg.tick(us("2024-01-01 09:10"))
    assert agg.add_trade(us("2024-01-01 09:05:00"), 99.0, 1.0, id=2) == []
    assert agg.metrics["too_late_trades"] == 1
    late = agg.pop_too_late()
    assert late["price"].tolist() == [99.0] and late["id"].tolist() == [2]
    assert str(late["ts"].iloc[0]) == "2024-01-01 09:05:00+00:00"
    # the open 1h candle did not take it either: the caller repairs the range
    assert [c.trade_count for c in agg.flush()] == [1]


def test_duplicates_are_dropped_in_batches_and_single_trades():
    agg = StreamingAggregator(["1m"])
    df = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 09:00:10"] * 3, utc=True),
                       "price": [1.0, 2.0, 3.0], "amount": [1.0, 1.0, 1.0], "id": [7, 7, 8]})
    agg.add(df)
    agg.add_trade(us("2024-01-01 09:00:10"), 5.0, 1.0, id=8)
    agg.add(df.iloc[[0]])
    assert agg.metrics["duplicates"] == 3 and agg.metrics["trades"] == 5
    assert [(c.trade_count, c.high) for c in agg.flush()] == [(2, 3.0)]


def test_flush_reports_open_candles_without_closing_them():
    agg = StreamingAggregator(["1m", "5m"])
    agg.add_trade(us("2024-01-01 09:00:30"), 1.0, 1.0)
    first = agg.flush()
    assert [(c.timeframe, c.closed) for c in first] == [("1m", False), ("5m", False)]
    assert agg.flush() == first
    assert [c.closed for c in agg.tick(us("2024-01-01 09:05"))] == [True, True]
    assert agg.flush() == []


def test_bad_trades_raise_and_change_nothing():
    agg = StreamingAggregator(["1m"])
    with pytest.raises(DataError, match="price=nan"):
        agg.add_trade(us("2024-01-01 09:00:30"), float("nan"), 1.0, id=1)
    df = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 09:00:10", "2024-01-01 09:00:20"],
                                            utc=True),
                       "price": [1.0, 1.0], "amount": [1.0, -1.0]})
    with pytest.raises(DataError, match=r"negative amount in 1 row\(s\): row 1"):
        agg.add(df)
    assert agg.metrics["trades"] == 0 and agg.flush() == []


def test_arrays_and_frames_give_the_same_candles():
    ts = np.array([us("2024-01-01 09:00:10"), us("2024-01-01 09:02:10")], np.int64)
    a, b = StreamingAggregator(["1m"]), StreamingAggregator(["1m"])
    out_a = a.add({"ts": ts, "price": [1.0, 2.0], "amount": [1.0, 1.0]})
    out_b = b.add(pd.DataFrame({"ts": pd.to_datetime(ts, unit="us", utc=True),
                                "price": [1.0, 2.0], "amount": [1.0, 1.0]}))
    assert out_a == out_b and len(out_a) == 1


def test_memory_is_bounded_by_the_late_window():
    agg = StreamingAggregator(["1m", "5m"], late_window="5m")
    n, step = 20_000, 1_800_000  # ten hours, one trade every 1.8 s, ids increasing
    ts = us("2024-01-01 00:00") + np.arange(n + 100, dtype=np.int64) * step
    for lo in range(0, n, 100):
        sl = slice(lo, lo + 100)
        agg.add({"ts": ts[sl], "price": np.full(100, 1.0), "amount": np.full(100, 1.0),
                 "id": np.arange(n)[sl]})
    for i in range(n, n + 100):
        agg.add_trade(int(ts[i]), 1.0, 1.0, id=i)
    # ids are kept about 6 minutes (window + 1m) plus one batch: ~200 + 100 trades, not 20,100
    assert len(agg._seen) <= 6 * 60 / 1.8 + 100 + 50
    assert all(len(kept) <= 7 for kept in agg._retained)
    # 00:00:00 sits on a boundary (its own candle): 604 1m and 122 5m buckets, the last open
    assert agg.metrics["candles_closed"] == 603 + 121


def test_to_frame_builds_candles_and_keeps_the_latest_correction():
    agg = StreamingAggregator(["1m", "5m"], late_window="5m")
    out = agg.add_trade(us("2024-01-01 09:00:30"), 10.0, 1.0)
    out += agg.add_trade(us("2024-01-01 09:01:30"), 11.0, 1.0)
    out += agg.add_trade(us("2024-01-01 09:00:20"), 9.0, 1.0)  # corrects 09:01
    with pytest.raises(DataError, match="mix timeframes"):
        ClosedCandle.to_frame(out + agg.flush())
    df = ClosedCandle.to_frame(out, "1m")
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "trade_count", "vwap"]
    assert str(df.index.dtype) == "datetime64[us, UTC]"
    assert df["open"].tolist() == [9.0] and df["trade_count"].tolist() == [2]
    assert ClosedCandle.to_frame([]).empty


@pytest.mark.parametrize(("window", "seconds"),
                         [("30s", 30), ("5m", 300), ("2h", 7200), (90, 90),
                          (pd.Timedelta("1D"), 86400), ("15min", 900), (0, 0)])
def test_late_window_accepts_durations(window, seconds):
    agg = StreamingAggregator(["1m"], late_window=window)
    assert agg.late_window == pd.Timedelta(seconds=seconds)


def test_invalid_configuration_is_rejected():
    with pytest.raises(DataError, match="negative"):
        StreamingAggregator(["1m"], late_window=-1)
    with pytest.raises(DataError, match="not a duration"):
        StreamingAggregator(["1m"], late_window="soon")
    with pytest.raises(DataError, match="at least one timeframe"):
        StreamingAggregator([])
    with pytest.raises(DataError, match="divide a UTC day"):
        StreamingAggregator(["7m"])
    assert StreamingAggregator(["60m", "1h", "5m"]).timeframes == ("1h", "5m")
