"""Raw market trades, on every backend; PostgreSQL's monthly partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg2
import pytest

from tcp_lab.errors import DataError
from tcp_lab.timeframes import TS_DTYPE

KEY = ("binance", "BTC/USDT")


@pytest.mark.parametrize("n", [10, 500], ids=["small-batch", "bulk-batch"])
def test_trades_round_trip_and_rewrites_are_idempotent(store, trade_factory, n):
    trades = trade_factory(n)
    assert store.save_raw_trades(trades.sample(frac=1, random_state=0), *KEY) == n
    assert store.save_raw_trades(trades, *KEY) == n
    out = store.load_raw_trades(*KEY)
    assert out["ts"].dtype == TS_DTYPE
    assert list(out.columns) == ["ts", "id", "price", "amount", "side"]
    pd.testing.assert_frame_equal(out, trades.astype({"side": "str"}))
    assert store.info()["tables"]["raw_trades"] == n


def test_overlapping_trade_batches_store_each_trade_once(store, trade_factory):
    trades = trade_factory(300)
    store.save_raw_trades(trades.iloc[:200], *KEY)
    store.save_raw_trades(trades.iloc[100:], *KEY)
    pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), trades.astype({"side": "str"}))


def test_trade_range_reads_and_missing_side(store, trade_factory):
    trades = trade_factory(100)
    trades["side"] = trades["side"].where(trades.index % 3 != 0, None)
    store.save_raw_trades(trades, *KEY)
    a, b = trades["ts"][10], trades["ts"][20]
    out = store.load_raw_trades(*KEY, start=a, end=b)
    assert out["id"].tolist() == list(range(11, 22))
    assert out["side"].isna().tolist() == [i % 3 == 0 for i in range(10, 21)]
    assert store.load_raw_trades("binance", "ETH/USDT").empty
    with pytest.raises(DataError, match="time zone"):
        store.load_raw_trades(*KEY, start="2024-03-01 00:00")


def _naive(df):
    df["ts"] = df["ts"].dt.tz_localize(None)


def _bad_price(df):
    df.loc[3, "price"] = 0.0


def _nan_amount(df):
    df.loc[3, "amount"] = np.nan


def _bad_side(df):
    df["side"] = df["side"].astype(object)
    df.loc[3, "side"] = "long"


def _conflicting_id(df):
    df.loc[3, "id"] = df.loc[2, "id"]


def _no_id(df):
    del df["id"]


@pytest.mark.parametrize("spoil", [_naive, _bad_price, _nan_amount, _bad_side, _conflicting_id,
                                   _no_id])
def test_bad_trades_are_rejected_and_nothing_is_written(store, trade_factory, spoil):
    stored = trade_factory(100, seed=1)
    store.save_raw_trades(stored, *KEY)
    bad = trade_factory(100, first_id=1_000, seed=2)
    spoil(bad)
    with pytest.raises(DataError, match="trades for binance BTC/USDT"):
        store.save_raw_trades(bad, *KEY)
    pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), stored.astype({"side": "str"}))


def test_exact_duplicate_rows_in_a_batch_are_kept_once(store, trade_factory):
    trades = trade_factory(5)
    assert store.save_raw_trades(pd.concat([trades, trades.iloc[[1]]]), *KEY) == 5
    assert len(store.load_raw_trades(*KEY)) == 5


@pytest.mark.services
@pytest.mark.parametrize("n", [6, 3000], ids=["small-batch", "bulk-batch"])
def test_postgres_creates_a_partition_per_month_on_demand(postgres_url, trade_factory, n):
    from tcp_lab.store import open_store

    trades = trade_factory(n, start="2024-01-20", freq=f"{int(60 * 86400 / n)}s")  # ~2 months
    with open_store(postgres_url) as store:
        store.save_raw_trades(trades, *KEY)
        store.save_raw_trades(trades, *KEY)
        pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), trades.astype({"side": "str"}))
    schema = postgres_url.rsplit("schema=", 1)[1]
    conn = psycopg2.connect(postgres_url.split("?")[0])
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, count(*) OVER () FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'raw_trades' AND n.nspname = %s ORDER BY 1", (schema,))
        names = [r[0] for r in cur.fetchall()]
        cur.execute(f'SELECT count(*) FROM "{schema}".raw_trades_p2024_02')
        in_february = cur.fetchone()[0]
    conn.close()
    assert names == ["raw_trades_p2024_01", "raw_trades_p2024_02", "raw_trades_p2024_03"]
    assert in_february == (trades["ts"].dt.month == 2).sum()


def test_trade_prices_are_the_stored_trades_as_arrays_with_an_exclusive_start(store,
                                                                              trade_factory):
    trades = trade_factory(500)
    store.save_raw_trades(trades, "binance", "BTC/USDT")
    full = store.load_raw_trades("binance", "BTC/USDT")
    start, end = full["ts"].iloc[100], full["ts"].iloc[400]
    ts, price, amount = store.load_trade_prices("binance", "BTC/USDT", start, end)
    want = full[(full["ts"] > start) & (full["ts"] <= end)]
    assert ts.dtype == np.int64 and price.dtype == amount.dtype == np.float64
    np.testing.assert_array_equal(ts, pd.DatetimeIndex(want["ts"]).as_unit("us").asi8)
    np.testing.assert_array_equal(price, want["price"].to_numpy())
    np.testing.assert_array_equal(amount, want["amount"].to_numpy())
    empty = store.load_trade_prices("binance", "ETH/USDT")
    assert all(len(a) == 0 for a in empty)
