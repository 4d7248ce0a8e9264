"""Stored runs: save, list, load round trip under $TCP_LAB_HOME/backtests."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tcp_lab.backtest import run_backtest
from tcp_lab.backtest.runs import candles_hash, list_runs, load_run, runs_dir, save_run
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.settings import load_settings
from tcp_lab.testing import make_candles


@pytest.fixture(scope="module")
def result():
    return run_backtest("sma_cross", make_candles(2000, seed=5), parameters={"fast": 4, "slow": 12},
                        symbol="BTC/USDT", exchange="binance")


def test_round_trip(result):
    run_id = save_run(result, note="first")
    assert result.run_id == run_id
    path = runs_dir() / run_id
    assert path.parent == load_settings().home / "backtests"
    assert {p.name for p in path.iterdir()} == {"meta.json", "trades.parquet", "equity.parquet"}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["strategy"] == "sma_cross" and meta["parameters"] == {"fast": 4, "slow": 12}
    assert meta["symbol"] == "BTC/USDT" and meta["timeframe"] == "1m" and meta["note"] == "first"
    assert meta["data"]["n_candles"] == 2000
    assert meta["data"]["hash"] == candles_hash(result.candles)
    assert meta["options"]["fees"] == 0.001

    loaded = load_run(run_id)
    assert loaded.run_id == run_id and loaded.label == result.label
    pd.testing.assert_frame_equal(loaded.trades, result.trades)
    pd.testing.assert_series_equal(loaded.equity, result.equity)
    pd.testing.assert_series_equal(loaded.position, result.position)
    assert loaded.metrics.keys() == result.metrics.keys()
    for k, v in result.metrics.items():
        if k.endswith("_duration"):  # Timedelta (NaT without a closed trade), kept exactly
            assert loaded.metrics[k] == v or (v is pd.NaT and loaded.metrics[k] is pd.NaT), k
        else:
            assert loaded.metrics[k] == pytest.approx(v, nan_ok=True), k
    loaded.plot_equity()  # figures of a stored run work without candles
    with pytest.raises(DataError, match="not stored with a run"):
        loaded.plot()


def test_list_and_compare(result):
    other = run_backtest("sma_cross", result.candles, parameters={"fast": 6, "slow": 12})
    first, second = save_run(result, run_id="a-run"), other.save(run_id="b-run")
    runs = list_runs()
    assert list(runs["run_id"]) == [first, second]
    assert {"strategy", "parameters", "start", "end", "data_hash", "sharpe", "fees"} <= set(runs)
    assert runs["data_hash"].nunique() == 1  # same candles
    assert json.loads(runs["parameters"].iat[1]) == {"fast": 6, "slow": 12}
    assert runs["total_return"].iat[0] == pytest.approx(result.metrics["total_return"])


def test_nan_and_inf_metrics_survive(result, tmp_path):
    result.metrics["profit_factor"], result.metrics["sortino"] = math.inf, math.nan
    try:
        run_id = save_run(result, home=tmp_path)
    finally:
        result.metrics.update(profit_factor=1.0, sortino=1.0)
    loaded = load_run(run_id, home=tmp_path)
    assert loaded.metrics["profit_factor"] == math.inf and math.isnan(loaded.metrics["sortino"])
    assert list_runs(tmp_path)["profit_factor"].iat[0] == math.inf


def test_errors(result):
    assert list_runs().empty
    save_run(result, run_id="20240101-x")
    with pytest.raises(ConfigError, match="exists already"):
        save_run(result, run_id="20240101-x")
    assert load_run("20240101").run_id == "20240101-x"  # unique prefix
    with pytest.raises(DataError, match="did you mean '20240101-x'"):
        load_run("20240101-y")
    save_run(result, run_id="20240101-z")
    with pytest.raises(DataError, match="ambiguous"):
        load_run("20240101")


def test_candles_hash_depends_on_data_only():
    c = make_candles(100)
    assert candles_hash(c) == candles_hash(c.copy().assign(extra=1))
    changed = c.copy()
    changed.iloc[5, changed.columns.get_loc("close")] *= 1.0001
    assert candles_hash(changed) != candles_hash(c)
