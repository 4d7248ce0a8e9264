"""Raw trades on DuckDB: the key kept unique by the writer, not an index (schema migration 2)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from tcp_lab.store import open_store
from tcp_lab.store import schema as S

KEY = ("binance", "BTC/USDT")


def _at_version_1(url: str) -> None:
    """A database as schema version 1 left it: raw_trades with its primary-key index."""
    with open_store(url, init=False) as store:
        backend = store._backend

        def create(tx) -> None:
            tx.execute(sa.schema.CreateTable(S.schema_version))
            for stmt in S.MIGRATIONS[0].statements(backend.dialect):
                tx.execute(stmt)
            tx.execute(sa.insert(S.schema_version).values(
                version=1, description="v1", applied_at=pd.Timestamp.now("UTC").to_pydatetime()))

        backend.run(create, write=True)


def _raw_trades_constraints(url: str) -> list[str]:
    with open_store(url, init=False) as store:
        return [r[0] for r in store._backend.run(lambda tx: tx.fetch(sa.text(
            "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'raw_trades'")),
            write=False)]


def test_migration_drops_the_index_and_keeps_the_trades(duckdb_url, trade_factory):
    _at_version_1(duckdb_url)
    assert "PRIMARY KEY" in _raw_trades_constraints(duckdb_url)
    trades = trade_factory(500)
    with open_store(duckdb_url, init=False) as store:
        store.save_raw_trades(trades.iloc[:300], *KEY)
    with open_store(duckdb_url) as store:  # applies migration 2 (and any later one)
        assert store.info()["schema_version"] == S.SCHEMA_VERSION
        pd.testing.assert_frame_equal(store.load_raw_trades(*KEY),
                                      trades.iloc[:300].astype({"side": "str"}))
        store.save_raw_trades(trades, *KEY)
        store.save_raw_trades(trades.iloc[100:400], *KEY)
        pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), trades.astype({"side": "str"}))
    assert "PRIMARY KEY" not in _raw_trades_constraints(duckdb_url)


def test_the_same_trade_in_another_series_is_another_row(duckdb_url, trade_factory):
    trades = trade_factory(100)
    with open_store(duckdb_url) as store:
        for _ in range(2):
            store.save_raw_trades(trades, *KEY)
            store.save_raw_trades(trades, "binance", "ETH/USDT")
            store.save_raw_trades(trades.iloc[:10], "kraken", "BTC/USDT")
        assert store.info()["tables"]["raw_trades"] == 210
