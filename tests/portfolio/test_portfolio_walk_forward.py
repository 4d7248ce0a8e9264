"""Out of sample over a portfolio: walk_forward_portfolio and the returns matrix for pbo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tcp_lab
from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.portfolio import (
    PortfolioWalkForwardResult,
    equity_returns,
    portfolio_returns,
    run_portfolio,
    walk_forward_portfolio,
)
from tcp_lab.stats import pbo
from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput
from tcp_lab.testing import make_candles

GRID = {"fast": [5, 10], "slow": [20, 40]}


@pytest.fixture(scope="module")
def candles():
    return make_candles(1200, seed=3)


@pytest.fixture(scope="module")
def universe():
    return {"BTC/USDT": make_candles(900, seed=1), "ETH/USDT": make_candles(900, seed=2)}


# -- one symbol: the same walk-forward as tcp_lab.walk_forward -----------------------------
@pytest.mark.parametrize("opts", [
    {},
    {"price": "next_open"},
    {"step": 300},                                   # gaps: positions closed at window ends
    {"step": 300, "price": "next_open"},
    {"stop_loss": 0.01, "fees": 0.002, "slippage": 0.0005},
    {"direction": "longshort"},                      # a flat stretch closes, never reverses
    {"direction": "longshort", "step": 300, "price": "next_open"},
    {"anchored": True, "min_trades": 25, "price": "next_open"},  # flat folds, then trades
])
def test_one_symbol_equals_walk_forward(candles, opts):
    kw = {"train": 400, "test": 200, "min_trades": 1, "progress": False} | opts
    wf = tcp_lab.walk_forward("sma_cross", candles, GRID, **kw)
    wp = walk_forward_portfolio("sma_cross", {"BTC/USDT": candles}, GRID, **kw)
    assert isinstance(wp, PortfolioWalkForwardResult)
    # the same folds, the same choice per fold, the same in- and out-of-sample figures
    cols = [c for c in wf.folds.columns]
    pd.testing.assert_frame_equal(wp.folds[cols], wf.folds, check_exact=False, rtol=1e-9)
    traded = wp.folds["note"].eq("")  # the choices were compared (flat only if asked)
    assert traded.all() if "min_trades" not in opts else 0 < traded.sum() < len(traded)
    # the stitched account, bar for bar
    pd.testing.assert_index_equal(wp.equity.index, wf.equity.index)
    np.testing.assert_allclose(wp.equity.to_numpy(), wf.equity.to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(wp.position.to_numpy() > 0, wf.position.to_numpy() != 0)
    # the same round trips, labelled with the same folds
    shared = [c for c in wf.trades.columns if c in wp.trades.columns]
    pd.testing.assert_frame_equal(wp.trades[shared].reset_index(drop=True),
                                  wf.trades[shared].reset_index(drop=True),
                                  check_exact=False, rtol=1e-12, check_dtype=False)
    for k, v in wf.metrics.items():
        assert wp.metrics[k] == pytest.approx(v, rel=1e-9, nan_ok=True), k
    pd.testing.assert_series_equal(wp.efficiency, wf.efficiency, check_exact=False, rtol=1e-9)


class OwnHour(BaseStrategy):
    """An SMA cross that enters only while the own last closed hour is above its 3-hour mean
    (an informative series: the runner adds it)."""

    name = "own_hour_test"
    parameters = (Parameter("fast", int, 3, min=1), Parameter("slow", int, 8, min=2))
    informative = (("1h", None),)

    @property
    def warmup(self) -> int:
        return 60

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        close = candles["close"]
        fast = close.rolling(self.params["fast"]).mean()
        slow = close.rolling(self.params["slow"]).mean()
        hourly = self.informative_frame(candles, "1h", distinct=True)["close"]
        up = tcp_lab.align((hourly > hourly.rolling(3).mean()).to_frame("up"), candles)["up"]
        above = (fast > slow).to_numpy() & up.fillna(False).to_numpy(dtype=bool)
        return StrategyOutput(entries=pd.Series(above, index=candles.index),
                              exits=pd.Series(~above, index=candles.index))


def test_informative_series_are_added_on_every_window():
    c = make_candles(1500, timeframe="5m", seed=4)
    kw = {"train": 500, "test": 250, "min_trades": 1, "progress": False}
    grid = {"fast": [3, 5], "slow": [8, 12]}
    wf = tcp_lab.walk_forward(OwnHour, c, grid, **kw)
    wp = walk_forward_portfolio(OwnHour, {"BTC/USDT": c}, grid, **kw)
    pd.testing.assert_frame_equal(wp.folds[list(wf.folds.columns)], wf.folds,
                                  check_exact=False, rtol=1e-9)
    np.testing.assert_allclose(wp.equity.to_numpy(), wf.equity.to_numpy(), rtol=1e-12)
    assert wf.metrics["n_trades"] > 0


# -- selection sees the train window only -------------------------------------------------
class Phase(BaseStrategy):
    """Long over phases 1-5 of every 10-hour cycle (``late=False``) or 6-10 (``late=True``);
    the phase is read from the close time, so any slice of candles agrees."""

    name = "phase_test"
    parameters = (Parameter("late", bool, False),)

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        phase = (candles.index.as_unit("us").asi8 // 3_600_000_000) % 10
        enter, leave = (5, 0) if self.params["late"] else (0, 5)
        return StrategyOutput(entries=pd.Series(phase == enter, index=candles.index),
                              exits=pd.Series(phase == leave, index=candles.index))


def _regime_candles(n: int, switch: int, seed: int) -> pd.DataFrame:
    """Hourly candles that rise in phases 1-5 and fall in 6-10 before row ``switch``, and the
    reverse from it on: ``late=True`` pays only after ``switch``."""
    idx = pd.date_range("2024-01-01 01:00", periods=n, freq="1h", tz="UTC", unit="us",
                        name="ts")
    phase = (idx.as_unit("us").asi8 // 3_600_000_000) % 10
    early = np.where((phase >= 1) & (phase <= 5), 0.006, -0.005)
    step = np.where(np.arange(n) < switch, early, -early)
    step = step + np.random.default_rng(seed).normal(0, 0.0005, n)
    close = 100 * np.exp(np.cumsum(step))
    o = np.r_[close[0], close[:-1]]
    return pd.DataFrame({"open": o, "high": np.maximum(o, close) * 1.001,
                         "low": np.minimum(o, close) * 0.999, "close": close,
                         "volume": 1.0, "trade_count": 1}, index=idx)


def test_selection_never_uses_the_test_window():
    switch = 400
    universe = {s: _regime_candles(600, switch, seed)
                for s, seed in (("A/USDT", 1), ("B/USDT", 2))}
    wp = walk_forward_portfolio(Phase, universe, {"late": [False, True]}, train=100, test=100,
                                min_trades=1, sizing="equal", progress=False)
    f = wp.folds
    before = f["train_end"] < universe["A/USDT"].index[switch]
    assert before.sum() == 4 and (~before).sum() == 1
    # every fold trained before the switch keeps the early rule, even the one whose test
    # window is after it (where late=True is what pays)
    assert not f.loc[before, "late"].any()
    key = f.index[before][-1]
    assert f.at[key, "test_start"] == universe["A/USDT"].index[switch]
    assert f.at[key, "oos_sharpe"] < 0 < f.at[key, "is_sharpe"]
    # the fold that trains after the switch sees it
    assert f.loc[~before, "late"].all()
    assert set(wp.trades["symbol"]) == {"A/USDT", "B/USDT"}


# -- several symbols: one account --------------------------------------------------------
def test_several_symbols_are_one_account(universe):
    wp = walk_forward_portfolio("sma_cross", universe, GRID, train=300, test=200, min_trades=1,
                                sizing="equal", progress=False)
    assert wp.symbols == ["BTC/USDT", "ETH/USDT"] and "2 symbols" in wp.label
    assert len(wp.folds) == 3 and len(wp.equity) == 600
    assert wp.position.between(0, 2).all()
    assert list(wp.trades.columns[:4]) == ["fold", "fast", "slow", "symbol"]
    closed = wp.trades[wp.trades["status"] == "closed"]
    assert wp.folds["oos_n_trades"].sum() == wp.metrics["n_trades"] == len(closed)
    # the account is the trades: closed P&L plus the open ones' marks
    assert wp.metrics["final_equity"] == pytest.approx(10_000 + wp.trades["pnl"].sum(), rel=1e-9)
    # each fold's chosen parameters made its entries
    for _, t in wp.trades.iterrows():
        assert (t["fast"], t["slow"]) == tuple(wp.folds.loc[t["fold"], ["fast", "slow"]])


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("grid, kwargs, error, match", [
    ({"fast": [], "slow": [20]}, {}, StrategyError, "no values given for 'fast'"),
    ({"fast": [50], "slow": [20]}, {}, StrategyError, "has no valid combination"),
    (GRID, {"train": 800, "test": 200}, ConfigError,
     r"walk_forward_portfolio: train=800 \+ test=200 candles is more than the 900"),
    (GRID, {"train": "60D", "test": "30D"}, ConfigError,
     "walk_forward_portfolio: train='60D' \\+ test='30D' is longer than the candles"),
    ({"fast": [5], "slow": [20], "stop_loss": [0.01, 0.02]}, {}, ConfigError,
     "the grid sweeps stop_loss"),
    (GRID, {"metric": "sharp"}, ConfigError, "did you mean 'sharpe'"),
    (GRID, {"parameters": {"fast": 5}}, ConfigError, "parameters= is not an option"),
])
def test_errors_are_one_clear_line(universe, grid, kwargs, error, match):
    kw = {"train": 300, "test": 200, "progress": False} | kwargs
    with pytest.raises(error, match=match) as info:
        walk_forward_portfolio("sma_cross", universe, grid, **kw)
    assert "\n" not in str(info.value)


# -- the returns matrix of a portfolio sweep, for pbo ------------------------------------
def test_returns_matrix_is_each_combination_run_and_pbo_takes_it(universe):
    grid = {"fast": [5, 10, 20], "slow": [40, 60]}
    opts = dict(sizing="equal", fees=0.0005)
    R = portfolio_returns("sma_cross", universe, grid, progress=False, **opts)
    table = tcp_lab.sweep_portfolio("sma_cross", universe, grid, progress=False, **opts)
    assert R.shape == (900, 6) and R.columns.name == "combo"
    assert sorted(R.columns) == sorted(table.index)  # the sweep's combination positions
    for combo in R.columns:
        params = R.attrs["combos"][combo]
        assert params == {k: table.at[combo, k] for k in grid}
        pf = run_portfolio("sma_cross", universe, parameters=params, **opts)
        pd.testing.assert_series_equal(R[combo], equity_returns(pf), check_names=False)
        growth = float((1 + R[combo]).prod() - 1)
        assert growth == pytest.approx(table.at[combo, "total_return"], rel=1e-9, abs=1e-12)
    result = pbo(R, n_splits=4)
    assert result.n_trials == 6 and 0.0 <= result.probability <= 1.0


@pytest.mark.slow
def test_on_a_dask_cluster_the_choices_are_the_same(universe, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from tcp_lab.distributed import close_client

    kw = {"train": 300, "test": 200, "min_trades": 1, "sizing": "equal", "progress": False}
    here = walk_forward_portfolio("sma_cross", universe, GRID, **kw)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0")
    try:
        monkeypatch.setenv("TCP_LAB_SCHEDULER", cluster.scheduler_address)
        try:
            there = walk_forward_portfolio("sma_cross", universe, GRID, **kw)
        finally:
            close_client()
    finally:
        cluster.close()
    assert here.settings["scheduler"] is None
    assert there.settings["scheduler"] == cluster.scheduler_address
    pd.testing.assert_frame_equal(there.folds, here.folds, check_exact=True)
    pd.testing.assert_series_equal(there.equity, here.equity, check_exact=True)
