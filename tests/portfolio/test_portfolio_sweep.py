"""Universe sweeps: each row is run_portfolio with its parameters; ranked as sweep ranks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tcp_lab import ConfigError, run_portfolio, sweep_portfolio
from tcp_lab.portfolio import PORTFOLIO_METRIC_NAMES
from tcp_lab.testing import make_candles

OPTIONS = {"sizing": "equal", "max_positions": 2, "fees": 0.001}
#: slow=295 on 300 candles never crosses: no round trip, NaN Sharpe ratio.
GRID = {"fast": [3, 5, 10], "slow": [20, 60, 295]}


@pytest.fixture(scope="module")
def universe():
    return {"A/USDT": make_candles(300, seed=1),
            "B/USDT": make_candles(300, seed=2, start_price=2000.0),
            "C/USDT": make_candles(250, seed=3, start="2024-01-01 00:50", start_price=50.0)}


@pytest.fixture(scope="module")
def swept(universe):
    return sweep_portfolio("sma_cross", universe, GRID, progress=False, **OPTIONS)


def _same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) \
        or a == b


def test_each_row_is_run_portfolio_with_its_parameters(universe):
    grid = {"fast": [5, 10], "slow": [20, 60], "stop_loss": [None, 0.005]}
    df = sweep_portfolio("sma_cross", universe, grid, progress=False, **OPTIONS)
    assert len(df) == 8
    assert list(df.columns) == ["fast", "slow", "stop_loss", *PORTFOLIO_METRIC_NAMES]
    for combo, row in df.iterrows():
        stop = None if pd.isna(row["stop_loss"]) else float(row["stop_loss"])
        pf = run_portfolio("sma_cross", universe,
                           parameters={"fast": int(row["fast"]), "slow": int(row["slow"])},
                           stop_loss=stop, **OPTIONS)
        for k in PORTFOLIO_METRIC_NAMES:
            assert _same(float(row[k]), float(pf.metrics[k])), (combo, k)
    assert df.attrs["scheduler"] is None and df.attrs["symbols"] == sorted(universe)
    assert df.attrs["options"] == OPTIONS and df.attrs["n_combos"] == 8


def test_index_is_the_position_in_the_grid(swept):
    assert sorted(swept.index) == list(range(9))
    for combo, row in swept.iterrows():
        assert (row["fast"], row["slow"]) == (GRID["fast"][combo // 3], GRID["slow"][combo % 3])


def test_ranked_best_first_non_finite_last_in_grid_order(swept):
    sharpe = swept["sharpe"].to_numpy()
    ok = np.isfinite(sharpe)
    assert 0 < ok.sum() < len(swept)
    k = int(ok.sum())
    assert ok[:k].all() and not ok[k:].any()
    assert (np.diff(sharpe[:k]) <= 0).all()
    assert list(swept.index[k:]) == sorted(swept.index[k:])
    assert (swept["slow"].iloc[k:] == 295).all()


def test_min_trades_puts_too_few_round_trips_last(universe, swept):
    least = int(swept.loc[swept["n_trades"] > 0, "n_trades"].median())
    df = sweep_portfolio("sma_cross", universe, GRID, min_trades=least, progress=False,
                         **OPTIONS)
    good = np.isfinite(df["sharpe"].to_numpy()) & (df["n_trades"].to_numpy() >= least)
    k = int(good.sum())
    assert 0 < k < int(np.isfinite(swept["sharpe"]).sum())
    assert good[:k].all() and not good[k:].any()
    assert (np.diff(df["sharpe"].to_numpy()[:k]) <= 0).all()
    assert list(df.index[k:]) == sorted(df.index[k:])
    pd.testing.assert_frame_equal(df.sort_index(), swept.sort_index())


def test_lower_is_better_metric_sorts_ascending(universe):
    df = sweep_portfolio("sma_cross", universe, GRID, metric="max_drawdown", progress=False,
                         **OPTIONS)
    dd = df["max_drawdown"].to_numpy()
    assert (np.diff(dd) >= 0).all()
    assert df.attrs["sort_by"] == "max_drawdown"


def test_unknown_metric_suggests(universe):
    with pytest.raises(ConfigError, match=r"unknown metric 'sharp'; did you mean 'sharpe'"):
        sweep_portfolio("sma_cross", universe, GRID, metric="sharp", progress=False)


def test_parameters_belong_in_the_grid(universe):
    with pytest.raises(ConfigError, match="parameters= is not an option"):
        sweep_portfolio("sma_cross", universe, GRID, parameters={"fast": 5}, progress=False)


def test_a_bad_option_fails_with_run_portfolios_message(universe):
    with pytest.raises(ConfigError, match="unknown sizing='equl'"):
        sweep_portfolio("sma_cross", universe, GRID, sizing="equl", progress=False)


@pytest.mark.slow
def test_on_a_dask_cluster_the_frame_is_the_same(universe, swept, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from tcp_lab.distributed import close_client

    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0")
    try:
        monkeypatch.setenv("TCP_LAB_SCHEDULER", cluster.scheduler_address)
        try:
            there = sweep_portfolio("sma_cross", universe, GRID, progress=False, **OPTIONS)
        finally:
            close_client()
    finally:
        cluster.close()
    assert there.attrs["scheduler"] == cluster.scheduler_address
    pd.testing.assert_frame_equal(there, swept, check_exact=True)
