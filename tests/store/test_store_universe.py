"""A universe in one read: many symbols' candles aligned by close time, on both backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.errors import DataError
from tcp_lab.store._universe import candles_of


def test_symbols_side_by_side_on_the_union_of_close_times(store, candle_factory):
    btc = candle_factory(50, seed=1)
    eth = candle_factory(40, start="2024-03-01 00:11", seed=2, vwap=True)
    eth = eth.drop(eth.index[[5, 6, 20]])  # quiet minutes: no candle
    store.save_candles(btc, "binance", "BTC/USDT", "1m")
    store.save_candles(eth, "binance", "ETH/USDT", "1m")
    store.save_candles(candle_factory(10, seed=3), "binance", "SOL/USDT", "1m")  # not asked
    store.save_candles(candle_factory(10, seed=4), "kraken", "BTC/USDT", "1m")  # other exchange

    wide = store.load_candles_many("binance", ["ETH/USDT", "BTC/USDT", "ETH/USDT"], "1m")
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == ["ETH/USDT", "BTC/USDT"]
    assert wide.index.equals(btc.index.union(eth.index))
    assert wide.index.dtype == "datetime64[us, UTC]"
    assert wide.loc[eth.index[4] + pd.Timedelta(minutes=1), ("ETH/USDT", "close")] != \
        wide.loc[eth.index[4] + pd.Timedelta(minutes=1), ("ETH/USDT", "close")]  # NaN: quiet
    for symbol, frame in (("BTC/USDT", btc), ("ETH/USDT", eth)):
        back = candles_of(wide, symbol)
        one = store.load_candles("binance", symbol, "1m")
        pd.testing.assert_frame_equal(back, one)
        assert np.array_equal(back.index, frame.index)

    part = store.load_candles_many("binance", ["BTC/USDT", "ETH/USDT"], "1m",
                                   start=eth.index[0], end=eth.index[9])
    assert part.index[0] == eth.index[0] and part.index[-1] == eth.index[9]


def test_a_missing_symbol_is_named(store, candle_factory):
    store.save_candles(candle_factory(10), "binance", "BTC/USDT", "1m")
    with pytest.raises(DataError, match=r"no binance 1m candles for DOGE/USDT, XRP/USDT"):
        store.load_candles_many("binance", ["BTC/USDT", "DOGE/USDT", "XRP/USDT"], "1m")
    with pytest.raises(DataError, match="'ETH/USDT' is not in the universe"):
        candles_of(store.load_candles_many("binance", ["BTC/USDT"], "1m"), "ETH/USDT")
