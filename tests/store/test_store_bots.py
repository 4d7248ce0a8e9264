"""Bots, signals, fills and performance records, on every backend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.errors import DataError
from tcp_lab.timeframes import TS_DTYPE

T0 = pd.Timestamp("2024-03-01 00:01", tz="UTC")


def test_a_bot_is_created_updated_and_listed(store):
    bot = store.upsert_bot("sma-btc", strategy="sma_cross", config_path="config/bots/a.json")
    assert bot["name"] == "sma-btc" and bot["status"] == "stopped" and bot["state"] == {}
    assert bot["restart_count"] == 0 and bot["restart_times"] == []
    assert bot["created_at"].tzname() == "UTC"
    beat = pd.Timestamp("2024-03-01 12:00", tz="Europe/Paris")
    restarts = [T0, T0 + pd.Timedelta(minutes=5)]
    bot = store.update_bot("sma-btc", status="running", heartbeat=beat, last_candle_ts=T0,
                           restart_count=2, restart_times=restarts, last_error="boom",
                           state={"cash": 900.5, "position": np.float64(0.1)})
    assert bot["status"] == "running" and bot["heartbeat"] == beat
    assert bot["heartbeat"].tzname() == "UTC" and bot["last_candle_ts"] == T0
    assert bot["restart_count"] == 2 and bot["restart_times"] == restarts
    assert bot["last_error"] == "boom" and bot["state"] == {"cash": 900.5, "position": 0.1}
    assert store.get_bot("sma-btc") == bot
    # Upserting the definition again keeps bookkeeping and state, updates what is given.
    again = store.upsert_bot("sma-btc", strategy="sma_cross", name="SMA on BTC")
    assert again["name"] == "SMA on BTC" and again["status"] == "running"
    assert again["restart_count"] == 2 and again["state"] == bot["state"]
    assert again["created_at"] == bot["created_at"] and again["updated_at"] >= bot["updated_at"]
    store.upsert_bot("rsi-eth", strategy="rsi", status="stopped")
    bots = store.list_bots()
    assert bots["id"].tolist() == ["rsi-eth", "sma-btc"]
    assert bots["heartbeat"].dtype == TS_DTYPE
    assert store.info()["tables"]["bots"] == 2


def test_bot_errors_name_the_problem(store):
    assert store.get_bot("nope") is None
    with pytest.raises(DataError, match="no bot 'nope'"):
        store.update_bot("nope", status="running")
    store.upsert_bot("b", strategy="sma")
    with pytest.raises(DataError, match="did you mean 'heartbeat'"):
        store.update_bot("b", hearbeat=T0)
    with pytest.raises(DataError, match="time zone"):
        store.update_bot("b", heartbeat=pd.Timestamp("2024-03-01"))
    with pytest.raises(DataError, match="restart_count"):
        store.update_bot("b", restart_count=-1)
    with pytest.raises(DataError, match="state"):
        store.update_bot("b", state=[1, 2])
    assert store.get_bot("b")["heartbeat"] is None


def test_signals_are_one_per_candle_and_last_write_wins(store):
    store.record_signal("b", T0, "buy", confidence=0.4, price=100.0,
                        indicators={"fast": np.float64(1.5), "slow": np.nan})
    store.record_signal("b", T0, "hold", confidence=0.9, price=101.0, indicators={"fast": 2})
    store.record_signal("b", T0.tz_convert("Asia/Tokyo") + pd.Timedelta(minutes=1), "sell")
    store.record_signal("other", T0, "buy")
    sig = store.load_signals("b")
    assert sig.index.dtype == TS_DTYPE and sig.index.name == "ts"
    assert sig.index.tolist() == [T0, T0 + pd.Timedelta(minutes=1)]
    assert sig["action"].tolist() == ["hold", "sell"]
    assert sig["confidence"].iloc[0] == 0.9 and np.isnan(sig["confidence"].iloc[1])
    assert sig["indicators"].tolist() == [{"fast": 2}, {}]
    assert len(store.load_signals("b", start=T0 + pd.Timedelta(seconds=1))) == 1
    with pytest.raises(DataError, match="time zone"):
        store.record_signal("b", pd.Timestamp("2024-03-01"), "buy")
    assert store.info()["tables"]["signals"] == 3


def test_fills_are_one_per_candle_and_side(store):
    store.record_bot_trade("b", T0, "buy", 100.0, 0.5, fee=0.05)
    store.record_bot_trade("b", T0, "buy", 100.5, 0.5, fee=0.06)  # a replayed candle
    store.record_bot_trade("b", T0 + pd.Timedelta(minutes=3), "sell", 103.0, 0.5, fee=0.05,
                           realized_pnl=1.19)
    fills = store.load_bot_trades("b")
    assert fills["side"].tolist() == ["buy", "sell"]
    assert fills["price"].tolist() == [100.5, 103.0] and fills["fee"].tolist() == [0.06, 0.05]
    assert np.isnan(fills["realized_pnl"].iloc[0]) and fills["realized_pnl"].iloc[1] == 1.19
    for bad in ({"side": "long"}, {"price": -1.0}, {"amount": np.nan}):
        args = {"side": "buy", "price": 1.0, "amount": 1.0} | bad
        with pytest.raises(DataError):
            store.record_bot_trade("b", T0, **args)
    assert store.load_bot_trades("b")["price"].tolist() == [100.5, 103.0]


def test_performance_is_one_row_per_candle(store):
    for i in range(3):
        store.record_performance("b", T0 + pd.Timedelta(minutes=i), cash=1000.0 - i,
                                 position=0.01 * i, equity=1000.0 + i)
    store.record_performance("b", T0, cash=5.0, position=1.0, equity=105.0)
    perf = store.load_performance("b", end=T0 + pd.Timedelta(minutes=1))
    assert perf.columns.tolist() == ["cash", "position", "equity"]
    assert perf["equity"].tolist() == [105.0, 1001.0]
    with pytest.raises(DataError, match="equity"):
        store.record_performance("b", T0, cash=1.0, position=0.0, equity=float("inf"))
    assert store.load_performance("b")["equity"].tolist() == [105.0, 1001.0, 1002.0]
    assert store.load_performance("nobody").empty
