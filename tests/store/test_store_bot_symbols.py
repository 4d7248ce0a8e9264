"""Signals and fills name their symbol (portfolio bots), on every backend; migration 6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tcp_lab.errors import DataError
from tcp_lab.store import bot_candle_record, open_store, portfolio_candle_record
from tcp_lab.store import schema as S
from tcp_lab.timeframes import TS_DTYPE

T0 = pd.Timestamp("2024-03-01 00:05", tz="UTC")
T1 = T0 + pd.Timedelta(minutes=5)
SIGNALS = [
    {"symbol": "ETH/USDT", "action": "sell", "confidence": 0.25, "price": 3400.5,
     "indicators": {"rank": 2}},
    {"symbol": "BTC/USDT", "action": "buy", "confidence": 0.75, "price": 62000.0,
     "indicators": {"rank": 1, "warm": None}},
]
FILLS = [
    {"symbol": "ETH/USDT", "side": "sell", "price": 3400.0, "amount": 0.5, "fee": 1.7,
     "realized_pnl": 12.5, "reason": "stop_loss"},
    {"symbol": "BTC/USDT", "side": "buy", "price": 62010.0, "amount": 0.01, "fee": 0.62,
     "realized_pnl": None, "reason": "signal"},
    {"symbol": "ETH/USDT", "side": "sell", "price": 3400.5, "amount": 0.25, "fee": 0.85,
     "realized_pnl": None, "reason": "reversal"},
]


def portfolio(ts=T0, signals=SIGNALS, fills=FILLS, cash=500.0):
    return portfolio_candle_record("pf", ts, signals=signals, fills=fills, cash=cash,
                                   position=0.0, equity=1000.0,
                                   state={"account": {"cash": cash}})


@pytest.fixture
def store(store_url):
    with open_store(store_url) as s:
        s.upsert_bot("pf", strategy="momentum_rank")
        s.upsert_bot("solo", strategy="sma_cross")
        yield s


def test_a_portfolio_candle_round_trips_and_a_replay_rewrites(store):
    assert store.write_bot_candles([portfolio()]) == set()
    assert store.write_bot_candles([portfolio(cash=400.0)]) == set()  # a replay
    sig = store.load_signals("pf")
    assert sig.index.dtype == TS_DTYPE and sig.index.tolist() == [T0, T0]
    assert list(sig.columns) == ["symbol", "action", "confidence", "price", "indicators"]
    assert sig["symbol"].tolist() == ["BTC/USDT", "ETH/USDT"]  # in key order
    assert sig["action"].tolist() == ["buy", "sell"]
    assert sig["confidence"].tolist() == [0.75, 0.25] and sig["price"].dtype == "float64"
    assert sig["indicators"].tolist() == [{"rank": 1, "warm": None}, {"rank": 2}]
    fills = store.load_bot_trades("pf")
    assert fills.index.tolist() == [T0] * 3
    assert list(fills.columns) == ["symbol", "seq", "side", "price", "amount", "fee",
                                   "realized_pnl", "reason"]
    assert fills["seq"].dtype == "int64" and fills["seq"].tolist() == [0, 1, 2]
    assert fills["symbol"].tolist() == ["ETH/USDT", "BTC/USDT", "ETH/USDT"]
    assert fills["reason"].tolist() == ["stop_loss", "signal", "reversal"]
    assert fills["price"].tolist() == [3400.0, 62010.0, 3400.5]
    assert fills["realized_pnl"].iloc[0] == 12.5 and fills["realized_pnl"].iloc[1:].isna().all()
    assert store.load_performance("pf")["cash"].tolist() == [400.0]
    bot = store.get_bot("pf")
    assert bot["last_candle_ts"] == T0 and bot["state"] == {"account": {"cash": 400.0}}
    info = store.info()["tables"]
    assert (info["signals"], info["trades"], info["bot_performance"]) == (2, 3, 1)


def test_portfolio_and_single_symbol_candles_share_one_write(store):
    solo = bot_candle_record("solo", T0, action="buy", confidence=1.0, price=100.0,
                             indicators=None, fills=[{**FILLS[1], "symbol": "SOL/USDT"},
                                                     {k: v for k, v in FILLS[0].items()
                                                      if k != "symbol"}],
                             cash=1.0, position=2.0, equity=3.0, state={}, symbol="ETH/USDT")
    assert [s["symbol"] for s in solo["signals"]] == ["ETH/USDT"]
    assert store.write_bot_candles([portfolio(), solo, portfolio(ts=T1, fills=[])]) == set()
    assert store.load_signals("solo")["symbol"].tolist() == ["ETH/USDT"]
    assert store.load_bot_trades("solo")["symbol"].tolist() == ["SOL/USDT", "ETH/USDT"]
    assert store.load_signals("pf").index.tolist() == [T0, T0, T1, T1]
    assert len(store.load_signals("pf", start=T1)) == 2
    assert len(store.load_bot_trades("pf")) == 3


def test_record_bot_candle_names_the_symbol(store):
    store.record_bot_candle("solo", T0, action="sell", confidence=0.5, price=101.0,
                            indicators={}, fills=[FILLS[2]], cash=1.0, position=0.0,
                            equity=1.0, state={}, symbol="BTC/USDT")
    store.record_bot_candle("solo", T1, action="hold", confidence=None, price=None,
                            indicators=None, cash=1.0, position=0.0, equity=1.0, state={})
    assert store.load_signals("solo")["symbol"].tolist() == ["BTC/USDT", ""]
    assert store.load_bot_trades("solo")["symbol"].tolist() == ["ETH/USDT"]  # the fill's own


def test_single_records_take_a_symbol(store):
    store.record_signal("pf", T0, "buy", symbol="BTC/USDT")
    store.record_signal("pf", T0, "sell", symbol="ETH/USDT")
    store.record_signal("pf", T0, "hold", symbol="BTC/USDT", confidence=0.5)  # rewrites
    store.record_signal("solo", T0, "buy")
    sig = store.load_signals("pf")
    assert sig["symbol"].tolist() == ["BTC/USDT", "ETH/USDT"]
    assert sig["action"].tolist() == ["hold", "sell"] and sig["confidence"].iloc[0] == 0.5
    assert store.load_signals("solo")["symbol"].tolist() == [""]
    store.record_bot_trade("pf", T0, "buy", 100.0, 1.0, symbol="BTC/USDT")
    store.record_bot_trade("pf", T0, "sell", 10.0, 2.0, seq=1, symbol="ETH/USDT")
    store.record_bot_trade("pf", T0, "buy", 101.0, 1.0, symbol="BTC/USDT")  # rewrites seq 0
    fills = store.load_bot_trades("pf")
    assert fills["symbol"].tolist() == ["BTC/USDT", "ETH/USDT"]
    assert fills["price"].tolist() == [101.0, 10.0]
    with pytest.raises(DataError, match="symbol must be a string"):
        store.record_signal("pf", T0, "buy", symbol=None)


@pytest.mark.parametrize(("signals", "fills", "match"), [
    ([SIGNALS[0], {**SIGNALS[0], "action": "buy"}], FILLS, "two signals for symbol 'ETH/USDT'"),
    ([{k: v for k, v in SIGNALS[0].items() if k != "symbol"}], FILLS, "signal 0 lacks symbol"),
    (SIGNALS, [FILLS[0], {k: v for k, v in FILLS[1].items() if k not in ("symbol", "fee")}],
     "fill 1 lacks symbol, fee"),
    (SIGNALS, [{**FILLS[0], "symbol": ""}], "fill 0: symbol must be a non-empty string"),
    ([{**SIGNALS[0], "symbol": 3}], FILLS, "signal 0: symbol must be a non-empty string"),
    (SIGNALS, [{**FILLS[0], "amount": -1.0}], "amount must be a non-negative number"),
    ([{**SIGNALS[0], "price": np.inf}], FILLS, "price must be a finite number"),
    (SIGNALS, [{**FILLS[0], "side": "long"}], "side must be 'buy' or 'sell'"),
])
def test_a_bad_portfolio_record_is_refused(signals, fills, match):
    with pytest.raises(DataError, match=match):
        portfolio(signals=signals, fills=fills)


def test_migration_6_gives_stored_records_their_bots_symbol(store_url):
    """A version-5 database keeps its signals and fills, each with its bot's symbol."""
    with open_store(store_url, init=False) as store:
        backend = store._backend

        def at_version_5(tx) -> None:
            tx.execute(sa.schema.CreateTable(S.schema_version, if_not_exists=True))
            for m in S.MIGRATIONS[:5]:
                for stmt in m.statements(backend.dialect):
                    tx.execute(stmt)
                tx.execute(sa.insert(S.schema_version).values(
                    version=m.version, description=m.description,
                    applied_at=pd.Timestamp.now("UTC").to_pydatetime()))

        backend.run(at_version_5, write=True, exclusive=True)
        store.upsert_bot("btc", strategy="sma_cross", state={
            "account": {"cash": 1.0}, "config": {"symbol": "BTC/USDT", "timeframe": "1m"},
            "version": 1})
        store.upsert_bot("bare", strategy="sma_cross")  # no stored config: symbol unknown

        def old_rows(tx) -> None:
            for bot_id in ("btc", "bare", "gone"):  # "gone": no row in bots
                for i, ts in enumerate((T0, T1)):
                    tx.execute(sa.insert(S._signals_v1).values(
                        bot_id=bot_id, ts=ts.to_pydatetime(), action=("buy", "sell")[i],
                        confidence=0.5 + i, price=100.0 + i, indicators='{"sma": 1.5}'))
            for bot_id in ("btc", "gone"):
                for seq, side in enumerate(("sell", "buy")):
                    tx.execute(sa.insert(S._trades_v3).values(
                        bot_id=bot_id, ts=T1.to_pydatetime(), seq=seq, side=side,
                        price=101.0 + seq, amount=0.5, fee=0.01, realized_pnl=None,
                        reason="stop_loss" if seq == 0 else "signal"))

        backend.run(old_rows, write=True)
        assert store.info()["schema_version"] == 5
        assert store.init_schema() == 6 == S.SCHEMA_VERSION
        assert store.info()["tables"]["signals"] == 6 and store.info()["tables"]["trades"] == 4
        for bot_id, symbol in (("btc", "BTC/USDT"), ("bare", ""), ("gone", "")):
            sig = store.load_signals(bot_id)
            assert sig.index.tolist() == [T0, T1] and sig["symbol"].tolist() == [symbol] * 2
            assert sig["action"].tolist() == ["buy", "sell"]
            assert sig["confidence"].tolist() == [0.5, 1.5]
            assert sig["indicators"].tolist() == [{"sma": 1.5}] * 2
        fills = store.load_bot_trades("btc")
        assert fills.index.tolist() == [T1, T1]
        assert fills.drop(columns="realized_pnl").iloc[0].to_dict() == {
            "symbol": "BTC/USDT", "seq": 0, "side": "sell", "price": 101.0, "amount": 0.5,
            "fee": 0.01, "reason": "stop_loss"}
        assert fills["realized_pnl"].isna().all() and fills["seq"].tolist() == [0, 1]
        assert store.load_bot_trades("gone")["symbol"].tolist() == ["", ""]
        # The new keys hold: a second symbol at a stored close time, a replayed fill.
        store.record_signal("btc", T1, "hold", symbol="ETH/USDT")
        store.record_bot_trade("btc", T1, "sell", 99.0, 0.5, seq=1, symbol="BTC/USDT")
        assert store.load_signals("btc", start=T1)["symbol"].tolist() == ["BTC/USDT",
                                                                           "ETH/USDT"]
        assert store.load_bot_trades("btc")["price"].tolist() == [101.0, 99.0]
        assert store.init_schema() == 6  # nothing left to apply
