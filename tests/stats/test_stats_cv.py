"""Purged k-fold and CPCV against a slow reference written from AFML's rules, plus properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.errors import ConfigError, DataError
from tcp_lab.stats import CPCVSplit, combinatorial_purged_cv, cpcv_paths, purged_kfold


def train_ref(n: int, test: set[int], horizon: list[int], embargo: float) -> list[int]:
    """AFML §7.4: drop a training observation whose label window [j, j + h_j] meets a test
    label window [i, i + h_i]; after each run of test observations, embargo
    ceil(embargo * n) observations past the end of its labels."""
    n_embargo = math.ceil(embargo * n)
    embargoed = set()
    runs: list[list[int]] = []  # maximal stretches of consecutive test observations
    for i in sorted(test):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        end = max(i + horizon[i] for i in run)
        embargoed.update(range(end + 1, end + 1 + n_embargo))
    return [j for j in range(n) if j not in test and j not in embargoed
            and all(j + horizon[j] < i or i + horizon[i] < j for i in test)]


horizons = st.one_of(st.integers(0, 6), st.just("per observation"))


def horizon_for(n: int, h, seed: int):
    if h == "per observation":
        return np.random.default_rng(seed).integers(0, 6, n)
    return h


@settings(max_examples=100, deadline=None)
@given(n=st.integers(4, 80), k=st.integers(2, 6), h=horizons, embargo=st.floats(0.0, 0.1),
       seed=st.integers(0, 1000))
def test_purged_kfold_equals_the_reference(n, k, h, embargo, seed):
    k = min(k, n)
    horizon = horizon_for(n, h, seed)
    hs = list(np.broadcast_to(horizon, n))
    tests = []
    try:
        splits = list(purged_kfold(n, k, label_horizon=horizon, embargo=embargo))
    except DataError:  # some fold has nothing left to train on: the reference agrees
        assert any(not train_ref(n, set(f.tolist()), hs, embargo)
                   for f in np.array_split(np.arange(n), k))
        return
    for train, test in splits:
        assert train.dtype == np.int64 and test.dtype == np.int64
        assert train.tolist() == train_ref(n, set(test.tolist()), hs, embargo)
        tests.append(test)
    # the test folds partition the observations, in order, contiguous
    assert np.concatenate(tests).tolist() == list(range(n))
    assert all(np.all(np.diff(t) == 1) for t in tests)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(20, 200), k=st.integers(2, 8), h=st.integers(0, 5),
       embargo=st.floats(0.0, 0.05))
def test_purged_kfold_properties(n, k, h, embargo):
    n_embargo = math.ceil(embargo * n)
    for train, test in purged_kfold(n, k, label_horizon=h, embargo=embargo):
        # no training observation within label_horizon of a test observation
        gaps = np.abs(train[:, None] - test[None, :])
        assert gaps.min() > h
        # the embargo: nothing in the h + n_embargo observations after the test fold
        after = test[-1] + 1
        assert not np.any((train >= after) & (train < after + h + n_embargo))
        # and nothing else is dropped
        assert len(train) == n - len(test) - min(h, test[0]) - min(h + n_embargo, n - after)


def test_without_horizon_or_embargo_it_is_plain_kfold():
    for train, test in purged_kfold(10, 5):
        assert sorted(train.tolist() + test.tolist()) == list(range(10))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(12, 90), groups=st.integers(2, 7), k=st.integers(1, 6), h=horizons,
       embargo=st.floats(0.0, 0.08), seed=st.integers(0, 1000))
def test_cpcv_equals_the_reference(n, groups, k, h, embargo, seed):
    k = min(k, groups - 1)
    horizon = horizon_for(n, h, seed)
    hs = list(np.broadcast_to(horizon, n))
    bounds = np.array_split(np.arange(n), groups)
    try:
        splits = list(combinatorial_purged_cv(n, groups, k, label_horizon=horizon,
                                              embargo=embargo))
    except DataError:
        return
    combos = list(itertools.combinations(range(groups), k))
    assert len(splits) == math.comb(groups, k)
    for split, combo in zip(splits, combos, strict=True):
        assert isinstance(split, CPCVSplit) and split.test_groups == combo
        assert split.test.tolist() == sorted(i for g in combo for i in bounds[g].tolist())
        assert split.train.tolist() == train_ref(n, set(split.test.tolist()), hs, embargo)


@pytest.mark.parametrize(("groups", "k"), [(6, 2), (4, 2), (5, 1), (8, 3), (10, 2)])
def test_cpcv_paths_cover_every_group_once(groups, k):
    n_paths = math.comb(groups, k) * k // groups  # φ = C(N, k) k / N
    table = cpcv_paths(groups, k)
    assert table.shape == (n_paths, groups)
    splits = list(combinatorial_purged_cv(groups * 5, groups, k))
    for p in range(n_paths):
        for g in range(groups):
            split = splits[table[p, g]]
            assert g in split.test_groups  # the split that fills (p, g) tests group g
            assert split.paths[split.test_groups.index(g)] == p
    # every (split, test group) pair lands in exactly one path
    pairs = {(int(table[p, g]), g) for p in range(n_paths) for g in range(groups)}
    assert pairs == {(s, g) for s, sp in enumerate(splits) for g in sp.test_groups}


def test_cpcv_example_of_afml():
    # AFML §12.4: N = 6 groups, k = 2 → 15 splits and 5 backtest paths
    splits = list(combinatorial_purged_cv(600, 6, 2, label_horizon=3, embargo=0.01))
    assert len(splits) == 15 and cpcv_paths(6, 2).shape == (5, 6)
    first = splits[0]  # tests groups 0 and 1: [0, 200)
    assert first.test.tolist() == list(range(200))
    assert first.train[0] == 200 + 3 + 6  # 3 purged, ceil(0.01 * 600) = 6 embargoed


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: list(purged_kfold(10, 1)), ConfigError, r"n_splits=1 must be a whole number in "
                                                     r"\[2, 10\]"),
    (lambda: list(purged_kfold(10, 11)), ConfigError, r"n_splits=11"),
    (lambda: list(purged_kfold(10, 2, embargo=5)), ConfigError,
     r"embargo=5 must be a fraction of n in \[0, 1\) — for k observations pass k / n \(n=10\)"),
    (lambda: list(purged_kfold(10, 2, label_horizon=-1)), ConfigError, r"label_horizon=-1"),
    (lambda: list(purged_kfold(10, 2, label_horizon=[1, 2])), ConfigError,
     r"label_horizon has shape \(2,\), expected an int or one int per observation, shape "
     r"\(10,\)"),
    (lambda: list(purged_kfold(10, 2, label_horizon=1.5)), ConfigError, r"label_horizon=1\.5"),
    (lambda: list(purged_kfold(10, 2, label_horizon=8)), DataError,
     r"fold 0: no training observation is left after purging and embargo — lower"),
    (lambda: list(combinatorial_purged_cv(10, 4, 4)), ConfigError,
     r"n_test_groups=4 must be a whole number in \[1, 3\]"),
    (lambda: cpcv_paths(1, 1), ConfigError, r"n_groups=1"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
