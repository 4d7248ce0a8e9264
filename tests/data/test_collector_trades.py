"""Live trades on ``trades:{symbol}``: published in numbered batches, a candle's trades before
the candle, and only while someone subscribes (the real ccxt.pro client, the emulator 60x)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tcp_lab.bus import market_channel, open_bus, trades_channel, trades_pattern
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.data.collector import DataCollector
from tests.data.collector_support import CCXT, COLS, FAST, drain, emulator

SYMBOL = "BTC/USDT"


@pytest.fixture
def fast():
    with emulator(hours=1, speed=60.0, seed=11) as server:
        yield server


def make(emu, bus, **kw) -> DataCollector:
    return DataCollector("duckdb:///:memory:", bus, exchange_url=emu.base_url,
                         provider_options=CCXT, backoff=FAST, close_delay="15s",
                         tick_interval=0.1, **kw)


def wait_for(predicate, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def live_candles(c: DataCollector, n: int) -> bool:
    return len(c.store.load_candles("binance", SYMBOL, "1m")) >= n


def test_trades_are_published_in_order_and_before_their_candle(fast, bus_url):
    with open_bus(bus_url) as bus, \
            bus.subscribe(trades_channel(SYMBOL), market_channel(SYMBOL)) as sub, \
            make(fast, bus, store_raw_data=True) as c:
        handle = c.start_background(SYMBOL, "1m")
        wait_for(lambda: live_candles(c, 4))
        status = handle.stop()
        raw = c.store.load_raw_trades("binance", SYMBOL)
        messages = drain(sub)
    assert status["state"] == "stopped" and status["error"] is None
    batches = [m for m in messages if m.type == "trades"]
    assert len({m.stream for m in batches}) == 1
    assert [m.seq for m in batches] == list(range(len(batches)))  # nothing missed or skipped
    assert status["counts"]["trade_batches_published"] == len(batches)
    ts, price, amount = (np.concatenate(a) for a in zip(*(m.arrays() for m in batches),
                                                        strict=True))
    # the stream is every live trade, in the store's (ts, id) order
    np.testing.assert_array_equal(ts, pd.DatetimeIndex(raw["ts"]).as_unit("us").asi8)
    np.testing.assert_array_equal(price, raw["price"].to_numpy())
    np.testing.assert_array_equal(amount, raw["amount"].to_numpy())
    heard, until, at_candles = 0, None, []  # trades received before each candle
    candles = [m for m in messages if m.type == "candle" and not m.corrected]
    assert len(candles) >= 3
    for m in messages:
        if m.type == "trades":
            heard += len(m.times)
            until = m.until
        elif m.type == "candle" and not m.corrected:
            assert heard >= int(np.searchsorted(ts, m.ts.value // 1000, "right")), m.ts
            at_candles.append(heard)
            if m is not candles[0]:  # the head kline: not from the feed's trades
                assert until is not None and until >= m.ts  # "its trades are all in"
    assert at_candles[-2] < len(ts)  # trades kept coming between candles: order was tested
    trades = pd.DataFrame({"ts": pd.to_datetime(ts, unit="us", utc=True), "price": price,
                           "amount": amount})
    built = aggregate_trades(trades, "1m")[COLS]
    for m in candles[1:]:  # the first one's bucket began before the feed: a kline
        got = built.loc[m.ts]
        assert (got["open"], got["high"], got["low"], got["close"], got["trade_count"]) == (
            m.open, m.high, m.low, m.close, m.trade_count)


def test_nothing_is_published_until_someone_subscribes(fast, bus_url):
    with open_bus(bus_url) as bus, \
            bus.subscribe(patterns=[trades_pattern()]) as pattern, \
            make(fast, bus) as c:
        handle = c.start_background(SYMBOL, "1m")
        wait_for(lambda: live_candles(c, 2))
        counts = handle.status()["counts"]
        assert counts.get("trade_batches_published", 0) == 0  # a pattern does not count
        assert counts["trade_batches_unheard"] > 0
        assert drain(pattern, timeout=0.5) == []
        with bus.subscribe(trades_channel(SYMBOL)) as sub:
            first = sub.get(timeout=10.0)  # the subscriber count is asked at most once a second
            assert first is not None and first.type == "trades"
            assert first.seq > 0  # batches went unpublished before: the subscriber can tell
        handle.stop()
