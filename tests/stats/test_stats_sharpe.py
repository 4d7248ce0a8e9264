"""PSR and DSR against slow references written from the papers' formulas, the DSR paper's
numerical example, and the properties they must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.errors import DataError
from tcp_lab.stats import (
    EULER_MASCHERONI,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    sharpe_moments,
)

# -- references: the formulas, with the math module only ----------------------


def phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def phi_inv(p: float) -> float:
    lo, hi = -40.0, 40.0  # bisection on Φ: slow and obviously right
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if phi(mid) < p else (lo, mid)
    return (lo + hi) / 2


def psr_ref(sr: float, n: int, g3: float, g4: float, sr_star: float = 0.0) -> float:
    """Bailey & López de Prado (2012): Φ((SR − SR*)√(n−1) / √(1 − γ3 SR + (γ4−1)/4 SR²))."""
    return phi((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))


def sr0_ref(n_trials: int, std: float) -> float:
    """Bailey & López de Prado (2014), eq. 7 (with γ the Euler–Mascheroni constant)."""
    g = 0.5772156649015329
    return std * ((1 - g) * phi_inv(1 - 1 / n_trials) + g * phi_inv(1 - 1 / (n_trials * math.e)))


# moments that some distribution has: kurtosis >= 1 + skew**2
moments = st.tuples(st.floats(-3, 3), st.floats(0, 30)).map(lambda t: (t[0], 1 + t[0] ** 2 + t[1]))
sharpes = st.floats(-0.5, 0.5)
counts = st.integers(2, 100_000)


@settings(max_examples=200, deadline=None)
@given(sharpes, counts, moments, st.floats(-0.3, 0.3))
def test_psr_matches_the_formula(sr, n, m, bench):
    skew, kurt = m
    assert probabilistic_sharpe(sr, n, skew, kurt, bench) == pytest.approx(
        psr_ref(sr, n, skew, kurt, bench), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(sharpes, counts, moments)
def test_psr_is_one_half_at_the_benchmark(sr, n, m):
    assert probabilistic_sharpe(sr, n, *m, benchmark=sr) == 0.5


@settings(max_examples=100, deadline=None)
@given(st.floats(-0.4, 0.4), st.floats(0.001, 0.1), st.integers(2, 5000), moments)
def test_psr_grows_with_the_sharpe_ratio(sr, step, n, m):
    assert probabilistic_sharpe(sr + step, n, *m) >= probabilistic_sharpe(sr, n, *m)


def test_psr_normal_returns_reduce_to_the_textbook_standard_error():
    # skew 0, kurtosis 3: σ(SR) = sqrt((1 + SR²/2) / (n − 1))
    sr, n = 0.08, 500
    z = sr / math.sqrt((1 + sr**2 / 2) / (n - 1))
    assert probabilistic_sharpe(sr, n, 0.0, 3.0) == pytest.approx(phi(z), rel=1e-12)


def test_psr_broadcasts_over_arrays():
    sr = np.array([-0.1, 0.0, 0.05, 0.2])
    out = probabilistic_sharpe(sr, 250, -0.5, 6.0)
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    np.testing.assert_allclose(out, [psr_ref(s, 250, -0.5, 6.0) for s in sr], rtol=1e-12)
    assert isinstance(probabilistic_sharpe(0.1, 250, 0.0, 3.0), float)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 10_000), st.floats(0.0, 2.0))
def test_expected_max_sharpe_matches_the_formula(n_trials, std):
    want = 0.0 if n_trials == 1 else sr0_ref(n_trials, std)
    assert expected_max_sharpe(n_trials, std) == pytest.approx(want, rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(sharpes, st.integers(2, 5000), st.floats(0.001, 0.5), st.integers(10, 10_000), moments)
def test_dsr_matches_the_formula(sr, n_trials, std, n, m):
    want = psr_ref(sr, n, *m, sr_star=sr0_ref(n_trials, std))
    assert deflated_sharpe(sr, n_trials, std, n, *m) == pytest.approx(want, rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(sharpes, st.integers(1, 5000), st.integers(1, 500), st.floats(0.0, 0.5),
       st.integers(10, 10_000), moments)
def test_dsr_decreases_with_the_number_of_trials(sr, n_trials, more, std, n, m):
    assert deflated_sharpe(sr, n_trials + more, std, n, *m) <= deflated_sharpe(
        sr, n_trials, std, n, *m)


def test_dsr_of_one_trial_is_the_psr_against_zero():
    assert deflated_sharpe(0.07, 1, 0.3, 400, -1.0, 7.0) == probabilistic_sharpe(
        0.07, 400, -1.0, 7.0)


def test_dsr_numerical_example_of_the_paper():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", section "A numerical
    # example": N = 100 independent trials; the best has an annualised Sharpe ratio of 2.5
    # over five years of daily returns (T = 1250, 250 a year); the variance of the
    # annualised Sharpe ratios across trials is 1/2; skewness -3, kurtosis 10. The paper
    # gets SR0 ≈ 0.1132 (per day) and DSR ≈ 0.9004: not significant at 95 %.
    sr, std = 2.5 / math.sqrt(250), math.sqrt(0.5 / 250)
    assert expected_max_sharpe(100, std) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe(sr, 100, std, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=5e-5)
    assert EULER_MASCHERONI == pytest.approx(0.5772156649015329, rel=1e-15)


# -- sharpe_moments against plain loops -----------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 60))
def test_sharpe_moments_match_their_definitions(seed, n):
    r = np.random.default_rng(seed).standard_t(4, n) * 0.01 + 0.001
    xs = [float(v) for v in r]
    mu = sum(xs) / n
    m2, m3, m4 = (sum((x - mu) ** k for x in xs) / n for k in (2, 3, 4))
    sd = math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1))
    got = sharpe_moments(r)
    assert got.n_obs == n
    assert got.sharpe == pytest.approx(mu / sd, rel=1e-9)
    assert got.skew == pytest.approx(m3 / m2**1.5, rel=1e-8, abs=1e-10)
    assert got.kurtosis == pytest.approx(m4 / m2**2, rel=1e-9)
    # and they are valid input for the PSR (sample moments obey the Pearson bound)
    assert 0.0 <= probabilistic_sharpe(*got) <= 1.0


def test_sharpe_moments_per_column():
    r = np.random.default_rng(1).normal(0.001, 0.01, (300, 3))
    got = sharpe_moments(r)
    assert got.sharpe.shape == (3,) and got.n_obs == 300
    for j in range(3):
        assert got.sharpe[j] == pytest.approx(sharpe_moments(r[:, j]).sharpe, rel=1e-12)
    np.testing.assert_allclose(probabilistic_sharpe(*got),
                               [probabilistic_sharpe(*sharpe_moments(r[:, j])) for j in range(3)])


def test_sharpe_moments_of_a_flat_series_are_nan():
    got = sharpe_moments(np.zeros(10))
    assert math.isnan(got.sharpe) and math.isnan(got.kurtosis)


# -- errors name the argument ---------------------------------------------------


@pytest.mark.parametrize(("call", "match"), [
    (lambda: probabilistic_sharpe(0.1, 250, 0.0, 0.0), r"kurtosis=0\.0 is below 1 \+ skew"),
    (lambda: probabilistic_sharpe(0.1, 1, 0.0, 3.0), r"n_obs=1 must be a whole number >= 2"),
    (lambda: probabilistic_sharpe(0.1, 99.5, 0.0, 3.0), r"n_obs=99\.5"),
    (lambda: probabilistic_sharpe(float("nan"), 250, 0.0, 3.0), r"sharpe=nan is not finite"),
    (lambda: probabilistic_sharpe(0.1, 250, "x", 3.0), r"skew='x' is not a number"),
    (lambda: probabilistic_sharpe(0.1, 250, 0.0, 3.0, benchmark=math.inf), r"benchmark=inf"),
    (lambda: deflated_sharpe(0.1, 0, 0.1, 250, 0.0, 3.0), r"n_trials=0 must be a whole"),
    (lambda: deflated_sharpe(0.1, 10, -0.1, 250, 0.0, 3.0), r"trials_sharpe_std=-0\.1 is neg"),
    (lambda: sharpe_moments([0.01]), r"1 return\(s\), at least 2"),
    (lambda: sharpe_moments([0.01, float("nan"), 0.0]), r"first at position \(1,\)"),
])
def test_errors_name_the_argument(call, match):
    with pytest.raises(DataError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_excess_kurtosis_error_says_how_to_fix():
    with pytest.raises(DataError, match=r"non-excess kurtosis \(3 for normal returns\)"):
        probabilistic_sharpe(0.1, 250, 0.5, 0.2)  # an excess kurtosis of 0.2
