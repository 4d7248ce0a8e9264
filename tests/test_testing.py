"""The shared synthetic-data factories produce valid, deterministic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.testing import make_candles, make_trades
from tcp_lab.timeframes import CANDLE_COLUMNS, TS_DTYPE, validate_candles


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h", "1d"])
def test_make_candles_is_valid_on_the_close_grid(timeframe):
    c = make_candles(500, timeframe, seed=4)
    assert list(c.columns) == list(CANDLE_COLUMNS)
    assert str(c.index.dtype) == TS_DTYPE and c.index.name == "ts"
    pd.testing.assert_frame_equal(validate_candles(c, timeframe), c)
    assert (c["open"].to_numpy()[1:] == c["close"].to_numpy()[:-1]).all()
    assert c["trade_count"].dtype == np.int64


def test_make_candles_start_and_determinism():
    c = make_candles(3, "5m", start="2024-03-01 10:02")
    assert c.index[0] == pd.Timestamp("2024-03-01 10:05", tz="UTC")
    assert make_candles(3).index[0] == pd.Timestamp("2024-01-01 00:01", tz="UTC")
    assert make_candles(3, start=pd.Timestamp("2024-01-01", tz="Europe/Berlin")).index[0] == \
        pd.Timestamp("2023-12-31 23:01", tz="UTC")
    pd.testing.assert_frame_equal(make_candles(50, seed=9), make_candles(50, seed=9))
    assert not make_candles(50, seed=9).equals(make_candles(50, seed=10))
    assert make_candles(5, start_price=100.0)["open"].iat[0] == 100.0


def test_make_candles_volatility_is_roughly_what_was_asked():
    c = make_candles(50_000, "1m", volatility=0.6)
    r = np.diff(np.log(c["close"].to_numpy()))
    assert r.std() * np.sqrt(525_600) == pytest.approx(0.6, rel=0.05)


def test_make_trades_schema():
    t = make_trades(1000, start="2024-01-01", seed=1, first_id=5)
    assert list(t.columns) == ["ts", "price", "amount", "id", "side"]
    assert str(t["ts"].dtype) == TS_DTYPE
    assert t["ts"].is_monotonic_increasing
    assert (t["ts"] > pd.Timestamp("2024-01-01", tz="UTC")).all()
    assert (t["ts"].dt.microsecond % 1000 == 0).all()  # millisecond precision like exchanges
    assert t["id"].tolist() == list(range(5, 1005)) and t["id"].dtype == np.int64
    assert (t["price"] > 0).all() and (t["amount"] > 0).all()
    assert set(t["side"]) == {"buy", "sell"}
    pd.testing.assert_frame_equal(make_trades(20, seed=3), make_trades(20, seed=3))
