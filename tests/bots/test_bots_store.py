"""``Store.record_bot_candle``: a bot's candle in one transaction, on every backend."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tcp_lab.errors import DataError, TcpLabError
from tcp_lab.store import open_store

TS = pd.Timestamp("2024-03-01 00:05", tz="UTC")
FILL = {"side": "sell", "price": 101.5, "amount": 0.25, "fee": 0.03, "realized_pnl": -1.25,
        "reason": "stop_loss"}


@pytest.fixture
def store(store_url):
    with open_store(store_url) as s:
        s.upsert_bot("b1", strategy="sma_cross")
        yield s


def write(store, ts=TS, fill=FILL, cash=10.0, state=None, fills=None):
    fills = fills if fills is not None else [] if fill is None else [fill]
    store.record_bot_candle("b1", ts, action="sell", confidence=0.5, price=101.6,
                            indicators={"sma": 100.1, "warm": None}, fills=fills, cash=cash,
                            position=0.0, equity=cash, state=state or {"account": {"cash": cash}})


def test_writes_the_four_records_and_replays_idempotently(store):
    write(store)
    write(store)  # a replay rewrites, never adds
    sig, trades, perf = (store.load_signals("b1"), store.load_bot_trades("b1"),
                         store.load_performance("b1"))
    assert len(sig) == len(trades) == len(perf) == 1
    assert sig["indicators"].iat[0] == {"sma": 100.1, "warm": None}
    assert trades.iloc[0].to_dict() == {"symbol": "", "seq": 0, "side": "sell", "price": 101.5,
                                        "amount": 0.25, "fee": 0.03, "realized_pnl": -1.25,
                                        "reason": "stop_loss"}
    assert perf["cash"].iat[0] == 10.0
    row = store.get_bot("b1")
    assert row["last_candle_ts"] == TS and row["state"] == {"account": {"cash": 10.0}}
    write(store, ts=TS + pd.Timedelta(minutes=1), fill=None, cash=0.1 + 0.2)
    assert len(store.load_bot_trades("b1")) == 1
    assert store.get_bot("b1")["state"]["account"]["cash"] == 0.1 + 0.2  # exact round trip


def test_several_fills_of_one_candle_keep_their_order(store):
    stop = FILL
    short = {"side": "sell", "price": 101.6, "amount": 0.2, "fee": 0.02, "realized_pnl": None,
             "reason": "signal"}
    write(store, fills=[stop, short])
    write(store, fills=[stop, short])  # replayed: the same two rows
    trades = store.load_bot_trades("b1")
    assert trades["seq"].tolist() == [0, 1] and trades["side"].tolist() == ["sell", "sell"]
    assert trades["reason"].tolist() == ["stop_loss", "signal"]


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


def test_fills_of_schema_version_1_survive_the_migration(store_url):
    """A database written by tcp_lab 0.1 (one fill per candle and side) is migrated in place."""
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateTable

    from tcp_lab.store import schema as S

    with open_store(store_url, init=False) as old:
        backend = old._backend

        def version_1(tx):
            tx.execute(CreateTable(S.schema_version, if_not_exists=True))
            for stmt in S.MIGRATIONS[0].statements(backend.dialect):
                tx.execute(stmt)
            tx.execute(sa.insert(S.schema_version).values(
                version=1, description="v1", applied_at=TS.to_pydatetime()))
            tx.execute(sa.insert(S._trades_v1).values(
                bot_id="b1", ts=TS.to_pydatetime(), side="sell", price=101.5, amount=0.25,
                fee=0.03, realized_pnl=-1.25))

        backend.run(version_1, write=True, exclusive=True, what="write a version-1 database")
    with open_store(store_url) as new:
        assert new.info()["schema_version"] == S.SCHEMA_VERSION
        trades = new.load_bot_trades("b1")
        assert trades.iloc[0].to_dict() == {"symbol": "", "seq": 1, "side": "sell", "price": 101.5,
                                            "amount": 0.25, "fee": 0.03, "realized_pnl": -1.25,
                                            "reason": "signal"}
