"""Indicator functions against their textbook definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.strategies import indicators as ind

prices = st.lists(st.floats(1.0, 1e5), min_size=3, max_size=60).map(np.array)


@settings(max_examples=40, deadline=None)
@given(x=prices, window=st.integers(1, 10))
def test_sma_is_the_mean_of_the_last_window_values(x, window):
    got = ind.sma(x, window)
    for t in range(len(x)):
        if t < window - 1:
            assert math.isnan(got[t])
        else:
            assert got[t] == pytest.approx(x[t - window + 1 : t + 1].mean(), rel=1e-9)


def _kahan_rolling_mean(x, window):
    """The rolling mean one window at a time in plain Python: a running sum with Kahan
    compensation, NaN while a NaN is inside the window."""
    out, total, comp, nans = [], 0.0, 0.0, 0
    for i, v in enumerate(x):
        for value, sign in ((v, 1.0), (x[i - window] if i >= window else None, -1.0)):
            if value is None:
                continue
            if math.isnan(value):
                nans += 1 if sign > 0 else -1
                continue
            y = sign * value - comp
            t = total + y
            comp = (t - total) - y
            total = t
        out.append(total / window if i >= window - 1 and nans == 0 else math.nan)
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.one_of(st.floats(1e-8, 1e5), st.just(math.nan)), min_size=1,
                  max_size=80).map(np.array),
       windows=st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_sma_many_is_each_window_bit_for_bit(x, windows):
    """A sweep's table of averages: every row is the reference's, bit for bit (a cross
    compares two floats, so one ulp would invent or hide a signal)."""
    table = ind.sma_many(x, windows)
    assert table.shape == (len(windows), len(x))
    for row, w in zip(table, windows, strict=True):
        np.testing.assert_array_equal(row, _kahan_rolling_mean(list(x), w))
        np.testing.assert_array_equal(row, ind.sma(x, w))


@settings(max_examples=40, deadline=None)
@given(x=prices, span=st.integers(1, 10))
def test_ema_follows_its_recursion(x, span):
    got = ind.ema(x, span, min_periods=1)
    alpha = 2 / (span + 1)
    y = x[0]
    for t in range(len(x)):
        y = x[t] if t == 0 else alpha * x[t] + (1 - alpha) * y
        assert got[t] == pytest.approx(y, rel=1e-9)
    assert np.isnan(ind.ema(x, span)[: span - 1]).all()


def test_rsi_hand_computed_and_limits():
    x = np.array([10.0, 11.0, 10.5, 11.5, 11.0])
    # period 2 (alpha 1/2), changes +1, -0.5, +1, -0.5
    # gain: 1, 0.5, 0.75, 0.375; loss: 0, 0.25, 0.125, 0.3125 (Wilder, started at the first change)
    got = ind.rsi(x, 2)
    assert np.isnan(got[:2]).all()
    assert got[2] == pytest.approx(100 - 100 / (1 + 0.5 / 0.25))
    assert got[3] == pytest.approx(100 - 100 / (1 + 0.75 / 0.125))
    assert got[4] == pytest.approx(100 - 100 / (1 + 0.375 / 0.3125))
    assert (ind.rsi(np.arange(1.0, 30.0), 5)[5:] == 100).all()
    assert (ind.rsi(np.full(30, 7.0), 5)[5:] == 50).all()


def test_macd_and_bollinger_compose_the_basic_indicators():
    x = np.linspace(100, 130, 80) + np.sin(np.arange(80))
    line, sig, hist = ind.macd(x, 3, 8, 4)
    ok = ~np.isnan(line)
    np.testing.assert_allclose(line[ok], (ind.ema(x, 3, min_periods=1) - ind.ema(x, 8))[ok])
    np.testing.assert_allclose(hist, line - sig)
    mid, up, lo = ind.bollinger(x, 10, 2.0)
    t = 50
    assert mid[t] == pytest.approx(x[t - 9 : t + 1].mean())
    assert up[t] - mid[t] == pytest.approx(2.0 * x[t - 9 : t + 1].std(ddof=0))
    assert mid[t] - lo[t] == pytest.approx(up[t] - mid[t])


def test_crosses():
    a = np.array([1.0, 2.0, 3.0, 1.5, np.nan, 3.0, 1.0])
    b = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert ind.crossed_above(a, b).tolist() == [False, False, True, False, False, False, False]
    assert ind.crossed_below(a, b).tolist() == [False, False, False, True, False, False, True]
    assert ind.crossed_above(a, 2.0).tolist() == ind.crossed_above(a, b).tolist()


@pytest.mark.parametrize("alpha", [0.01, 0.1, 2 / 27, 0.5, 0.9])
def test_ewm_settle_is_the_first_k_below_tolerance(alpha):
    k = ind.ewm_settle(alpha, 1e-6)
    assert (1 - alpha) ** k <= 1e-6 < (1 - alpha) ** (k - 1)
    assert ind.ewm_settle(1.0) == 1
