"""``tcp-lab backtest``."""

from __future__ import annotations

import json

import pytest

from tcp_lab.backtest.runs import list_runs
from tcp_lab.cli import main
from tcp_lab.testing import make_candles


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("candles")
    c = make_candles(1500, "5m", seed=4)
    c.to_parquet(d / "c.parquet")
    c.reset_index().to_csv(d / "c.csv", index=False)
    return d


def test_prints_metrics(files, capsys):
    assert main(["backtest", "--strategy", "sma_cross", "--candles", str(files / "c.parquet")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sma_cross(fast=10, slow=30) on 5m")
    assert "max_drawdown" in out and "%" in out


def test_json_html_save_and_csv(files, tmp_path, capsys):
    argv = ["backtest", "--strategy", "config/strategies/macd.json", "--candles",
            str(files / "c.csv"), "--parameters", '{"signal": 5}', "--json", "--fees", "0",
            "--direction", "longshort", "--price", "next_open", "--html",
            str(tmp_path / "r.html"), "--save"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)  # stdout is one JSON document
    assert payload["strategy"].startswith("macd(fast=12, slow=26, signal=5)")
    assert payload["metrics"]["fees_paid"] == 0 and isinstance(payload["metrics"]["n_trades"], int)
    assert payload["report"] == str(tmp_path / "r.html") and (tmp_path / "r.html").is_file()
    assert payload["run"]
    assert list_runs()["direction"].tolist() == ["longshort"]


def test_errors_are_one_line(files, capsys):
    assert main(["backtest", "--strategy", "sma_cross"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcp-lab: error: backtest:") and err.count("\n") == 1
    assert main(["backtest", "--strategy", "sma_cross", "--candles", "nope.parquet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["backtest", "--strategy", "sma_cross", "--candles", str(files / "c.parquet"),
                 "--timeframe", "1h"]) == 2
    assert "not on the 1h close grid" in capsys.readouterr().err


def test_candles_from_the_store(capsys):
    store_mod = pytest.importorskip("tcp_lab.store")
    with store_mod.open_store() as store:
        store.save_candles(make_candles(600, "1m", seed=2), "binance", "BTC/USDT", "1m")
    argv = ["backtest", "--strategy", "sma_cross", "--exchange", "binance", "--symbol",
            "BTC/USDT", "--timeframe", "1m", "--start", "2024-01-01T02:00Z", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["strategy"] == "sma_cross(fast=10, slow=30) on binance BTC/USDT 1m"
    assert main([*argv[:-3], "--symbol", "ETH/USDT"]) == 2
    assert "no candles for binance ETH/USDT 1m in the store" in capsys.readouterr().err


def test_times_are_utc_dates_or_times_and_bad_ones_name_the_option(capsys):
    store_mod = pytest.importorskip("tcp_lab.store")
    with store_mod.open_store() as store:
        store.save_candles(make_candles(600, "1m", seed=2), "binance", "BTC/USDT", "1m")
    base = ["backtest", "--strategy", "sma_cross", "--exchange", "binance", "--symbol",
            "BTC/USDT", "--timeframe", "1m", "--json"]
    assert main([*base, "--start", "2024-01-01", "--end", "2024-01-01 05:00"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]
    assert main([*base, "--start", "2030-01-01"]) == 2  # a bare date is UTC: no zone error
    assert "no candles for binance BTC/USDT 1m in the store between 2030-01-01" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*base, "--start", "2024-13-01"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --start: '2024-13-01' is not a time" in err and "UTC" in err


def test_fewer_candles_than_the_warm_up_says_so(files, tmp_path, capsys):
    short = tmp_path / "short.parquet"
    make_candles(20, "5m", seed=1).to_parquet(short)
    assert main(["backtest", "--strategy", "sma_cross", "--candles", str(short)]) == 0
    err = capsys.readouterr().err
    assert "20 candles, but sma_cross(fast=10, slow=30)" in err and "warm-up" in err
