"""The import's write path: trades as arrays into ``Store.save_raw_trades``, on every backend.

The importer hands the store a mapping of arrays (``ts`` int64 epoch µs) instead of
a frame; the store checks it in a few passes when the ids are strictly increasing
and falls back to the frame checks otherwise. On DuckDB a probe for stored rows of
the series in the batch's id range picks a plain INSERT or the anti-join.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_import import agg_lines, expected, make_trades, write

from tcp_lab.data.importer import import_files
from tcp_lab.errors import DataError
from tcp_lab.store import open_store

KEY = ("binance", "BTC/USDT")


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def _arrays(frame: pd.DataFrame) -> dict:
    return {"ts": pd.DatetimeIndex(frame["ts"]).as_unit("us").asi8,
            "id": frame["id"].to_numpy(), "price": frame["price"].to_numpy(),
            "amount": frame["amount"].to_numpy(),
            "side": pd.Categorical(frame["side"], categories=("buy", "sell"))}


def _frame(n: int, first_id: int = 1, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": pd.date_range("2024-03-01", periods=n, freq="1s", tz="UTC").as_unit("us"),
        "id": np.arange(first_id, first_id + n, dtype="int64"),
        "price": 100 + rng.random(n), "amount": rng.random(n),
        "side": pd.array(rng.choice(["buy", "sell"], n), dtype="str"),
    })


@pytest.mark.parametrize("n", [10, 500], ids=["small-batch", "bulk-batch"])
def test_arrays_store_what_the_frame_stores_and_once(store, n):
    trades = _frame(n)
    assert store.save_raw_trades(_arrays(trades.iloc[: n // 2]), *KEY) == n // 2
    assert store.save_raw_trades(_arrays(trades), *KEY) == n
    assert store.save_raw_trades(trades, *KEY) == n
    pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), trades)
    assert store.info()["tables"]["raw_trades"] == n


def test_arrays_without_side_or_with_text_sides(store):
    trades = _frame(80)
    plain = {k: v for k, v in _arrays(trades).items() if k != "side"}
    store.save_raw_trades(plain, *KEY)
    assert store.load_raw_trades(*KEY)["side"].isna().all()
    sides = trades["side"].to_numpy(dtype=object)
    sides[::7] = None
    store.save_raw_trades({**plain, "side": sides}, "binance", "ETH/USDT")
    got = store.load_raw_trades("binance", "ETH/USDT")["side"]
    assert got.isna().tolist() == [i % 7 == 0 for i in range(80)]
    assert (got.dropna() == trades["side"][got.notna()]).all()


def test_arrays_out_of_order_or_repeated_take_the_frame_path(store):
    trades = _frame(300)
    shuffled = trades.sample(frac=1, random_state=1)
    repeated = pd.concat([trades, trades.iloc[[5, 6]]])
    assert store.save_raw_trades(_arrays(shuffled), *KEY) == 300
    assert store.save_raw_trades(_arrays(repeated), *KEY) == 300  # exact repeats kept once
    pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), trades)
    conflicting = _arrays(trades)
    conflicting["id"] = conflicting["id"].copy()
    conflicting["id"][7] = conflicting["id"][6]
    with pytest.raises(DataError, match="conflicting rows for the same trade"):
        store.save_raw_trades(conflicting, *KEY)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("price", 0.0, "non-positive price"),
    ("price", np.nan, "non-positive price"),
    ("amount", -1.0, "negative amount"),
    ("side", "long", "side other than 'buy'/'sell'"),
])
def test_bad_arrays_name_the_trade_and_write_nothing(store, column, value, message):
    arrays = _arrays(_frame(100, first_id=50))
    if column == "side":
        arrays["side"] = arrays["side"].astype(object)
    arrays[column] = np.asarray(arrays[column]).copy()
    arrays[column][3] = value
    with pytest.raises(DataError, match=f"trades for binance BTC/USDT: .*{message}.*id 53"):
        store.save_raw_trades(arrays, *KEY)
    assert store.info()["tables"]["raw_trades"] == 0


def test_series_with_the_same_ids_do_not_hide_each_other(store, tmp_path):
    """Binance ids are per market: ETHUSDT's may cover BTCUSDT's range (probe per series)."""
    trades = make_trades(400)
    btc = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", agg_lines(trades))
    eth = write(tmp_path / "ETHUSDT-aggTrades-2024-01-01.csv", agg_lines(trades[100:300]))
    for _ in range(2):
        import_files(store, [eth, btc], exchange="binance", progress=False, chunk_rows=64)
    for symbol, want in (("BTC/USDT", trades), ("ETH/USDT", trades[100:300])):
        pd.testing.assert_frame_equal(store.load_raw_trades("binance", symbol), expected(want))
    assert store.info()["tables"]["raw_trades"] == 600


def test_an_overlapping_file_adds_only_its_new_trades(store, tmp_path):
    trades = make_trades(1_000)
    a = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", agg_lines(trades[:600]))
    b = write(tmp_path / "BTCUSDT-aggTrades-2024-01-02.csv", agg_lines(trades[550:]), zipped=True)
    import_files(store, [a], exchange="binance", progress=False, chunk_rows=200)
    summary = import_files(store, [b], exchange="binance", progress=False, chunk_rows=200)
    assert summary.trades == 450
    pd.testing.assert_frame_equal(store.load_raw_trades(*KEY), expected(trades))


def test_arrays_of_different_lengths_or_missing_columns_are_refused(store):
    arrays = _arrays(_frame(5))
    with pytest.raises(DataError, match="arrays ts, id, price and amount differ in length"):
        store.save_raw_trades({**arrays, "price": np.ones(4)}, *KEY)
    with pytest.raises(DataError, match="arrays ts and side differ in length"):
        store.save_raw_trades({**arrays, "side": np.array(["buy"] * 4, dtype=object)}, *KEY)
    with pytest.raises(DataError, match="missing column"):
        store.save_raw_trades({"ts": np.zeros(3, np.int64)}, *KEY)
    assert store.info()["tables"]["raw_trades"] == 0
