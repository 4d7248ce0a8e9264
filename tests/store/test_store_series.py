"""Series facts contract, on every backend: confirmed-quiet slots and recorded sources
(schema migration 5)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from tcp_lab.errors import DataError
from tcp_lab.store import open_store
from tcp_lab.store import schema as S
from tcp_lab.timeframes import TS_DTYPE

KEY = ("binance", "BTC/USDT", "1m")


def minutes(n: int, start: str = "2024-03-01 00:01", step: int = 1) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq=f"{step}min")


@pytest.mark.parametrize("n", [3, 500], ids=["small-batch", "bulk-batch"])
def test_quiet_slots_round_trip_once_each(store, n):
    slots = minutes(n, step=2)
    assert store.save_quiet_slots(slots[::-1], *KEY) == n  # any order
    assert store.save_quiet_slots(slots.append(slots[:2]), *KEY) == n  # again, repeated
    got = store.load_quiet_slots(*KEY)
    assert got.dtype == TS_DTYPE and got.name == "ts" and list(got) == list(slots)
    assert list(store.load_quiet_slots(*KEY, start=slots[1], end=slots[2])) == list(slots[1:3])
    assert store.load_quiet_slots("binance", "ETH/USDT", "1m").empty  # per series
    assert store.load_quiet_slots("binance", "BTC/USDT", "5m").empty


def test_quiet_slots_in_another_zone_are_stored_in_utc(store):
    slots = minutes(3).tz_convert("Europe/Berlin")
    store.save_quiet_slots(slots, *KEY)
    assert list(store.load_quiet_slots(*KEY)) == list(minutes(3))


@pytest.mark.parametrize("slots, message", [
    (pd.DatetimeIndex(["2024-03-01 00:01"]), "timestamps have no time zone"),
    (pd.DatetimeIndex(["2024-03-01 00:01:30"], tz="UTC"),
     "2024-03-01 00:01:30+00:00 is not on the 1m close grid (1 slot(s) off it)"),
    (["not a time"], "expected close times"),
])
def test_bad_quiet_slots_name_the_value_and_write_nothing(store, slots, message):
    with pytest.raises(DataError, match="quiet slots of binance BTC/USDT 1m") as e:
        store.save_quiet_slots(slots, *KEY)
    assert message in str(e.value)
    assert store.load_quiet_slots(*KEY).empty


def test_a_series_source_is_redacted_and_the_last_one_wins(store):
    assert store.load_series_sources().empty
    stored = store.save_series_source(*KEY, "http://bob:s3cret@127.0.0.1:8765/")
    assert stored == "http://bob:***@127.0.0.1:8765" and "s3cret" not in stored
    store.save_series_source("binance", "BTC/USDT", "5m", "https://api.binance.com")
    store.save_series_source(*KEY, "http://127.0.0.1:9999")
    store.save_series_source("kraken", "BTC/USD", "1h", "https://api.kraken.com")
    got = store.load_series_sources()
    assert list(got.columns) == ["exchange", "symbol", "timeframe", "source", "recorded_at"]
    assert got[["exchange", "symbol", "timeframe", "source"]].values.tolist() == [
        ["binance", "BTC/USDT", "1m", "http://127.0.0.1:9999"],
        ["binance", "BTC/USDT", "5m", "https://api.binance.com"],
        ["kraken", "BTC/USD", "1h", "https://api.kraken.com"]]
    assert got["recorded_at"].dtype == TS_DTYPE
    assert store.load_series_sources("kraken")["source"].tolist() == ["https://api.kraken.com"]
    with pytest.raises(DataError, match="source must be a non-empty string"):
        store.save_series_source(*KEY, "")


def test_migration_5_adds_the_tables_to_a_version_4_database(store_url, candle_factory):
    with open_store(store_url, init=False) as store:
        backend = store._backend

        def at_version_4(tx) -> None:
            tx.execute(sa.schema.CreateTable(S.schema_version, if_not_exists=True))
            for m in S.MIGRATIONS[:4]:
                for stmt in m.statements(backend.dialect):
                    tx.execute(stmt)
                tx.execute(sa.insert(S.schema_version).values(
                    version=m.version, description=m.description,
                    applied_at=pd.Timestamp.now("UTC").to_pydatetime()))

        backend.run(at_version_4, write=True, exclusive=True)
        store.save_candles(candle_factory(10), *KEY)
        assert store.info()["schema_version"] == 4
        assert store.init_schema() == S.SCHEMA_VERSION >= 5
        assert len(store.load_candles(*KEY)) == 10  # kept
        store.save_quiet_slots(minutes(2, "2024-03-01 01:00"), *KEY)
        store.save_series_source(*KEY, "http://127.0.0.1:8765")
        assert len(store.load_quiet_slots(*KEY)) == 2
        assert len(store.load_series_sources()) == 1
