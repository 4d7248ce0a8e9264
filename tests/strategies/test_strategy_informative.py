"""Informative series: align(), the columns every runner adds, and the guard over them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcp_lab
from tcp_lab.backtest import run_backtest, sweep, walk_forward
from tcp_lab.errors import DataError, StrategyError
from tcp_lab.strategies import check_lookahead, get_strategy
from tcp_lab.testing import make_candles

T0 = pd.Timestamp("2024-01-01", tz="UTC")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=30, unique=True),
       st.lists(st.integers(0, 500), min_size=1, max_size=60, unique=True))
def test_align_shows_the_newest_row_closed_at_or_before_each_time(higher_min, lower_min):
    higher = pd.DataFrame({"v": np.arange(len(higher_min), dtype=float)},
                          index=T0 + pd.to_timedelta(sorted(higher_min), unit="min"))
    lower_idx = pd.DatetimeIndex(T0 + pd.to_timedelta(sorted(lower_min), unit="min"))
    got = tcp_lab.align(higher, lower_idx)["v"]
    for t, value in got.items():  # plain reference: scan for the last stamp <= t
        seen = [v for ts, v in higher["v"].items() if ts <= t]
        assert (value == seen[-1]) if seen else np.isnan(value)


def test_align_refuses_naive_or_unsorted_frames():
    c = make_candles(10)
    with pytest.raises(DataError, match="tz-aware"):
        tcp_lab.align(c.tz_localize(None), c)
    with pytest.raises(DataError, match="not increasing"):
        tcp_lab.align(c.iloc[::-1], c)


@pytest.fixture
def market():
    btc = make_candles(3000, "5m", start="2024-01-01", seed=11)
    eth = make_candles(3000, "5m", start="2024-01-01", seed=12, start_price=2000.0)
    eth = eth.drop(eth.index[100:140])  # a quiet stretch: ETH's hours keep their last close
    return btc, eth


def test_backtest_supplies_the_series_as_declared(market, fixtures_on_path):
    from informative_strategies import hour_trend_reference

    btc, eth = market
    result = run_backtest("informative_strategies:HourTrend", btc, informative={"ETH/USDT": eth},
                          symbol="BTC/USDT")
    want = hour_trend_reference(btc, eth)
    assert want.sum() > 5
    np.testing.assert_array_equal(result.signals["entries"].to_numpy(), want)
    with pytest.raises(DataError, match=r"reads ETH/USDT 1h candles .*none were given"):
        run_backtest("informative_strategies:HourTrend", btc)


def test_sweep_and_walk_forward_match_run_backtest(market, fixtures_on_path):
    btc, eth = market
    grid = {"fast": [2, 3], "slow": [8, 12]}
    df = sweep("informative_strategies:HourTrend", btc, grid, informative={"ETH/USDT": eth},
               progress=False, deflate=1)
    for _, row in df.iterrows():
        r = run_backtest("informative_strategies:HourTrend", btc,
                         parameters={"fast": int(row["fast"]), "slow": int(row["slow"])},
                         informative={"ETH/USDT": eth})
        assert row["total_return"] == pytest.approx(r.metrics["total_return"], rel=1e-9,
                                                    abs=1e-12)
        assert row["n_trades"] == r.metrics["n_trades"]
    wf = walk_forward("informative_strategies:HourTrend", btc, grid, train=800, test=400,
                      informative={"ETH/USDT": eth}, progress=False, min_trades=0)
    assert len(wf.folds) >= 4


def test_the_guard_passes_a_causal_strategy_and_catches_a_peek(market, fixtures_on_path):
    btc, eth = market
    ok = check_lookahead(get_strategy("informative_strategies:HourTrend"), btc.iloc[:1200],
                         informative={"ETH/USDT": eth}, points=60)
    assert ok, ok.message
    bad = check_lookahead(get_strategy("informative_strategies:NextHour"), btc.iloc[:1200],
                          points=60)
    assert not bad.lookahead_ok


def test_reading_an_undeclared_series_is_one_line(fixtures_on_path):
    strategy = get_strategy("sma_cross")
    with pytest.raises(StrategyError, match=r"no informative 4h series .*declare informative"):
        strategy.informative_frame(make_candles(10), "4h")
