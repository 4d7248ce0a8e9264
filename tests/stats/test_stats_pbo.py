"""PBO (CSCV) against a brute-force implementation written from the paper, plus properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.errors import ConfigError, DataError
from tcp_lab.stats import METRICS, PBOResult, pbo

# -- the reference: every combination, every trial, from the rows themselves ----------


def metric_ref(r: np.ndarray, metric: str) -> float:
    """The documented metric of one trial on a set of rows (flat: 0; no volatility: ±inf)."""
    mean = float(np.mean(r))
    if metric == "mean":
        return mean
    scale = float(np.std(r, ddof=1)) if metric == "sharpe" else math.sqrt(
        float(np.mean(np.minimum(r, 0.0) ** 2)))
    if scale <= 1e-13:
        return 0.0 if abs(mean) <= 1e-13 else math.copysign(math.inf, mean)
    return mean / scale


def average_rank(values: list[float], v: float) -> float:
    """Rank of ``v`` among ``values`` (1 = lowest), ties sharing the mean of their positions."""
    positions = [i + 1 for i, x in enumerate(sorted(values)) if x == v]
    return sum(positions) / len(positions)


def pbo_ref(m: np.ndarray, s: int, metric: str) -> dict:
    """Bailey, Borwein, López de Prado & Zhu (2015), CSCV steps 1–6, one combination at a time."""
    t, n = m.shape
    blocks = np.array_split(np.arange(t), s)
    logits, chosen, perf_is, perf_oos = [], [], [], []
    for train in itertools.combinations(range(s), s // 2):
        test = [b for b in range(s) if b not in train]
        rows_in = np.concatenate([blocks[b] for b in train])
        rows_out = np.concatenate([blocks[b] for b in test])
        is_perf = [metric_ref(m[rows_in, j], metric) for j in range(n)]
        oos_perf = [metric_ref(m[rows_out, j], metric) for j in range(n)]
        best = max(range(n), key=lambda j: (is_perf[j], -j))  # first on ties
        omega = average_rank(oos_perf, oos_perf[best]) / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        chosen.append(best)
        perf_is.append(is_perf[best])
        perf_oos.append(oos_perf[best])
    return {"probability": sum(lam <= 0 for lam in logits) / len(logits),
            "logits": np.array(logits), "chosen": np.array(chosen),
            "perf_is": np.array(perf_is), "perf_oos": np.array(perf_oos)}


def returns_matrix(seed: int, t: int, n: int, extras: list[str]) -> np.ndarray:
    """Noisy trials with small drifts, fat tails and a common factor; optional special columns."""
    rng = np.random.default_rng(seed)
    market = rng.standard_t(5, (t, 1)) * 0.01
    m = 0.5 * market + rng.standard_t(4, (t, n)) * 0.01 + rng.normal(0, 0.002, n)
    cols = [m]
    for extra in extras:
        if extra == "duplicate":  # a sweep combination that trades exactly like another
            cols.append(m[:, [int(rng.integers(n))]])
        elif extra == "flat":  # never in the market
            cols.append(np.zeros((t, 1)))
        elif extra == "skilled":
            cols.append(rng.normal(0.01, 0.01, (t, 1)))
        elif extra == "part_time":  # in the market for a stretch only: flat on some blocks
            col = np.zeros((t, 1))
            lo = int(rng.integers(t))
            col[lo:lo + t // 3] = rng.normal(0.0, 0.01, (len(col[lo:lo + t // 3]), 1))
            cols.append(col)
    return np.concatenate(cols, axis=1)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), s=st.sampled_from([2, 4, 6, 8]),
       n=st.integers(2, 6), rows_per_block=st.integers(2, 12),
       extras=st.lists(st.sampled_from(["duplicate", "flat", "skilled", "part_time"]),
                       max_size=3),
       metric=st.sampled_from(METRICS))
def test_pbo_equals_brute_force(seed, s, n, rows_per_block, extras, metric):
    t = s * rows_per_block + seed % s  # not always divisible by s
    m = returns_matrix(seed, t, n, extras)
    got, want = pbo(m, s, metric), pbo_ref(m, s, metric)
    assert got.n_combinations == math.comb(s, s // 2)
    assert got.probability == want["probability"]
    np.testing.assert_array_equal(got.chosen, want["chosen"])
    np.testing.assert_allclose(got.logits, want["logits"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.degradation.in_sample, want["perf_is"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(got.degradation.out_of_sample, want["perf_oos"], rtol=1e-9,
                               atol=1e-15)


def test_pbo_on_the_sizes_of_the_issue_example():
    # T=64 periods, N=5 trials, S=8: 70 combinations
    m = returns_matrix(7, 64, 5, [])
    got, want = pbo(m, 8), pbo_ref(m, 8, "sharpe")
    assert got.n_combinations == 70
    assert got.probability == want["probability"]
    np.testing.assert_allclose(got.logits, want["logits"], rtol=1e-12)
    ok = np.isfinite(want["perf_is"])
    slope = np.polyfit(want["perf_is"][ok], want["perf_oos"][ok], 1)[0]
    assert got.degradation.slope == pytest.approx(slope, rel=1e-9)


def test_a_dominant_trial_is_not_overfit():
    m = returns_matrix(3, 400, 20, ["skilled"])  # the last column wins everywhere
    result = pbo(m, 8)
    assert result.probability == 0.0
    assert (result.chosen == 20).all()
    assert (result.oos_rank == 21 / 22).all()  # rank N of N: ω = N / (N + 1)


def test_selecting_on_noise_is_a_coin_flip():
    m = np.random.default_rng(11).normal(0.0, 0.01, (1600, 200))
    result = pbo(m, 16)
    assert result.n_combinations == 12_870
    assert 0.3 < result.probability < 0.7
    assert result.degradation.slope < 0.2  # in-sample luck does not carry over


def test_identical_trials_count_once_each_and_tie():
    base = returns_matrix(5, 120, 4, [])
    m = np.concatenate([base, base[:, [2, 2]]], axis=1)  # trial 2 three times
    got, want = pbo(m, 6), pbo_ref(m, 6, "sharpe")
    assert got.n_trials == 6
    np.testing.assert_allclose(got.logits, want["logits"], rtol=1e-12)
    assert set(got.chosen) <= {0, 1, 2, 3}  # first of identical trials on ties


def test_float32_input_is_read_without_changing_the_result():
    m = returns_matrix(9, 200, 6, []).astype(np.float32)
    a, b = pbo(m, 8), pbo(m.astype(np.float64), 8)
    assert a.probability == b.probability
    np.testing.assert_array_equal(a.logits, b.logits)


def test_dataframe_labels_and_progress_bar(capsys):
    m = returns_matrix(2, 160, 4, [])
    df = pd.DataFrame(m, columns=[f"fast={f}" for f in (5, 10, 20, 40)])
    result = pbo(df, 4, progress=True)
    assert result.labels == tuple(df.columns)
    assert result.labels[result.chosen[0]] in df.columns
    assert result.probability == pbo(m, 4, progress=False).probability


def test_result_repr_and_plot():
    result = pbo(returns_matrix(4, 300, 10, []), 8)
    assert isinstance(result, PBOResult)
    text = repr(result)
    assert text.startswith("PBOResult(probability=") and "combinations=70" in text
    assert "slope=" in repr(result.degradation)
    fig = result.plot()
    assert isinstance(fig, go.Figure)
    kinds = [trace.type for trace in fig.data]
    assert kinds[:2] == ["histogram", "scattergl"] and "scatter" in kinds
    assert list(fig.data[0].x) == pytest.approx(list(result.logits))


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"n_splits": 7}, ConfigError, r"n_splits=7 must be an even whole number >= 2"),
    ({"n_splits": 0}, ConfigError, r"n_splits=0"),
    ({"n_splits": 20}, DataError, r"30 period\(s\) \(rows\) for n_splits=20; at least 40"),
    ({"n_splits": 40}, ConfigError, r"n_splits=40 gives 137,846,528,820 combinations"),
    ({"metric": "sharp"}, ConfigError, r"unknown metric 'sharp'; did you mean 'sharpe'\?"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pbo(np.zeros((30, 3)), **kwargs)


def test_bad_matrices():
    with pytest.raises(DataError, match=r"must be 2-D \(periods × trials\), got shape \(50,\)"):
        pbo(np.zeros(50))
    with pytest.raises(DataError, match=r"1 trial\(s\) \(columns\), at least 2.*transposed"):
        pbo(np.zeros((50, 1)), 4)
    with pytest.raises(DataError, match=r"must hold real numbers, got dtype <U1"):
        pbo(np.full((50, 3), "x"), 4)
    with pytest.raises(DataError, match=r"must hold real numbers, got dtype complex128"):
        pbo(np.zeros((50, 3), dtype=complex), 4)
    m = returns_matrix(1, 80, 3, [])
    m[37, 1] = np.nan
    with pytest.raises(DataError, match=r"column 1 holds NaN or infinite returns \(first at row "
                                        r"37\) — fill periods without a position with 0\.0"):
        pbo(m, 4)
    df = pd.DataFrame(returns_matrix(1, 80, 3, []), columns=["a", "b", "c"])
    df.iloc[5, 2] = np.inf
    with pytest.raises(DataError, match=r"column 2 \('c'\) holds NaN or infinite"):
        pbo(df, 4)
