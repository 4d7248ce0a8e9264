"""A bot's NumPy window and the warm-up before the first candle."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bots_helpers import EXCHANGE, SYMBOL, TIMEFRAME, FakeStore, make_config
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.bots import Bot
from tcp_lab.bots import window as W
from tcp_lab.bus import CandleMessage
from tcp_lab.strategies import candle_arrays
from tcp_lab.testing import make_candles


def _messages(candles: pd.DataFrame) -> list[CandleMessage]:
    return CandleMessage.from_candles(candles, exchange=EXCHANGE, symbol=SYMBOL,
                                      timeframe=TIMEFRAME)


def test_a_window_grown_from_messages_equals_one_read_from_a_frame():
    candles = make_candles(40, seed=5)
    grown = W.of_frame(candles.iloc[:10])
    for msg in _messages(candles.iloc[10:]):
        grown = W.appended(grown, W.of_message(msg), 25)
    expected = W.of_frame(candles.iloc[-25:])
    assert grown.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(grown[k], expected[k])
        assert grown[k].dtype == expected[k].dtype
    assert W.last_ts(grown) == candles.index[-1]
    np.testing.assert_array_equal(grown["ts"], candle_arrays(candles.iloc[-25:])["ts"])


def test_rows_are_views_and_an_empty_window_has_no_last_time():
    w = W.of_frame(make_candles(10))
    part = W.rows(w, 2, 5)
    assert np.shares_memory(part["close"], w["close"]) and len(part["ts"]) == 3
    assert W.last_ts(W.rows(w, 0, 0)) is None


def test_warm_up_runs_the_strategy_and_keeps_the_stored_window():
    store = FakeStore()
    candles = make_candles(100, seed=7)
    store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(start="latest"), store)
    bot.load()
    assert bot.last_candle_ts == candles.index[-1]
    writes = store.writes
    bot._warm_up()
    assert store.writes == writes                # nothing recorded
    cache = bot._cache
    assert cache is not None and len(cache["ts"]) == bot.window
    assert W.last_ts(cache) == candles.index[-1]
    # the next candle is processed from the kept window, without reading history
    reads = []
    original = store.load_candles
    store.load_candles = lambda *a, **k: reads.append(a) or original(*a, **k)
    nxt = make_candles(101, seed=7).iloc[-1:]
    nxt.index = [candles.index[-1] + pd.Timedelta(TIMEFRAME)]
    nxt.index.name = "ts"
    steps = bot.process_candle(_messages(nxt)[0])
    assert len(steps) == 1 and reads == []


@settings(max_examples=200, deadline=None)
@given(have=st.integers(0, 60), add=st.integers(1, 5), size=st.integers(1, 50))
def test_appended_keeps_exactly_the_last_size_rows(have, add, size):
    candles = make_candles(have + add, seed=11)
    window = W.of_frame(candles.iloc[:have])
    out = W.appended(window, W.of_frame(candles.iloc[have:]), size)
    expected = W.of_frame(candles.iloc[max(0, have + add - size):])
    for k in expected:
        np.testing.assert_array_equal(out[k], expected[k])


def test_a_received_candle_the_store_lacks_is_processed_in_time_order():
    store = FakeStore()
    candles = make_candles(100, seed=13)
    store.save_candles(candles.drop(candles.index[50]), EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(), store)
    steps = bot.catch_up(extra=_messages(candles.iloc[[50]])[0])  # from the bus, not stored
    assert [s.ts for s in steps] == list(candles.index)
