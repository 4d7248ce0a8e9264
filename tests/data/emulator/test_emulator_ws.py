"""Live trades over the websocket, as ccxt.pro's ``watch_trades`` sees them.

The emulator clock runs 10x fast here, so a second of wall time holds enough trades.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import ccxt
import pytest

from tcp_lab.data.emulator import EmulatorServer
from tcp_lab.data.providers.ccxt_client import make_exchange


@pytest.fixture(scope="module")
def fast():
    with EmulatorServer(symbols=("BTC/USDT", "ETH/USDT"), seed=2, speed=10.0) as server:
        yield server


async def collect(pro, symbol: str, enough, timeout: float = 6.0,
                  got: list[dict] | None = None) -> list[dict]:
    """Watch ``symbol`` until ``enough(trades)`` (or ``timeout`` seconds)."""
    got = [] if got is None else got
    t0 = time.monotonic()
    while not enough(got) and time.monotonic() - t0 < timeout:
        for trade in await pro.watch_trades(symbol):
            if not got or int(trade["id"]) > int(got[-1]["id"]):
                got.append(trade)
    return got


def jumps(trades: list[dict]) -> list[tuple[int, int]]:
    ids = [int(t["id"]) for t in trades]
    return [(a, b) for a, b in zip(ids, ids[1:], strict=False) if b - a != 1]


def run_pro(emu, body):
    async def main():
        pro = make_exchange("binance", exchange_url=emu.base_url, pro=True)
        try:
            return await body(pro)
        finally:
            await pro.close()

    return asyncio.run(main())


def test_watch_trades_receives_live_trades(fast):
    start = fast.now_ms()
    got = run_pro(fast, lambda pro: collect(pro, "BTC/USDT", lambda g: len(g) >= 5))
    ids = [int(t["id"]) for t in got]
    assert len(ids) >= 3 and ids == list(range(ids[0], ids[0] + len(ids)))
    assert got[0]["timestamp"] >= start - 1000 and got[-1]["timestamp"] <= fast.now_ms()
    truth = fast.market.trades_from_id("BTC/USDT", ids[0], len(ids))
    assert [t["price"] for t in got] == list(truth.price)
    assert [t["side"] for t in got] == list(truth.side)
    assert fast.stats()["ws_subscribe"] >= 1


def test_trade_gap_leaves_ids_out_that_rest_still_has(fast):
    async def body(pro):
        got = await collect(pro, "ETH/USDT", lambda g: len(g) >= 1)
        fast.inject("trade_gap", size=4, symbol="ETH/USDT")
        return await collect(pro, "ETH/USDT", lambda g: bool(jumps(g)), got=got)

    gaps = jumps(run_pro(fast, body))
    assert len(gaps) == 1 and gaps[0][1] - gaps[0][0] == 5
    missing = fast.market.trades_from_id("ETH/USDT", gaps[0][0] + 1, 4)
    assert len(missing) == 4  # the REST side can repair the gap


def test_drop_ws_is_a_network_error_then_reconnects(fast):
    async def body(pro):
        await pro.watch_trades("BTC/USDT")
        fast.inject("drop_ws")
        with pytest.raises(ccxt.NetworkError, match="closed"):
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5:
                await pro.watch_trades("BTC/USDT")
        return await pro.watch_trades("BTC/USDT")  # a new connection

    assert len(run_pro(fast, body)) >= 1
    assert fast.stats()["ws_dropped"] >= 1


def test_raw_and_combined_streams(fast):
    async def main():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(fast.ws_url + "/btcusdt@aggTrade") as ws:
                await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
                listed = json.loads((await ws.receive(timeout=5)).data)
                event = json.loads((await ws.receive(timeout=5)).data)
            url = f"http://{fast.host}:{fast.port}/stream?streams=ethusdt@trade"
            async with s.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE",
                                              "params": ["btcusdt@trade"], "id": 1}))
                ack = json.loads((await ws.receive(timeout=5)).data)
                wrapped = json.loads((await ws.receive(timeout=5)).data)
        return listed, event, ack, wrapped

    listed, event, ack, wrapped = asyncio.run(main())
    assert listed == {"result": ["btcusdt@aggTrade"], "id": 9}
    assert event["e"] == "aggTrade" and event["s"] == "BTCUSDT" and event["a"] == event["f"]
    assert isinstance(event["T"], int) and isinstance(event["p"], str)
    assert ack == {"result": None, "id": 1}
    assert wrapped["stream"] in ("ethusdt@trade", "btcusdt@trade")
    assert wrapped["data"]["e"] == "trade" and wrapped["data"]["M"] is True


def test_watch_trades_on_the_agg_trade_stream(fast):
    """``params={"name": "aggTrade"}``: ids are REST aggTrades ids (``a``)."""
    async def body(pro):
        got: list[dict] = []
        t0 = time.monotonic()
        while len(got) < 3 and time.monotonic() - t0 < 6:
            got += await pro.watch_trades("BTC/USDT", params={"name": "aggTrade"})
        return got

    got = run_pro(fast, body)
    assert len(got) >= 3 and got[0]["info"]["e"] == "aggTrade"
    truth = fast.market.trades_from_id("BTC/USDT", int(got[0]["id"]), 1)
    assert got[0]["price"] == truth.price[0] and got[0]["timestamp"] == truth.time[0]
