"""Walk-forward on a Dask cluster: each train sweep runs there, the result is the same."""

from __future__ import annotations

import pandas as pd
import pytest

from tcp_lab.backtest.walk_forward_analysis import walk_forward
from tcp_lab.distributed import close_client
from tcp_lab.testing import make_candles

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    lc = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0")
    yield lc
    lc.close()


@pytest.mark.slow
def test_walk_forward_uses_the_sweep_executor(cluster, monkeypatch):
    candles = make_candles(6000, seed=5)
    grid = {"fast": [5, 10, 20], "slow": [30, 60]}
    kwargs = dict(train=2000, test=1000, min_trades=1, progress=False)
    here = walk_forward("sma_cross", candles, grid, **kwargs)
    assert here.settings["scheduler"] is None
    monkeypatch.setenv("TCP_LAB_SCHEDULER", cluster.scheduler_address)
    try:
        there = walk_forward("sma_cross", candles, grid, **kwargs)
    finally:
        close_client()
    assert there.settings["scheduler"] == cluster.scheduler_address
    pd.testing.assert_frame_equal(here.folds, there.folds, check_exact=True)
    pd.testing.assert_series_equal(here.equity, there.equity, check_exact=True)
    pd.testing.assert_frame_equal(here.trades, there.trades, check_exact=True)
