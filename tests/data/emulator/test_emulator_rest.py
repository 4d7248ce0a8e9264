"""The unmodified ccxt client against the emulator's REST API."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import ccxt
import numpy as np
import pytest

from tcp_lab.data.providers.ccxt_client import make_exchange

DAY = 86_400_000
MIN = 60_000


def get(emu, path: str):
    """Raw GET: (status, headers, parsed JSON body)."""
    try:
        with urllib.request.urlopen(emu.base_url + path, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_load_markets_gives_spot_symbols_with_precision(exchange):
    m = exchange.markets["BTC/USDT"]
    assert set(exchange.symbols) == {"BTC/USDT", "ETH/USDT"}
    assert m["spot"] and m["active"] and m["id"] == "BTCUSDT"
    assert m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 1e-05
    assert m["limits"]["amount"]["min"] == 1e-05 and m["limits"]["cost"]["min"] > 0


def test_fetch_time_is_the_emulator_clock(exchange, emu):
    before = emu.now_ms()
    assert before <= exchange.fetch_time() <= emu.now_ms()


def test_fetch_ohlcv_pages_equal_the_model(exchange, emu):
    since = emu.market.genesis_ms + 40 * DAY + 123 * MIN
    rows = []
    while len(rows) < 2500:
        page = exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=1000)
        assert page and page[0][0] == since
        rows += page
        since = page[-1][0] + MIN
    got = np.array(rows[:2500], dtype=float)
    k = emu.market.klines("BTC/USDT", "1m", int(got[0, 0]), int(got[-1, 0]) + MIN)
    assert np.array_equal(got[:, 0], k.open_time)  # open-time convention, no gaps
    for i, col in enumerate(("open", "high", "low", "close", "volume"), start=1):
        np.testing.assert_allclose(got[:, i], getattr(k, col), rtol=1e-12, err_msg=col)
    t = emu.market.trades("BTC/USDT", int(got[0, 0]), int(got[0, 0]) + MIN)
    assert got[0, 1] == t.price[0] and got[0, 4] == t.price[-1]  # kline = its trades


def test_latest_klines_and_end_time(exchange, emu):
    latest = exchange.fetch_ohlcv("BTC/USDT", "1h", limit=3)
    now = emu.now_ms()
    assert len(latest) == 3 and latest[-1][0] <= now < latest[-1][0] + 3_600_000  # forming
    end = emu.market.genesis_ms + 10 * DAY
    rows = exchange.fetch_ohlcv("ETH/USDT", "15m", limit=4, params={"endTime": end})
    assert [r[0] for r in rows] == [end - 3 * 900_000 + i * 900_000 for i in range(4)]


def test_fetch_trades_by_time_pages_without_gaps_or_duplicates(exchange, emu):
    start = emu.market.genesis_ms + 20 * DAY + 5 * MIN
    end = start + 75 * MIN  # longer than ccxt's one-hour window
    seen, since = [], start
    while since < end:
        page = exchange.fetch_trades("BTC/USDT", since=since, limit=1000)
        fresh = [t for t in page if not seen or int(t["id"]) > int(seen[-1]["id"])]
        seen += [t for t in fresh if t["timestamp"] < end]
        since = page[-1]["timestamp"] if len(page) == 1000 else since + 3_600_000
    truth = emu.market.trades("BTC/USDT", start, end)
    assert [int(t["id"]) for t in seen] == list(truth.id)
    assert [t["price"] for t in seen] == list(truth.price)
    assert [t["side"] for t in seen] == list(truth.side)


def test_fetch_trades_by_from_id_pages(exchange, emu):
    first = emu.market.first_id_at("ETH/USDT", emu.market.genesis_ms + 3 * DAY)
    ids, next_id = [], first
    for _ in range(3):
        page = exchange.fetch_trades("ETH/USDT", limit=1000, params={"fromId": next_id})
        ids += [int(t["id"]) for t in page]
        next_id = ids[-1] + 1
    assert ids == list(range(first, first + 3000))


def test_recent_trades_are_in_the_past(exchange, emu):
    trades = exchange.fetch_trades("BTC/USDT", limit=5)
    assert len(trades) == 5 and trades[-1]["timestamp"] <= emu.now_ms()
    raw = exchange.publicGetTrades({"symbol": "BTCUSDT", "limit": 2})
    assert {"id", "price", "qty", "time", "isBuyerMaker"} <= set(raw[0])


def test_unknown_symbol_is_bad_symbol(exchange):
    with pytest.raises(ccxt.BadSymbol):
        exchange.fetch_ohlcv("FOO/USDT")  # ccxt knows from the markets
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        exchange.publicGetKlines({"symbol": "FOOUSDT", "interval": "1m"})  # the server says so


def test_binance_parameter_rules(exchange, emu):
    start = emu.market.genesis_ms + DAY
    with pytest.raises(ccxt.BadRequest, match="-1127"):
        exchange.publicGetAggTrades({"symbol": "BTCUSDT", "startTime": start,
                                     "endTime": start + 2 * 3_600_000})
    with pytest.raises(ccxt.BadRequest, match="-1128"):
        exchange.fetch_trades("BTC/USDT", since=start, params={"fromId": 1})
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        exchange.publicGetKlines({"symbol": "BTCUSDT", "interval": "7m"})
    status, _, body = get(emu, "/api/v3/klines?symbol=BTCUSDT")
    assert status == 400 and body["code"] == -1102
    status, _, body = get(emu, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5000")
    assert status == 200 and len(body) == 1000  # capped, as Binance does


def test_weight_header_and_ping(emu):
    status, headers, body = get(emu, "/api/v3/ping")
    assert status == 200 and body == {}
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    _, headers2, _ = get(emu, "/api/v3/exchangeInfo")
    assert int(headers2["X-MBX-USED-WEIGHT-1M"]) >= int(headers["X-MBX-USED-WEIGHT-1M"]) + 20
    status, _, body = get(emu, "/api/v3/exchangeInfo?symbol=NOPE")
    assert status == 400 and body == {"code": -1121, "msg": "Invalid symbol."}


def test_async_client_works(emu):
    async def main():
        ex = make_exchange("binance", exchange_url=emu.base_url, async_=True)
        try:
            await ex.load_markets()
            since = emu.market.genesis_ms + 2 * DAY
            rows = await ex.fetch_ohlcv("ETH/USDT", "5m", since=since, limit=10)
            trades = await ex.fetch_trades("ETH/USDT", since=since, limit=10)
            return rows, trades
        finally:
            await ex.close()

    rows, trades = asyncio.run(main())
    k = emu.market.klines("ETH/USDT", "5m", rows[0][0], rows[-1][0] + 1)
    assert [r[4] for r in rows] == list(k.close)
    assert trades[0]["timestamp"] >= emu.market.genesis_ms + 2 * DAY


def test_starts_from_inside_a_running_event_loop():
    """As in a Jupyter cell: this thread already runs a loop; the server brings its own."""
    from tcp_lab.data.emulator import EmulatorServer

    async def main():
        with EmulatorServer(symbols=("BTC/USDT",), seed=1) as emu:
            ex = make_exchange("binance", exchange_url=emu.base_url, async_=True)
            try:
                return await ex.fetch_time(), emu.now_ms()
            finally:
                await ex.close()

    server_time, now = asyncio.run(main())
    assert 0 <= now - server_time < 5_000
