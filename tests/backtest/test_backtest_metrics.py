"""Metrics against their written definitions: hand-computed cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.backtest import metrics as m

equities = st.lists(st.floats(1.0, 1e6), min_size=2, max_size=80).map(np.array)
pnls = st.lists(st.floats(-1e4, 1e4).filter(lambda v: abs(v) > 1e-6), min_size=1, max_size=40)


def test_hand_computed_curve():
    # start 100, then 110, 99, 121 over 3 daily bars
    e = np.array([100.0, 110.0, 99.0, 121.0])
    r = np.array([0.1, -0.1, 121 / 99 - 1])
    np.testing.assert_allclose(m.bar_returns(e), r)
    assert m.total_return(e) == pytest.approx(0.21)
    assert m.max_drawdown(e) == pytest.approx(0.1)  # 110 -> 99 is 10 % of the peak
    years = 3 / 365
    assert m.cagr(e, years) == pytest.approx(1.21 ** (365 / 3) - 1)
    sd = math.sqrt(sum((x - r.mean()) ** 2 for x in r) / 2)  # sample std, ddof=1
    assert m.sharpe(r, 365) == pytest.approx(r.mean() / sd * math.sqrt(365))
    dd = math.sqrt(0.1**2 / 3)  # only -0.1 falls short of 0, averaged over all 3 bars
    assert m.sortino(r, 365) == pytest.approx(r.mean() / dd * math.sqrt(365))
    assert m.calmar(m.cagr(e, years), 0.1) == pytest.approx(m.cagr(e, years) / 0.1)


def test_known_two_trade_sequence():
    pnl, ret = np.array([30.0, -10.0]), np.array([0.03, -0.01])
    assert m.win_rate(pnl) == 0.5
    assert m.profit_factor(pnl) == 3.0
    out = m.compute_metrics(np.array([1000.0, 1030.0, 1020.0]), pnl, ret,
                            np.array([True, True]), 365.0, 2 / 365)
    assert out["n_trades"] == 2 and out["win_rate"] == 0.5 and out["profit_factor"] == 3.0
    assert out["avg_trade_return"] == pytest.approx(0.01)
    assert out["exposure"] == 1.0
    assert set(out) == set(m.METRIC_NAMES)


def test_undefined_cases():
    assert math.isnan(m.win_rate(np.array([])))
    assert math.isnan(m.profit_factor(np.array([])))
    assert m.profit_factor(np.array([5.0])) == math.inf
    assert math.isnan(m.sharpe(np.zeros(10), 365))  # never traded: no volatility
    assert math.isnan(m.sortino(np.zeros(10), 365))
    assert m.sortino(np.array([0.01, 0.0]), 365) == math.inf
    assert math.isnan(m.cagr(np.array([1.0, 2.0]), 0.0))
    assert m.cagr(np.array([1.0, -1.0]), 1.0) == -1.0
    assert math.isnan(m.calmar(0.5, 0.0))
    assert math.isnan(m.exposure(np.array([], dtype=bool)))
    out = m.compute_metrics(np.array([100.0]), np.array([]), np.array([]), np.array([]), 1.0, 0.0)
    assert out["total_return"] == 0.0 and out["n_trades"] == 0 and math.isnan(out["sharpe"])


@settings(max_examples=40, deadline=None)
@given(g=st.floats(-0.01, 0.01).filter(lambda v: abs(v) > 1e-6), n=st.integers(2, 200),
       bpy=st.sampled_from([365.0, 8760.0, 35_040.0]))
def test_constant_growth_curve(g, n, bpy):
    e = 1000.0 * (1 + g) ** np.arange(n + 1)
    years = n / bpy
    assert m.total_return(e) == pytest.approx((1 + g) ** n - 1, rel=1e-9, abs=1e-12)
    assert m.cagr(e, years) == pytest.approx((1 + g) ** bpy - 1, rel=1e-6)
    assert m.max_drawdown(e) == pytest.approx(0.0 if g > 0 else 1 - (1 + g) ** n, abs=1e-12)
    assert math.isnan(m.sharpe(m.bar_returns(e), bpy))  # zero volatility: undefined
    if g > 0:
        assert m.sortino(m.bar_returns(e), bpy) == math.inf


def test_cagr_too_large_for_a_float_is_inf():
    assert m.cagr(np.array([1.0, 2.0]), 1 / 525_600) == math.inf


@settings(max_examples=60, deadline=None)
@given(e=equities, k=st.floats(0.01, 100.0))
def test_scale_invariance_and_bounds(e, k):
    a = m.compute_metrics(e, np.array([1.0]), np.array([0.1]), np.ones(len(e) - 1, bool), 365, 1.0)
    b = m.compute_metrics(e * k, np.array([1.0]), np.array([0.1]), np.ones(len(e) - 1, bool),
                          365, 1.0)
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown"):
        assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9, nan_ok=True)
    assert 0.0 <= a["max_drawdown"] < 1.0
    peak = np.maximum.accumulate(e)
    assert a["max_drawdown"] == pytest.approx(float(np.max((peak - e) / peak)), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(pnl=pnls)
def test_trade_statistics_follow_their_definitions(pnl):
    p = np.array(pnl)
    wins, losses = p[p > 0], p[p < 0]
    assert m.win_rate(p) == pytest.approx(len(wins) / len(p))
    pf = m.profit_factor(p)
    if len(losses) == 0:
        assert pf == math.inf
    else:
        assert pf == pytest.approx(wins.sum() / -losses.sum())


@settings(max_examples=40, deadline=None)
@given(r=st.lists(st.floats(-0.05, 0.05), min_size=3, max_size=60).map(np.array),
       bpy=st.floats(1.0, 1e6))
def test_sharpe_scales_with_sqrt_of_bars_per_year(r, bpy):
    s1, s2 = m.sharpe(r, 1.0), m.sharpe(r, bpy)
    if math.isnan(s1):
        assert math.isnan(s2)
    else:
        assert s2 == pytest.approx(s1 * math.sqrt(bpy), rel=1e-9)
