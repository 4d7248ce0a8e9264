"""Trade batches on ``trades:{symbol}``: the message, its wire form, and counting subscribers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tcp_lab.bus import (
    CandleMessage,
    MessageError,
    TradesMessage,
    decode,
    encode,
    market_channel,
    open_bus,
    trades_channel,
    trades_pattern,
)
from tcp_lab.data.emulator import MarketModel
from tcp_lab.errors import DataError

T0 = 1_709_283_900_000_000  # 2024-03-01 09:05 UTC, epoch microseconds


def _message(times, prices, amounts, seq=0, stream="collector:binance/abc/1") -> TradesMessage:
    return TradesMessage.from_arrays(exchange="binance", symbol="BTC/USDT", stream=stream,
                                     seq=seq, times=times, prices=prices, amounts=amounts)


def _emulated(symbol: str, minutes: int = 30):
    """The emulator's trades (bursts, quiet stretches; up to 11 decimals on DOGE/BTC)."""
    market = MarketModel([symbol], seed=3)
    t = market.trades(symbol, market.genesis_ms, market.genesis_ms + minutes * 60_000)
    return t.time.astype(np.int64) * 1000, t.price.astype(np.float64), t.amount.astype(np.float64)


def test_wire_format_is_three_json_arrays():
    m = _message([T0, T0 + 1500], [0.00012345, 0.00012346], [12.5, 0.00000001])
    wire = json.loads(encode(m))
    assert wire == {"v": 1, "type": "trades", "ts": "2024-03-01T09:05:00.001500Z",
                    "exchange": "binance", "symbol": "BTC/USDT",
                    "stream": "collector:binance/abc/1", "seq": 0, "until": None,
                    "times": [T0, T0 + 1500],
                    "prices": [0.00012345, 0.00012346], "amounts": [12.5, 1e-08]}


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/BTC", "DOGE/BTC"])
def test_round_trip_keeps_every_trade_bit_for_bit(symbol):
    ts, price, amount = _emulated(symbol)
    assert len(ts) > 100
    got = decode(encode(_message(ts, price, amount, seq=7)))
    assert isinstance(got, TradesMessage) and got.seq == 7 and got.ts.value // 1000 == ts[-1]
    for a, b in zip(got.arrays(), (ts, price, amount), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**8), st.integers(1, 10**12),
                          st.integers(0, 10**12)), min_size=1, max_size=50))
def test_eight_decimal_prices_and_amounts_survive_json(rows):
    rows.sort()
    ts = [T0 + r[0] for r in rows]
    prices = [round(r[1] * 1e-8, 8) for r in rows]  # 0.00000001 … 10,000 with 8 decimals
    amounts = [round(r[2] * 1e-8, 8) for r in rows]
    got = decode(encode(_message(ts, prices, amounts))).arrays()
    assert got[0].tolist() == ts and got[1].tolist() == prices and got[2].tolist() == amounts


@pytest.mark.parametrize(("times", "prices", "amounts", "match"), [
    ([T0, T0 + 1], [1.0], [1.0, 1.0], "2 times, 1 prices and 2 amounts"),
    ([T0 + 1, T0], [1.0, 1.0], [1.0, 1.0], "not in order"),
    ([T0], [0.0], [1.0], "greater than 0"),
    ([T0], [1.0], [-1.0], "greater than or equal to 0"),
    ([T0], [float("nan")], [1.0], "finite"),
])
def test_bad_batches_are_rejected(times, prices, amounts, match):
    with pytest.raises(ValidationError, match=match):
        TradesMessage(exchange="binance", symbol="BTC/USDT", stream="s", seq=0,
                      ts=pd.Timestamp(T0, unit="us", tz="UTC"), times=times, prices=prices,
                      amounts=amounts)


def test_a_batch_without_trades_says_until_when_and_decode_names_the_field():
    with pytest.raises(ValueError, match="needs a trade or an 'until'"):
        _message([], [], [])
    until = pd.Timestamp("2024-03-01 09:06", tz="UTC")
    empty = TradesMessage.from_arrays(exchange="binance", symbol="BTC/USDT", stream="s", seq=3,
                                      times=[], prices=[], amounts=[], until=until)
    assert decode(encode(empty)) == empty and empty.ts == until
    assert [len(a) for a in empty.arrays()] == [0, 0, 0]
    later = TradesMessage.from_arrays(exchange="binance", symbol="BTC/USDT", stream="s", seq=4,
                                      times=[T0], prices=[1.0], amounts=[1.0], until=until)
    assert later.ts == until  # the newest of the trades and until
    raw = encode(_message([T0], [1.0], [1.0])).replace('"seq":0', '"seq":-1')
    with pytest.raises(MessageError, match="trades message is invalid at seq"):
        decode(raw)


def test_publish_and_receive_on_both_backends(bus):
    ts, price, amount = _emulated("BTC/USDT", minutes=5)
    sent = [_message(ts[i:i + 50], price[i:i + 50], amount[i:i + 50], seq=k)
            for k, i in enumerate(range(0, len(ts), 50))]
    channel = trades_channel("BTC/USDT")
    with bus.subscribe(channel, market_channel("BTC/USDT")) as sub:
        for m in sent:
            assert bus.publish(channel, m) == 1
        got = [sub.get(timeout=2.0) for _ in sent]
    assert got == sent
    with pytest.raises(DataError, match="carries trades messages"):
        bus.publish(channel, CandleMessage(
            exchange="binance", symbol="BTC/USDT", timeframe="1m", open=1.0, high=1.0, low=1.0,
            close=1.0, volume=1.0, trade_count=1, ts=pd.Timestamp(T0, unit="us", tz="UTC")))


def test_subscribers_counts_direct_subscriptions_only(bus, bus_url, with_prefix):
    channel = trades_channel("BTC/USDT")
    assert bus.subscribers(channel) == 0
    with bus.subscribe(channel), bus.subscribe(channel, market_channel("BTC/USDT")):
        assert bus.subscribers(channel) == 2
        with bus.subscribe(patterns=[trades_pattern()]):
            assert bus.subscribers(channel) == 2  # a pattern is not counted
        with open_bus(with_prefix(bus_url, "elsewhere:")) as other:
            assert other.subscribers(channel) == 0  # another prefix is another namespace
    assert bus.subscribers(channel) == 0
