"""resolve_candles: the store when it has the series, else synthetic, and it says which."""

from __future__ import annotations

import pandas as pd
import pytest

import tcp_lab.store as store_pkg
from tcp_lab.errors import ConfigError, DataError, ServiceError
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tcp_lab.ui import list_series, resolve_candles, store_candles_many


@pytest.fixture
def url(tmp_path):
    u = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    with open_store(u) as store:
        store.save_candles(make_candles(500), "binance", "BTC/USDT", "1m")
    return u


def test_store_is_used_when_it_has_the_series(url):
    src = resolve_candles("binance", "BTC/USDT", "1m", store=url)
    assert src.origin == "store" and len(src.candles) == 500
    assert src.description.startswith("store ") and "binance BTC/USDT 1m, 500 candles" in str(src)


def test_range_is_passed_to_the_store(url):
    src = resolve_candles("binance", "BTC/USDT", "1m", "2024-01-01T01:00Z",
                          "2024-01-01T02:00Z", store=url)
    assert len(src.candles) == 61
    assert src.candles.index[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")


def test_auto_falls_back_to_synthetic_and_says_why(url):
    src = resolve_candles("binance", "ETH/USDT", "1m", store=url, n_synthetic=200, seed=4)
    assert src.origin == "synthetic" and len(src.candles) == 200
    assert "the store" in src.description and "has no binance ETH/USDT 1m candles" in str(src)
    pd.testing.assert_frame_equal(src.candles, make_candles(200, "1m", seed=4,
                                                            start="2024-01-01T00:00Z"))


def test_store_source_without_the_series_is_an_error(url):
    with pytest.raises(DataError, match="has no binance ETH/USDT 1m candles"):
        resolve_candles("binance", "ETH/USDT", "1m", source="store", store=url)


def test_fresh_machine_gets_synthetic_without_creating_a_database(tmp_path, monkeypatch):
    # the default store is the DuckDB file in TCP_LAB_HOME, which does not exist yet
    src = resolve_candles(n_synthetic=50)
    assert src.origin == "synthetic" and "no database file yet" in src.description
    assert not list((tmp_path / "home").glob("*.duckdb"))
    assert list_series().empty


def test_synthetic_honours_start_and_end():
    src = resolve_candles(timeframe="5m", start="2024-02-01T00:00Z", end="2024-02-01T01:00Z",
                          source="synthetic", n_synthetic=100)
    assert src.candles.index[0] == pd.Timestamp("2024-02-01 00:05", tz="UTC")
    assert src.candles.index[-1] == pd.Timestamp("2024-02-01 01:00", tz="UTC")


def test_bad_arguments():
    with pytest.raises(ConfigError, match="source='stor'"):
        resolve_candles(source="stor")
    with pytest.raises(DataError, match="has no time zone"):
        resolve_candles(start="2024-01-01", source="synthetic")


def test_a_briefly_locked_duckdb_file_is_waited_for(url, monkeypatch):
    real, calls = store_pkg.open_store, []

    def flaky(u, *args, **kwargs):
        calls.append(u)
        if len(calls) < 3:
            raise ServiceError(f"DuckDB file {u} is locked by another process (PID 1)")
        return real(u, *args, **kwargs)

    monkeypatch.setattr(store_pkg, "open_store", flaky)
    src = resolve_candles(store=url)
    assert src.origin == "store" and len(calls) == 3
    calls.clear()
    with pytest.raises(ServiceError, match="locked"):
        resolve_candles(store=url, lock_timeout=0.0)


def test_store_candles_many_reads_a_universe_in_one_call(url, tmp_path):
    with open_store(url) as store:
        store.save_candles(make_candles(300, seed=2), "binance", "ETH/USDT", "1m")
    wide, where = store_candles_many(url, "binance", ["ETH/USDT", "BTC/USDT"], "1m")
    assert where == url
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == ["ETH/USDT", "BTC/USDT"]
    assert wide["BTC/USDT"]["close"].notna().sum() == 500
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(DataError, match="no database file yet"):
        store_candles_many(f"duckdb:///{missing}", "binance", ["BTC/USDT"], "1m")
    assert not missing.exists()
