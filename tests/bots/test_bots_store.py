"""``Store.record_bot_candle``: a bot's candle in one transaction, on every backend."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tcp_lab.errors import DataError, TcpLabError
from tcp_lab.store import open_store

TS = pd.Timestamp("2024-03-01 00:05", tz="UTC")
FILL = {"side": "sell", "price": 101.5, "amount": 0.25, "fee": 0.03, "realized_pnl": -1.25}


@pytest.fixture
def store(store_url):
    with open_store(store_url) as s:
        s.upsert_bot("b1", strategy="sma_cross")
        yield s


def write(store, ts=TS, fill=FILL, cash=10.0, state=None):
    store.record_bot_candle("b1", ts, action="sell", confidence=0.5, price=101.6,
                            indicators={"sma": 100.1, "warm": None}, fill=fill, cash=cash,
                            position=0.0, equity=cash, state=state or {"account": {"cash": cash}})


def test_writes_the_four_records_and_replays_idempotently(store):
    write(store)
    write(store)  # a replay rewrites, never adds
    sig, trades, perf = (store.load_signals("b1"), store.load_bot_trades("b1"),
                         store.load_performance("b1"))
    assert len(sig) == len(trades) == len(perf) == 1
    assert sig["indicators"].iat[0] == {"sma": 100.1, "warm": None}
    assert trades.iloc[0].to_dict() == {"side": "sell", "price": 101.5, "amount": 0.25,
                                        "fee": 0.03, "realized_pnl": -1.25}
    assert perf["cash"].iat[0] == 10.0
    row = store.get_bot("b1")
    assert row["last_candle_ts"] == TS and row["state"] == {"account": {"cash": 10.0}}
    write(store, ts=TS + pd.Timedelta(minutes=1), fill=None, cash=0.1 + 0.2)
    assert len(store.load_bot_trades("b1")) == 1
    assert store.get_bot("b1")["state"]["account"]["cash"] == 0.1 + 0.2  # exact round trip


def test_invalid_values_write_nothing(store):
    with pytest.raises(DataError):
        write(store, fill={**FILL, "amount": -1.0})
    with pytest.raises(DataError):
        write(store, cash=math.nan)
    assert store.load_signals("b1").empty and store.get_bot("b1")["last_candle_ts"] is None


def test_a_failure_inside_the_transaction_rolls_back_every_record(store, monkeypatch):
    write(store)
    backend = store._backend
    bad = "SELECT * FROM no_such_table_for_this_test"
    if backend.name == "duckdb":  # one statement per table, over registered relations
        real_sql = backend._relation_sql

        def failing_sql(name, write_, conflict):  # fails after the signal and the fill
            return bad if write_.table.name == "bot_performance" else \
                real_sql(name, write_, conflict)

        monkeypatch.setattr(backend, "_relation_sql", failing_sql)
    else:
        real = backend._rows_statement

        def failing(write_):
            return (bad, {}) if write_.table.name == "bot_performance" else real(write_)

        monkeypatch.setattr(backend, "_rows_statement", failing)
    later = TS + pd.Timedelta(minutes=1)
    with pytest.raises(TcpLabError):
        write(store, ts=later)  # the signal and the fill were written before the failure
    assert list(store.load_signals("b1").index) == [TS]
    assert list(store.load_bot_trades("b1").index) == [TS]
    assert store.get_bot("b1")["last_candle_ts"] == TS
