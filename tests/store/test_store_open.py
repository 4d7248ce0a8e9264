"""open_store: URL forms, the scheme registry, sharing, threads and server faults."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from tcp_lab.errors import ConfigError, DatabaseLockedError, ServiceError
from tcp_lab.store import backend_schemes, open_store

KEY = ("binance", "BTC/USDT", "1m")


@pytest.mark.parametrize("url, match", [
    ("mysql://u@h/db", "unknown scheme 'mysql'"),
    ("postgresq://u@h/db", "did you mean postgresql://"),
    ("postgresql+asyncpg://u@h/db", r"unknown scheme 'postgresql\+asyncpg'"),
    ("data/lab.duckdb", "no scheme"),
])
def test_unknown_or_missing_scheme_is_a_config_error(url, match):
    with pytest.raises(ConfigError, match=match) as e:
        open_store(url)
    assert "duckdb://" in str(e.value)  # says what would work


def test_the_registry_covers_the_settings_schemes():
    from tcp_lab.settings import DATABASE_SCHEMES

    assert set(DATABASE_SCHEMES) <= set(backend_schemes())


@pytest.mark.parametrize("url, match", [
    ("duckdb://somehost/x.duckdb", "names a host"),
    ("duckdb:///x.duckdb?threads=4", "unknown option"),
    ("postgresql://u@127.0.0.1:1/db?schema=Bad-Name", "lower-case identifier"),
])
def test_malformed_urls_are_config_errors(url, match):
    with pytest.raises(ConfigError, match=match):
        open_store(url)


def test_default_url_is_the_settings_duckdb_file(tmp_path):
    with open_store() as store:
        assert store.backend == "duckdb"
        assert store.info()["path"] == str(tmp_path / "home" / "tcp_lab.duckdb")


def test_relative_duckdb_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("duckdb:///rel/lab.duckdb", init=False) as store:
        assert store.info()["schema_version"] == 0  # init=False leaves the database alone
    assert (tmp_path / "rel" / "lab.duckdb").is_file()


def test_memory_stores_are_private(candle_factory):
    with open_store("duckdb:///:memory:") as a, open_store("duckdb:///:memory:") as b:
        a.save_candles(candle_factory(3), *KEY)
        assert len(a.load_candles(*KEY)) == 3 and b.load_candles(*KEY).empty


def test_one_duckdb_file_is_shared_within_a_process(duckdb_url, candle_factory):
    collector, notebook = open_store(duckdb_url), open_store(duckdb_url)
    df = candle_factory(400)

    def write(store, part):
        for chunk in range(part * 200, part * 200 + 200, 25):
            store.save_candles(df.iloc[chunk:chunk + 25], *KEY)
            store.load_candles(*KEY)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, [collector, notebook], [0, 1]))
    collector.close()
    pd.testing.assert_frame_equal(notebook.load_candles(*KEY), df)
    notebook.close()
    with open_store(duckdb_url) as again:  # reopened after the last close
        assert len(again.load_candles(*KEY)) == 400


def test_one_store_serves_several_threads(store_url, candle_factory):
    with open_store(store_url) as store:
        def work(i: int) -> pd.DataFrame:
            df = candle_factory(90 + 10 * i, seed=i)
            for chunk in range(0, len(df), 30):
                store.save_candles(df.iloc[chunk:chunk + 30], "binance", f"S{i}/USDT", "1m")
                store.latest_candle_ts("binance", f"S{i}/USDT", "1m")
            store.record_performance(f"bot{i}", df.index[-1], cash=1.0, position=0.0, equity=1.0)
            return df

        with ThreadPoolExecutor(4) as pool:
            frames = list(pool.map(work, range(4)))
        for i, df in enumerate(frames):
            pd.testing.assert_frame_equal(store.load_candles("binance", f"S{i}/USDT", "1m"), df)
        assert store.info()["tables"]["bot_performance"] == 4


def test_a_duckdb_file_held_by_another_process_gives_a_clear_error(tmp_path):
    path = tmp_path / "held.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:
        try:
            assert holder.stdout.readline().strip() == "ready"
            with pytest.raises(ServiceError) as e:
                open_store(f"duckdb:///{path}")
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    msg = str(e.value)
    assert f"{path} is locked by another process (PID {holder.pid})" in msg
    assert isinstance(e.value, DatabaseLockedError) and "`tcp-lab services up`" in msg
    assert "\n" not in msg
    with open_store(f"duckdb:///{path}") as store:  # free again once the holder is gone
        assert store.info()["schema_version"] >= 1


def test_a_closed_store_says_so(store_url):
    store = open_store(store_url)
    store.close()
    store.close()  # idempotent
    with pytest.raises(ServiceError, match="closed"):
        store.load_candles(*KEY)


def test_a_database_from_a_newer_tcp_lab_is_refused(store_url):
    with open_store(store_url) as store:
        store._backend.run(lambda tx: tx.execute(
            "INSERT INTO schema_version VALUES (999, 'from the future', current_timestamp)"),
            write=True)
    with pytest.raises(ConfigError, match="schema version 999 is newer"):
        open_store(store_url)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres_is_a_one_line_service_error(caplog):
    port = closed_port()
    with caplog.at_level(logging.WARNING, logger="tcp_lab.store"):
        with pytest.raises(ServiceError) as e:
            open_store(f"postgresql://bob:s3cret@127.0.0.1:{port}/lab")
    msg = str(e.value)
    assert msg.startswith(f"PostgreSQL at postgresql://bob:***@127.0.0.1:{port}/lab: "
                          "cannot connect")
    assert "start the server" in msg and "\n" not in msg
    assert "s3cret" not in msg and "s3cret" not in caplog.text
    assert caplog.text.count("retry") >= 1  # each retry is logged


@pytest.mark.services
def test_a_missing_database_fails_at_once(postgres_server, caplog):
    url = postgres_server.rsplit("/", 1)[0] + f"/tcp_lab_no_such_db_{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.WARNING, logger="tcp_lab.store"):
        with pytest.raises(ServiceError, match="does not exist"):
            open_store(url)
    assert "retry" not in caplog.text  # not a fault that waiting fixes


@pytest.mark.services
@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg2"])
def test_postgres_scheme_aliases(postgres_url, scheme):
    with open_store(scheme + postgres_url[len("postgresql"):]) as store:
        assert store.backend == "postgresql"
        assert store.info()["schema"] == postgres_url.rsplit("schema=", 1)[1]


def test_using_an_uninitialised_database_says_to_run_db_init(store_url, candle_factory):
    with open_store(store_url, init=False) as store:
        with pytest.raises(ConfigError, match="tcp-lab db init") as e:
            store.save_candles(candle_factory(3), *KEY)
        assert "\n" not in str(e.value)
        with pytest.raises(ConfigError, match="tcp-lab db init"):
            store.load_candles(*KEY)
        assert store.init_schema() >= 1
        assert store.save_candles(candle_factory(3), *KEY) == 3


def test_info_counts_every_table(store_url):
    """``db info`` lists the tables added by later migrations too (bot owners and
    corrections, confirmed-quiet slots, series sources), with their rows."""
    from tcp_lab.store import schema as S

    with open_store(store_url) as store:
        store.init_schema()
        tables = store.info()["tables"]
    assert set(tables) == {t.name for t in S.INFO_TABLES}
    assert {"quiet_slots", "series_sources", "bot_owners", "bot_corrections"} <= set(tables)
    assert all(rows == 0 for rows in tables.values())
