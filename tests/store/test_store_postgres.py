"""PostgreSQL specifics: reconnecting, giving up, atomic batches, the bulk fast paths."""

from __future__ import annotations

import logging
import uuid

import pandas as pd
import psycopg2
import pytest

from tcp_lab.errors import ServiceError
from tcp_lab.store import open_store

pytestmark = pytest.mark.services
KEY = ("binance", "BTC/USDT", "1m")


def test_postgres_reconnects_after_the_server_drops_its_connections(postgres_url,
                                                                    candle_factory, caplog):
    app = f"tcp_lab_test_{uuid.uuid4().hex[:8]}"
    df = candle_factory(120)
    with open_store(f"{postgres_url}&application_name={app}") as store:
        store.save_candles(df.iloc[:60], *KEY)
        admin = psycopg2.connect(postgres_url.split("?")[0])
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s", (app,))
            assert cur.fetchone()[0] >= 1
        admin.close()
        with caplog.at_level(logging.WARNING, logger="tcp_lab.store"):
            store.save_candles(df.iloc[60:], *KEY)
        pd.testing.assert_frame_equal(store.load_candles(*KEY), df)
    assert "retry 1 of" in caplog.text


def test_postgres_gives_up_after_retries_with_a_service_error(postgres_url, monkeypatch,
                                                              caplog):
    with open_store(postgres_url) as store:
        backend = store._backend
        monkeypatch.setattr(backend, "retry_delays", (0.01, 0.02))

        def lost() -> None:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(backend._engine, "raw_connection", lost)
        with caplog.at_level(logging.WARNING, logger="tcp_lab.store"):
            with pytest.raises(ServiceError, match="failed after 3 attempts") as e:
                store.latest_candle_ts(*KEY)
    assert "server closed the connection" in str(e.value) and "\n" not in str(e.value)
    assert caplog.text.count("retry") == 2


def test_a_failure_inside_a_batch_leaves_stored_rows_unchanged(postgres_url, candle_factory,
                                                               monkeypatch):
    from tcp_lab.store import _postgres

    stored = candle_factory(200, seed=1)
    with open_store(postgres_url) as store:
        store.save_candles(stored, *KEY)
        real = _postgres.upsert_from
        calls = []

        def failing(*args, **kwargs):  # the overlap is updated, then the insert fails
            calls.append(kwargs.get("conflict", True))
            if len(calls) == 2:
                raise RuntimeError("disk on fire")
            return real(*args, **kwargs)

        monkeypatch.setattr(_postgres, "upsert_from", failing)
        with pytest.raises(RuntimeError, match="disk on fire"):
            store.save_candles(candle_factory(300, seed=2), *KEY)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(store.load_candles(*KEY), stored)


@pytest.mark.parametrize("vwap", [False, True], ids=["no-vwap", "vwap"])
def test_a_writer_that_raced_us_falls_back_to_upsert(postgres_url, candle_factory,
                                                     monkeypatch, vwap):
    """The direct COPY and the plain INSERT assume no stored rows in the batch's range;
    when another writer stored some meanwhile, the key conflict sends the batch
    through ON CONFLICT instead."""
    from tcp_lab.store import _postgres

    first = candle_factory(100, seed=1, vwap=vwap)
    second = candle_factory(150, seed=2, vwap=vwap)  # overlaps all of `first`
    with open_store(postgres_url) as store:
        store.save_candles(first, *KEY)
        real = _postgres._PgTx.fetch

        def stale(self, stmt):  # the range probe misses the rows the racer stored
            rows = real(self, stmt)
            return [(None, None)] if "min(market_data.ts)" in str(stmt) else rows

        monkeypatch.setattr(_postgres._PgTx, "fetch", stale)
        store.save_candles(second, *KEY)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(store.load_candles(*KEY), second)


def test_fresh_bulk_batches_take_the_direct_copy(postgres_url, candle_factory, monkeypatch):
    from tcp_lab.store import _pgcopy

    direct = []
    real = _pgcopy.encode_direct

    def spy(*args):
        payload = real(*args)
        direct.append(payload is not None)
        return payload

    monkeypatch.setattr(_pgcopy, "encode_direct", spy)
    mixed_vwap = candle_factory(100, start="2024-04-01", vwap=True)
    mixed_vwap.iloc[3, mixed_vwap.columns.get_loc("vwap")] = float("nan")
    with open_store(postgres_url) as store:
        store.save_candles(candle_factory(100), *KEY)  # fresh series: direct
        store.save_candles(candle_factory(100, start="2024-03-01 01:00"), *KEY)  # overlaps
        store.save_candles(candle_factory(100, start="2024-03-02"), *KEY)  # after: direct
        store.save_candles(mixed_vwap, *KEY)  # after, but NULLs make the rows uneven
        assert direct == [True, True, False]
        assert store.load_candles(*KEY, start="2024-04-01T00:00Z")["vwap"].isna().sum() == 1
        assert len(store.load_candles(*KEY)) == 159 + 100 + 100
