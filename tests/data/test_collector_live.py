"""Live collection: the real ccxt.pro client against the emulator, its clock 60x fast.

Truth: the candles the collector builds from trades must equal the emulator's trades
aggregated by tcp_lab's rule; the first candle of each timeframe (its bucket began
before the feed) must be the emulator's kline.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from tcp_lab.bus import SYSTEM_EVENTS, candles_from_messages, market_channel, open_bus
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.data.collector import DataCollector
from tcp_lab.data.providers.replay import ReplayProvider
from tcp_lab.testing import make_candles, make_trades
from tests.data.collector_support import (
    CCXT,
    COLS,
    FAST,
    assert_candles_equal,
    drain,
    emulator,
    kline_truth,
    trade_truth,
)

SPEED = 60.0  # one emulated minute per second
LIVE = {"close_delay": "15s", "tick_interval": 0.1}  # ws batches are 6 emulated s apart


@pytest.fixture
def fast():
    with emulator(hours=1, speed=SPEED, seed=11) as server:
        yield server


def make(emu, store, bus=False, **kw) -> DataCollector:
    return DataCollector(store, bus, exchange_url=emu.base_url, provider_options=CCXT,
                         backoff=FAST, **{**LIVE, **kw})


def wait_for(predicate, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def candles_built(handle, symbol: str) -> int:
    status = handle.status()
    assert status["state"] != "failed", status["error"]
    return status["feeds"].get(symbol, {}).get("candles", 0)


def check_against_truth(emu, store, symbol: str, timeframes, stop_ms: int) -> None:
    now = pd.Timestamp(stop_ms, unit="ms", tz="UTC")
    for tf in timeframes:
        got = store.load_candles("binance", symbol, tf)
        assert len(got) >= 2, (symbol, tf, got)
        assert got.index[-1] <= now  # never the forming candle
        head = got.index[0]  # from REST: its bucket began before the feed did
        assert_candles_equal(got[COLS].iloc[:1], kline_truth(emu, symbol, tf, head, head))
        assert_candles_equal(got[COLS].iloc[1:],
                             trade_truth(emu, symbol, tf, got.index[1], got.index[-1]))


def test_live_candles_are_stored_published_and_equal_the_trades_by_our_rule(
        fast, memory_bus_url):
    with open_bus(memory_bus_url) as bus, \
            bus.subscribe(market_channel("BTC/USDT"), SYSTEM_EVENTS) as sub, \
            make(fast, "duckdb:///:memory:", bus, store_raw_data=True) as c:
        handle = c.start_background("BTC/USDT,ETH/USDT", "1m,3m")
        wait_for(lambda: all(len(c.store.load_candles("binance", s, "3m")) >= 2
                             for s in ("BTC/USDT", "ETH/USDT")))
        status = handle.stop()
        stop_ms = fast.now_ms()
        for symbol in ("BTC/USDT", "ETH/USDT"):
            check_against_truth(fast, c.store, symbol, ("1m", "3m"), stop_ms)
        messages = drain(sub)
        stored = c.store.load_candles("binance", "BTC/USDT", "1m")
        raw = c.store.load_raw_trades("binance", "BTC/USDT")
    assert status["state"] == "stopped" and status["error"] is None
    feed = status["feeds"]["BTC/USDT"]
    assert feed["segments"] == 1 and feed["candles_from_rest"] == 2  # one head per timeframe
    events = [m.kind for m in messages if m.type == "event"]
    assert events[:2] == ["collector.started", "collector.backfill_done"]
    assert events[-1] == "collector.stopped"
    candles = [m for m in messages if m.type == "candle"]
    ones = [m for m in candles if m.timeframe == "1m"]
    published = candles_from_messages(ones)  # a correction (a trade late under load) wins
    pd.testing.assert_frame_equal(published[COLS], stored[COLS], check_freq=False)
    first = [m.ts for m in ones if not m.corrected]
    assert len(first) == len(set(first)) and {m.ts for m in ones} == set(stored.index)
    ids = raw["id"].to_numpy()
    assert len(ids) == feed["trades"] and (np.diff(ids) == 1).all()  # every trade, stored
    truth = fast.market.trades_from_id("BTC/USDT", int(ids[0]), len(ids))
    np.testing.assert_array_equal(raw["price"].to_numpy(), truth.price)


@pytest.mark.slow
def test_a_dropped_websocket_reconnects_and_the_candles_are_unchanged(fast, memory_bus_url):
    with open_bus(memory_bus_url) as bus, bus.subscribe(SYSTEM_EVENTS) as sub, \
            make(fast, "duckdb:///:memory:", bus) as c:
        fast.inject("rate_limit", retry_after=1, path="/api/v3/klines")  # the head candle
        handle = c.start_background("BTC/USDT", "1m")
        wait_for(lambda: candles_built(handle, "BTC/USDT") >= 1)
        fast.inject("drop_ws")
        wait_for(lambda: handle.status()["feeds"]["BTC/USDT"].get("reconnects", 0) >= 1)
        wait_for(lambda: candles_built(handle, "BTC/USDT") >= 5)
        status = handle.stop()
        check_against_truth(fast, c.store, "BTC/USDT", ("1m",), fast.now_ms())
        kinds = [m.kind for m in drain(sub)]
    feed = status["feeds"]["BTC/USDT"]
    assert feed["segments"] == 1 and fast.stats()["ws_dropped"] >= 1
    assert "collector.reconnected" in kinds
    # trades sent while the socket was down came by REST, so the candles never broke
    assert feed.get("trades_refilled", 0) >= 1 and "collector.gap_backfilled" in kinds


@pytest.mark.slow
def test_trades_missing_from_the_stream_are_fetched_and_the_candles_are_unchanged(fast):
    with make(fast, "duckdb:///:memory:") as c:
        handle = c.start_background("ETH/USDT", "1m,3m")
        wait_for(lambda: candles_built(handle, "ETH/USDT") >= 1)
        fast.inject("server_error", count=2, path="/api/v3/aggTrades")  # the refill, too
        fast.inject("trade_gap", size=25, symbol="ETH/USDT")
        wait_for(lambda: fast.stats().get("ws_trades_skipped", 0) >= 25)
        wait_for(lambda: len(c.store.load_candles("binance", "ETH/USDT", "3m")) >= 3)
        status = handle.stop()
        check_against_truth(fast, c.store, "ETH/USDT", ("1m", "3m"), fast.now_ms())
    feed = status["feeds"]["ETH/USDT"]
    assert feed["trades_refilled"] >= 25 and feed["segments"] == 1


@pytest.mark.slow
def test_rest_polling_instead_of_websockets_gives_the_same_candles(fast):
    options = {"config": CCXT["config"], "live": "poll", "poll_interval": 0.1}
    with DataCollector("duckdb:///:memory:", False, exchange_url=fast.base_url,
                       provider_options=options, backoff=FAST, **LIVE) as c:
        handle = c.start_background("BTC/USDT", "1m")
        wait_for(lambda: candles_built(handle, "BTC/USDT") >= 3)
        handle.stop()
        check_against_truth(fast, c.store, "BTC/USDT", ("1m",), fast.now_ms())
    assert fast.stats()["requests"].get("/api/v3/aggTrades", 0) > 3


def test_start_background_works_inside_a_running_event_loop(fast):
    async def notebook_cell():
        handle = c.start_background("BTC/USDT", "1m")
        for _ in range(200):  # the caller's loop keeps running meanwhile
            await asyncio.sleep(0.05)
            if candles_built(handle, "BTC/USDT") >= 2:
                break
        return handle.stop()

    with make(fast, "duckdb:///:memory:") as c:
        status = asyncio.run(notebook_cell())
        stored = c.store.load_candles("binance", "BTC/USDT", "1m")
    assert status["state"] == "stopped" and len(stored) >= 2


def test_an_unknown_symbol_fails_the_collection_with_a_config_error(fast):
    from tcp_lab.errors import ConfigError

    with make(fast, "duckdb:///:memory:") as c:
        handle = c.start_background("NOPE/USDT", "1m")
        with pytest.raises(ConfigError, match="NOPE/USDT"):
            handle.wait(timeout=20)
        assert handle.status()["state"] == "failed"


def test_a_trade_replay_collects_history_then_live_until_the_data_ends(memory_bus_url):
    trades = make_trades(20_000, seed=4)  # about 5.5 hours
    start = trades["ts"].iloc[12_000]
    provider = ReplayProvider({"BTC/USDT": trades}, start=start)
    with open_bus(memory_bus_url) as bus, bus.subscribe(market_channel("BTC/USDT")) as sub, \
            DataCollector("duckdb:///:memory:", bus, provider, store_raw_data=True,
                          close_delay="0s", tick_interval=0.05) as c:
        status = c.start_collection("BTC/USDT", "1m,15m", since=trades["ts"].iloc[0])
        end = trades["ts"].iloc[-1]
        for tf in ("1m", "15m"):
            truth = aggregate_trades(trades, tf)
            truth = truth.loc[truth.index <= end][COLS]
            got = c.store.load_candles("replay", "BTC/USDT", tf)
            head = got.index[0]
            pd.testing.assert_frame_equal(got[COLS], truth.loc[truth.index >= head],
                                          check_freq=False)
        raw = c.store.load_raw_trades("replay", "BTC/USDT")
        got = c.store.load_candles("replay", "BTC/USDT", "1m")
        published = candles_from_messages(m for m in drain(sub) if m.timeframe == "1m")
    assert status["state"] == "stopped" and status["live_since"] == start
    assert len(raw) == len(trades) - 12_001  # every live trade, and only those
    got = got.loc[got.index > start]
    pd.testing.assert_frame_equal(published[COLS], got[COLS], check_freq=False)


def test_a_candle_replay_is_polled_for_newly_closed_candles(memory_bus_url):
    c1 = make_candles(300, "1m", seed=9)
    start = c1.index[200]
    provider = ReplayProvider({"ETH/USDT": c1}, start=start, speed=6000.0)
    with open_bus(memory_bus_url) as bus, bus.subscribe(market_channel("ETH/USDT")) as sub, \
            DataCollector("duckdb:///:memory:", bus, provider, close_delay="0s",
                          tick_interval=0.05) as c:
        status = c.start_collection("ETH/USDT", "1m,5m",
                                    since=c1.index[0] - pd.Timedelta("1min"))
        got = c.store.load_candles("replay", "ETH/USDT", "1m")
        published = candles_from_messages(m for m in drain(sub) if m.timeframe == "1m")
    pd.testing.assert_frame_equal(got[COLS], c1[COLS], check_freq=False)
    live_since = status["live_since"]  # what closed before is history: stored, not published
    assert start <= live_since < c1.index[-1] and len(published) >= 10
    pd.testing.assert_frame_equal(published[COLS], c1.loc[c1.index > live_since, COLS],
                                  check_freq=False)
