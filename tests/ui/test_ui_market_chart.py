"""The market chart panel: pickers from the store, overlays, live updates from a memory bus."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import plotly.graph_objects as go
import pytest

from tcp_lab.bus import CandleMessage, StatusMessage, market_channel, open_bus
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tcp_lab.ui import MarketChartPanel


@pytest.fixture
def store_url(tmp_path):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    with open_store(url) as store:
        store.save_candles(make_candles(300), "binance", "BTC/USDT", "1m")
        store.save_candles(make_candles(100, "5m", seed=2), "binance", "BTC/USDT", "5m")
        store.save_candles(make_candles(120, seed=3), "kraken", "ETH/USD", "1m")
    return url


@pytest.fixture
def bus(memory_bus_url):
    with open_bus(memory_bus_url) as b:
        yield b


def _next(panel: MarketChartPanel, *, ts=None, close_factor=1.01, **kw) -> CandleMessage:
    last = panel.candles.index[-1]
    price = float(panel.candles["close"].iloc[-1])
    close = price * close_factor
    fields = dict(exchange="binance", symbol="BTC/USDT", timeframe="1m",
                  ts=ts if ts is not None else last + pd.Timedelta("1min"), open=price,
                  high=max(price, close) * 1.001, low=min(price, close) * 0.999, close=close,
                  volume=2.0, trade_count=5)
    return CandleMessage(**(fields | kw))


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_pickers_list_the_stored_series(store_url):
    panel = MarketChartPanel(store_url)
    assert panel.exchange_picker.options == ("binance", "kraken")
    assert panel.symbol_picker.options == ("BTC/USDT",)
    assert panel.timeframe_picker.options == ("1m", "5m")
    assert panel.selection == ("binance", "BTC/USDT", "1m")
    panel.exchange_picker.value = "kraken"
    assert panel.selection == ("kraken", "ETH/USD", "1m")
    assert len(panel.candles) == 120
    assert len(panel.figure.data[0].x) == 120


def test_chart_has_candles_volume_and_strategy_overlays(store_url):
    panel = MarketChartPanel(store_url, timeframe="5m", max_candles=80)
    assert isinstance(panel.figure, go.FigureWidget)
    assert [t.type for t in panel.figure.data] == ["candlestick", "bar"]
    assert len(panel.figure.data[0].x) == 80  # the newest 80
    panel.strategy_picker.value = "sma_cross"
    names = [t.name for t in panel.figure.data]
    assert names[0] == "price" and {"sma_fast", "sma_slow", "volume"} <= set(names)


def test_date_range_limits_the_candles(store_url):
    panel = MarketChartPanel(store_url)
    panel.start_picker.value = dt.date(2024, 1, 1)
    panel.end_picker.value = dt.date(2024, 1, 1)
    assert panel.candles.index[-1] <= pd.Timestamp("2024-01-02", tz="UTC")
    assert panel.error.value == ""


def test_live_candle_from_the_bus_updates_the_figure(store_url, bus):
    panel = MarketChartPanel(store_url, bus=bus, strategy="sma_cross", max_candles=200)
    n = len(panel.figure.data[0].x)
    panel.live_toggle.value = True
    msg = _next(panel)
    bus.publish(market_channel("BTC/USDT"), msg)
    # the status is written last, after every trace was updated
    assert _wait(lambda: "live (1 received)" in panel.status.value)
    price = panel.figure.data[0]
    assert len(price.x) == n  # capped at max_candles: the oldest dropped
    assert price.close[-1] == pytest.approx(msg.close)
    assert pd.Timestamp(price.x[-1]) == msg.ts.tz_localize(None)
    sma = next(t for t in panel.figure.data if t.name == "sma_fast")
    assert sma.y[-1] == pytest.approx(panel.candles["close"].iloc[-10:].mean())
    assert panel.n_updates == 1
    panel.close()


def test_corrected_candle_replaces_and_other_series_are_ignored(store_url):
    panel = MarketChartPanel(store_url)
    n = len(panel.candles)
    first = _next(panel)
    assert panel.on_candle(first)
    fixed = _next(panel, ts=first.ts, close_factor=0.98, corrected=True)
    assert panel.on_candle(fixed)
    assert len(panel.candles) == n + 1
    assert panel.candles["close"].iloc[-1] == pytest.approx(fixed.close)
    assert not panel.on_candle(_next(panel, timeframe="5m", ts=pd.Timestamp(
        "2030-01-01 00:05", tz="UTC")))
    assert not panel.on_candle(_next(panel, exchange="kraken"))
    status = StatusMessage(bot_id="b", status="running", ts=pd.Timestamp.now(tz="UTC"))
    assert not panel.on_candle(status)
    assert len(panel.candles) == n + 1 and panel.n_updates == 2


def test_stop_live_and_symbol_change_follow_the_right_channel(store_url, bus):
    panel = MarketChartPanel(store_url, bus=bus, live=True)
    assert panel._subscription.channels == ("market:BTC/USDT",)
    panel.exchange_picker.value = "kraken"
    assert panel._subscription.channels == ("market:ETH/USD",)
    panel.live_toggle.value = False
    assert panel._subscription is None
    bus.publish(market_channel("ETH/USD"), _next(panel, exchange="kraken", symbol="ETH/USD"))
    time.sleep(0.2)
    assert panel.n_updates == 0
    panel.close()


def test_empty_store_says_what_to_do_and_creates_no_file(tmp_path):
    url = f"duckdb:///{tmp_path / 'none.duckdb'}"
    panel = MarketChartPanel(url)
    assert panel.selection is None
    assert "no candles yet" in panel.status.value
    panel.live_toggle.value = True
    assert "nothing to follow" in panel.error.value and not panel.live_toggle.value
    assert not (tmp_path / "none.duckdb").exists()
