"""The live engine driven step by step by a scripted provider: late trades, reconnects, gaps."""

from __future__ import annotations

import asyncio

import pandas as pd

from tcp_lab.bus import SYSTEM_EVENTS, market_channel, open_bus
from tcp_lab.data.collector import DataCollector
from tcp_lab.data.providers import CandlePage, EndOfData, Provider, TransientError
from tcp_lab.data.providers.base import empty_trades, trades_frame
from tests.data.collector_support import drain, utc

T0 = utc("2024-03-01 00:00")


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def trades(*rows: tuple[int, float, float]) -> pd.DataFrame:
    """``(id, seconds after T0, price)`` rows, amount 1."""
    ms = [int(at(s).value // 1_000_000) for _, s, _ in rows]
    return trades_frame(ms, [p for *_, p in rows], [1.0] * len(rows), [i for i, *_ in rows],
                        ["buy"] * len(rows))


class ScriptedFeed:
    """A provider whose clock and live batches follow a script.

    Each step sets the clock, lets the collector's clock tick at it (three reads of
    ``now``, so one tick has fully run), then delivers its batch (or raises its error).
    """

    name, exchange = "scripted", "scripted"
    has_live_trades, sequential_trade_ids = True, True

    def __init__(self, steps, rest_trades: pd.DataFrame, klines: pd.DataFrame) -> None:
        self.steps = list(steps)
        self.clock = self.steps[0][0]
        self.rest_trades = rest_trades
        self.klines = klines
        self.reads = 0
        self.pages: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []

    def check(self, symbols, timeframes) -> None:
        pass

    def now(self) -> pd.Timestamp:
        self.reads += 1
        return self.clock

    def fetch_candles(self, symbol, timeframe, start, end) -> CandlePage:
        self.pages.append((timeframe, start, end))
        k = self.klines
        return CandlePage.covering(k.loc[(k.index >= start) & (k.index <= end)], start, end,
                                   timeframe)

    def fetch_trades(self, symbol, *, from_id=None, since=None, limit=1000) -> pd.DataFrame:
        t = self.rest_trades
        return t.loc[t["id"] >= from_id].iloc[:limit].reset_index(drop=True) if len(t) else t

    async def watch_trades(self, symbol) -> pd.DataFrame:
        if not self.steps:
            raise EndOfData(symbol)
        clock, item = self.steps.pop(0)
        self.clock = clock
        seen = self.reads
        while self.reads < seen + 3:
            await asyncio.sleep(0.005)
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass


def klines(*minutes: int) -> pd.DataFrame:
    """What the exchange's REST klines say: one candle (close 50 + minute) per minute."""
    idx = pd.DatetimeIndex([at(60 * m) for m in minutes], dtype="datetime64[us, UTC]",
                           name="ts")
    close = [50.0 + m for m in minutes]
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0, "trade_count": 1}, index=idx)


def test_late_trades_correct_a_published_candle_and_gaps_are_refilled(memory_bus_url,
                                                                      store_url):
    feed = ScriptedFeed([
        (at(55), trades((1, 10, 100.0), (2, 50, 101.0))),  # the head bucket: not stored
        (at(80), trades((3, 70, 102.0))),
        (at(100), trades((4, 90, 103.0))),
        (at(130), trades((5, 119.5, 99.0))),  # 00:02 closed at 00:02:08: a late trade
        (at(140), TransientError("socket closed")),  # a reconnect ...
        (at(160), trades((8, 150, 105.0))),  # ... after which ids 6 and 7 are missing
        (at(185), empty_trades()),
    ], rest_trades=trades((6, 135, 104.0), (7, 145, 106.0)), klines=klines(1))
    assert isinstance(feed, Provider)
    with open_bus(memory_bus_url) as bus, \
            bus.subscribe(market_channel("BTC/USDT"), SYSTEM_EVENTS) as sub, \
            DataCollector(store_url, bus, feed, close_delay="2s", tick_interval=0.01) as c:
        status = c.start_collection("BTC/USDT", "1m")
        stored = c.store.load_candles("scripted", "BTC/USDT", "1m")
        messages = drain(sub)
    assert status["state"] == "stopped", status["error"]
    candles = [(m.ts, m.corrected, m.low, m.close, m.trade_count) for m in messages
               if m.type == "candle"]
    assert candles == [(at(60), False, 51.0, 51.0, 1),  # the head: the exchange's kline
                       (at(120), False, 102.0, 103.0, 2), (at(120), True, 99.0, 99.0, 3),
                       (at(180), False, 104.0, 105.0, 3)]
    assert list(stored.index) == [at(60), at(120), at(180)]
    assert stored.loc[at(120), ["open", "high", "low", "close", "trade_count"]].tolist() == [
        102.0, 103.0, 99.0, 99.0, 3]
    assert stored.loc[at(180), "high"] == 106.0
    assert feed.pages == [("1m", at(60), at(60))]  # the head candle, asked by REST once
    feed_status = status["feeds"]["BTC/USDT"]
    assert feed_status["reconnects"] == 1 and feed_status["trades_refilled"] == 2
    assert feed_status["segments"] == 1
    kinds = [m.kind for m in messages if m.type == "event"]
    assert "collector.reconnected" in kinds and "collector.gap_backfilled" in kinds


def test_without_consecutive_ids_a_reconnect_restarts_the_candles(memory_bus_url):
    feed = ScriptedFeed([
        (at(55), trades((10, 10, 100.0))),
        (at(100), trades((20, 90, 101.0))),
        (at(130), TransientError("socket closed")),
        (at(250), trades((90, 245, 103.0))),  # after the outage: a new segment
        (at(305), empty_trades()),
    ], rest_trades=empty_trades(), klines=klines(1, 3, 5))  # 00:04: no trades
    feed.sequential_trade_ids = False
    with DataCollector("duckdb:///:memory:", False, feed, close_delay="2s",
                       tick_interval=0.01) as c:
        status = c.start_collection("BTC/USDT", "1m")
        stored = c.store.load_candles("scripted", "BTC/USDT", "1m")
    assert status["feeds"]["BTC/USDT"]["segments"] == 2
    # 00:02 came from trades; 00:03..00:05 (the outage and the new head) are asked by REST
    assert feed.pages == [("1m", at(60), at(60)), ("1m", at(180), at(300))]
    assert list(stored.index) == [at(60), at(120), at(180), at(300)]
    assert stored.loc[at(120), "close"] == 101.0 and stored.loc[at(300), "close"] == 55.0


def test_the_head_kline_is_asked_again_until_the_exchange_has_it():
    feed = ScriptedFeed([
        (at(55), trades((1, 10, 100.0))),
        (at(65), empty_trades()), (at(66), empty_trades()), (at(67), empty_trades()),
    ], rest_trades=empty_trades(), klines=klines())
    with DataCollector("duckdb:///:memory:", False, feed, close_delay="2s",
                       tick_interval=0.01) as c:
        c.start_collection("BTC/USDT", "1m")
    assert len(feed.pages) >= 2 and set(feed.pages) == {("1m", at(60), at(60))}
