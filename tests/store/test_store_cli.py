"""``tcp-lab db init`` and ``tcp-lab db info``."""

from __future__ import annotations

import json
import socket

import pytest

from tcp_lab.cli import main
from tcp_lab.store import open_store
from tcp_lab.store.schema import SCHEMA_VERSION


def test_db_init_then_info_shows_tables_and_counts(store_url, capsys, candle_factory):
    assert main(["db", "info", "--url", store_url]) == 0
    assert "schema version  0 of" in capsys.readouterr().out
    assert main(["db", "init", "--url", store_url]) == 0
    assert f"to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["db", "init", "--url", store_url]) == 0
    assert "up to date" in capsys.readouterr().out
    with open_store(store_url) as store:
        store.save_candles(candle_factory(1234), "binance", "BTC/USDT", "1m")
    assert main(["db", "info", "--url", store_url]) == 0
    out = capsys.readouterr().out
    assert f"url             {store_url}" in out
    assert "market_data" in out and "1,234 rows" in out and "bot_performance" in out
    assert main(["db", "info", "--json", "--url", store_url]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tables"]["market_data"] == 1234 and info["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(("auth", "query", "shown"), [
    ("bob:hunter2@", "", "bob:***@127.0.0.1:{port}/lab"),
    ("bob@", "?password=hunter2", "bob@127.0.0.1:{port}/lab?password=***"),
    ("", "?sslmode=disable&sslpassword=hunter2",
     "127.0.0.1:{port}/lab?sslmode=disable&sslpassword=***"),
])
def test_db_info_uses_the_settings_and_hides_passwords(monkeypatch, capsys, auth, query, shown):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", f"postgresql://{auth}127.0.0.1:{port}/lab{query}")
    assert main(["db", "info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tcp-lab: error: PostgreSQL at postgresql://{shown.format(port=port)}")
    assert err.count("\n") == 1 and "hunter2" not in err


@pytest.mark.services
def test_db_info_hides_a_password_given_as_a_query_parameter(postgres_url, capsys):
    url = f"{postgres_url}&password=hunter2"  # the test server trusts local connections
    assert main(["db", "info", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "password=***" in out


def test_a_url_error_hides_a_password_given_as_a_query_parameter(capsys):
    url = "postgresql://127.0.0.1:1/lab?password=hunter2&schema=Not-A-Name"
    assert main(["db", "info", "--url", url]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "password=***" in err and "schema" in err
