"""The ccxt provider: open->close time pinned, klines as candles, errors translated."""

from __future__ import annotations

import asyncio

import ccxt
import numpy as np
import pandas as pd
import pytest

from tcp_lab.data.providers import TransientError, make_provider
from tcp_lab.data.providers.ccxt_provider import CcxtProvider, klines_to_candles, translate_error
from tcp_lab.errors import ConfigError, ServiceError
from tests.data.collector_support import CCXT, emulator, kline_truth, utc

OPEN_0900_MS = int(utc("2024-01-01 09:00").value // 1_000_000)


def test_a_kline_opened_0900_for_5m_is_the_candle_stamped_0905():
    candles = klines_to_candles([[OPEN_0900_MS, 10.0, 12.0, 9.0, 11.0, 3.0]], "5m")
    assert list(candles.index) == [utc("2024-01-01 09:05")]
    assert candles.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [
        10.0, 12.0, 9.0, 11.0, 3.0]
    hourly = klines_to_candles([[OPEN_0900_MS, 1.0, 1.0, 1.0, 1.0, 1.0]], "1h")
    assert list(hourly.index) == [utc("2024-01-01 10:00")]


def test_binance_extras_give_trade_count_and_vwap_and_empty_klines_are_dropped():
    rows = [[OPEN_0900_MS, 10.0, 12.0, 9.0, 11.0, 2.0],
            [OPEN_0900_MS + 60_000, 11.0, 11.0, 11.0, 11.0, 0.0]]
    raw = [[OPEN_0900_MS, "10", "12", "9", "11", "2", OPEN_0900_MS + 59_999, "21", 7, "1", "10",
            "0"],
           [OPEN_0900_MS + 60_000, "11", "11", "11", "11", "0", OPEN_0900_MS + 119_999, "0", 0,
            "0", "0", "0"]]
    c = klines_to_candles(rows, "1m", raw=raw)
    assert list(c.index) == [utc("2024-01-01 09:01")]
    assert c["trade_count"].tolist() == [7] and c["vwap"].tolist() == [10.5]
    # a quote volume rounded by the exchange must not put the average outside the range
    flat = [[OPEN_0900_MS, 0.12345678, 0.12345678, 0.12345678, 0.12345678, 3.0]]
    flat_raw = [[OPEN_0900_MS, "0.12345678", "0.12345678", "0.12345678", "0.12345678", "3",
                 OPEN_0900_MS + 59_999, "0.37037035", 2, "1", "0.1", "0"]]
    assert klines_to_candles(flat, "1m", raw=flat_raw)["vwap"].tolist() == [0.12345678]
    with pytest.raises(ValueError, match="do not match"):
        klines_to_candles(rows, "1m", raw=raw[:1])
    with pytest.raises(ValueError, match="missing"):
        klines_to_candles([[OPEN_0900_MS, None, None, None, None, None]], "1m")


@pytest.mark.parametrize(("error", "kind"), [
    (ccxt.RequestTimeout("slow"), TransientError),
    (ccxt.ExchangeNotAvailable("503"), TransientError),
    (ccxt.OperationFailed("-1001"), TransientError),
    (ccxt.BadResponse("junk"), TransientError),
    (ccxt.BadSymbol("nope"), ConfigError),
    (ccxt.AuthenticationError("key"), ConfigError),
    (ccxt.ExchangeError("other"), ServiceError),
])
def test_ccxt_errors_become_tcp_lab_errors(error, kind):
    out = translate_error(error, exchange="binance", what="fetch x", symbol="BTC/USDT")
    assert type(out) is kind
    assert "binance" in str(out)


def test_rate_limit_keeps_retry_after():
    out = translate_error(ccxt.DDoSProtection("429"), exchange="binance", what="x",
                          headers={"Retry-After": "7"})
    assert isinstance(out, TransientError) and out.retry_after == 7.0
    assert "BTC/USDT" in str(translate_error(ccxt.BadSymbol("x"), exchange="binance", what="x",
                                             symbol="BTC/USDT"))


@pytest.fixture(scope="module")
def emu():
    with emulator(hours=3) as server:
        yield server


@pytest.fixture(scope="module")
def fast():
    """The emulator clock 30x fast: live trades arrive quickly."""
    with emulator(hours=1, speed=30.0) as server:
        yield server


@pytest.fixture
def provider(emu):
    p = make_provider("ccxt", exchange="binance", exchange_url=emu.base_url, **CCXT)
    yield p
    emu.clear_faults()
    p.close()


def test_a_page_is_the_emulators_klines_converted(emu, provider):
    assert isinstance(provider, CcxtProvider)
    now = provider.now()
    end = now.floor("5min") - pd.Timedelta("5min")
    start = end - pd.Timedelta("2h")
    page = provider.fetch_candles("BTC/USDT", "5m", start, end)
    truth = kline_truth(emu, "BTC/USDT", "5m", start, end)
    assert page.start == start and page.end == end and len(page.empty) == 0
    pd.testing.assert_frame_equal(page.candles.drop(columns="vwap"), truth, check_freq=False)
    assert (page.candles["vwap"].between(page.candles["low"], page.candles["high"])).all()


def test_a_full_page_covers_only_up_to_its_last_kline(emu):
    p = CcxtProvider("binance", exchange_url=emu.base_url, page_limit=10)
    try:
        end = p.now().floor("1min")
        start = end - pd.Timedelta("60min")
        page = p.fetch_candles("BTC/USDT", "1m", start, end)
        assert page.end == start + pd.Timedelta("9min") and len(page.candles) <= 10
    finally:
        p.close()


def test_malformed_answers_are_transient(emu, provider):
    end = provider.now().floor("1min")
    emu.inject("malformed", path="/api/v3/klines")
    with pytest.raises(TransientError, match="malformed"):
        provider.fetch_candles("BTC/USDT", "1m", end - pd.Timedelta("5min"), end)
    emu.inject("malformed", mode="html", path="/api/v3/time")
    with pytest.raises(TransientError):
        provider.now()


def test_unknown_symbol_and_timeframe_are_config_errors(provider):
    with pytest.raises(ConfigError, match="did you mean 'BTC/USDT'"):
        provider.check(["BTC/USDTT"], ["1m"])
    with pytest.raises(ConfigError, match="BTC/EUR"):
        provider.check(["BTC/EUR"], ["1m"])
    provider.check(["BTC/USDT", "ETH/USDT"], ["1m", "5m", "1h", "4h", "1d"])


def test_trades_by_id_and_live_trades_share_one_id_space(fast):
    provider = CcxtProvider("binance", exchange_url=fast.base_url)
    first = fast.market.spec("ETH/USDT").first_id + 100
    trades = provider.fetch_trades("ETH/USDT", from_id=first, limit=5)
    assert trades["id"].tolist() == list(range(first, first + 5))
    assert str(trades["ts"].dtype) == "datetime64[us, UTC]"
    truth = fast.market.trades_from_id("ETH/USDT", first, 5)
    assert trades["price"].tolist() == list(truth.price)

    async def watch():
        got = []
        try:
            while sum(len(g) for g in got) < 3:
                got.append(await asyncio.wait_for(provider.watch_trades("BTC/USDT"), 10))
        finally:
            await provider.aclose()
        return pd.concat(got, ignore_index=True)

    try:
        live = asyncio.run(watch())
        ids = live["id"].to_numpy()
        assert (np.diff(ids) == 1).all()
        rest = provider.fetch_trades("BTC/USDT", from_id=int(ids[0]), limit=len(ids))
    finally:
        provider.close()
    assert rest["id"].tolist() == ids.tolist() and rest["price"].tolist() == live["price"].tolist()


def test_polling_mode_delivers_consecutive_trades(fast):
    p = CcxtProvider("binance", exchange_url=fast.base_url, live="poll", poll_interval=0.05)

    async def poll():
        got = []
        while sum(len(g) for g in got) < 2:
            got.append(await asyncio.wait_for(p.watch_trades("BTC/USDT"), 10))
        return pd.concat(got, ignore_index=True)

    try:
        trades = asyncio.run(poll())
    finally:
        p.close()
    assert p.has_live_trades and (np.diff(trades["id"].to_numpy()) == 1).all()
