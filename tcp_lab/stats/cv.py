"""Purged k-fold and combinatorial purged cross-validation (López de Prado, AFML ch. 7 and 12).

Everything here works on **positions**, not times: observations are numbered
``0 … n-1`` in time order (row numbers of your feature matrix, one per candle or
per event), and the splits are arrays of those positions, ready for
``X[train]`` / ``X.iloc[train]``.

**Label windows.** The label of observation ``i`` is computed from observations
``i … i + h_i`` (``h_i = label_horizon``, or ``label_horizon[i]`` when it is given
per observation, e.g. the bars until a triple barrier was touched). With
``label_horizon=0`` each label uses its own period only and nothing overlaps.

**Purging.** A training observation is dropped when its label window
``[j, j + h_j]`` intersects the label windows of a test block ``[a, b)``, whose
union is ``[a, E]`` with ``E = max(i + h_i for i in [a, b))``: i.e. when
``j <= E`` and ``j + h_j >= a``. With a constant horizon ``h`` that drops the ``h``
observations on either side of the block.

**Embargo.** After each test block (after ``E``), the next
``ceil(embargo * n)`` observations are dropped from training as well, for the
serial correlation that purging does not catch (AFML §7.4.2). ``embargo`` is a
fraction of ``n`` (``0.01`` = 1 % of the observations); for ``k`` observations pass
``k / n``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from tcp_lab.errors import ConfigError, DataError

__all__ = ["purged_kfold", "combinatorial_purged_cv", "cpcv_paths", "CPCVSplit"]


class CPCVSplit(NamedTuple):
    """One split of :func:`combinatorial_purged_cv`."""

    train: np.ndarray
    """Training positions (sorted), purged and embargoed."""
    test: np.ndarray
    """Test positions (sorted): the observations of ``test_groups``."""
    test_groups: tuple[int, ...]
    """The groups (``0 … n_groups-1``) tested in this split."""
    paths: tuple[int, ...]
    """For each test group, the backtest path its predictions belong to."""


def purged_kfold(
    n: int, n_splits: int, *, label_horizon: Any = 0, embargo: float = 0.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """K-fold splits without shuffling, purged of label overlap and embargoed.

    The ``n`` observations are cut into ``n_splits`` contiguous folds
    (``numpy.array_split``: sizes differ by at most one); each fold is the test set
    once, and the training set is every other observation minus the purged and
    embargoed ones (see the module notes for the exact rules).

    Parameters
    ----------
    n
        Number of observations (positions ``0 … n-1``, in time order).
    n_splits
        Number of folds (>= 2).
    label_horizon
        How many observations after ``i`` its label looks at: an int >= 0, or an
        array of ``n`` such ints (one per observation).
    embargo
        Fraction of ``n`` dropped from training after each test fold, in [0, 1).

    Yields
    ------
    (train, test)
        Sorted int64 position arrays. The test folds partition ``0 … n-1``.

    Raises
    ------
    ConfigError
        ``n_splits`` < 2 or > ``n``; a negative or non-whole ``label_horizon``; an
        ``embargo`` outside [0, 1).
    DataError
        A fold whose training set is empty after purging and embargo.

    References
    ----------
    López de Prado, M. (2018). Advances in Financial Machine Learning, Wiley,
    ch. 7 ("Cross-Validation in Finance"), §7.4.

    Examples
    --------
    >>> for train, test in purged_kfold(10, 3, label_horizon=1):
    ...     print(test.tolist(), train.tolist())
    [0, 1, 2, 3] [5, 6, 7, 8, 9]
    [4, 5, 6] [0, 1, 2, 8, 9]
    [7, 8, 9] [0, 1, 2, 3, 4, 5]
    """
    n, horizon, n_embargo = _check_common("purged_kfold", n, label_horizon, embargo)
    _check_int("purged_kfold", "n_splits", n_splits, minimum=2, maximum=n,
               hint="n_splits counts folds: at least 2, at most one per observation")
    for k, fold in enumerate(np.array_split(np.arange(n), n_splits)):
        test = np.zeros(n, dtype=bool)
        test[fold] = True
        train = _train_mask(test, horizon, n_embargo)
        yield _positions(train, f"purged_kfold: fold {k}"), fold.astype(np.int64)


def combinatorial_purged_cv(
    n: int, n_groups: int, n_test_groups: int, *, label_horizon: Any = 0, embargo: float = 0.0
) -> Iterator[CPCVSplit]:
    r"""Combinatorial purged cross-validation: every choice of ``n_test_groups`` test groups.

    The ``n`` observations are cut into ``N = n_groups`` contiguous groups
    (``numpy.array_split``); each of the :math:`\binom{N}{k}` combinations of
    ``k = n_test_groups`` groups is a test set (in ``itertools.combinations``
    order), trained on the other groups after purging and embargo around every
    test group (the module notes give the rules).

    Every group is tested in :math:`\binom{N-1}{k-1}` splits, so the test
    predictions assemble into :math:`\varphi = \binom{N}{k}\,k / N` complete
    backtest paths: path ``p`` takes group ``g`` from the ``p``-th split (in
    order) that tests ``g``. Each split says which path each of its test groups
    belongs to (``paths``); :func:`cpcv_paths` gives the whole table.

    Parameters
    ----------
    n
        Number of observations (positions ``0 … n-1``, in time order).
    n_groups
        Number of groups :math:`N` (>= 2, <= ``n``).
    n_test_groups
        Groups per test set :math:`k` (1 <= k < N).
    label_horizon, embargo
        As for :func:`purged_kfold`.

    Yields
    ------
    CPCVSplit
        ``(train, test, test_groups, paths)``. Group ``g`` is
        ``numpy.array_split(numpy.arange(n), n_groups)[g]``.

    Raises
    ------
    ConfigError
        Group counts out of range; ``label_horizon`` or ``embargo`` as for
        :func:`purged_kfold`.
    DataError
        A split whose training set is empty after purging and embargo.

    References
    ----------
    López de Prado, M. (2018). Advances in Financial Machine Learning, Wiley,
    ch. 12 ("Backtesting through Cross-Validation"), §12.4.

    Examples
    --------
    >>> splits = list(combinatorial_purged_cv(60, 6, 2, label_horizon=2, embargo=0.05))
    >>> len(splits), splits[0].test_groups, splits[0].paths
    (15, (0, 1), (0, 0))
    >>> splits[0].train[:3].tolist()        # 20..21 purged, 22..24 embargoed
    [25, 26, 27]
    """
    n, horizon, n_embargo = _check_common("combinatorial_purged_cv", n, label_horizon, embargo)
    _check_int("combinatorial_purged_cv", "n_groups", n_groups, minimum=2, maximum=n,
               hint="n_groups counts contiguous groups: at least 2, at most one per observation")
    _check_int("combinatorial_purged_cv", "n_test_groups", n_test_groups, minimum=1,
               maximum=n_groups - 1, hint="each split tests k groups and trains on the others")
    groups = np.array_split(np.arange(n), n_groups)
    path_of = _path_numbers(n_groups, n_test_groups)
    for s, combo in enumerate(itertools.combinations(range(n_groups), n_test_groups)):
        test = np.zeros(n, dtype=bool)
        for g in combo:
            test[groups[g]] = True
        train = _train_mask(test, horizon, n_embargo)
        yield CPCVSplit(
            train=_positions(train, f"combinatorial_purged_cv: split {s} (groups {combo})"),
            test=np.flatnonzero(test).astype(np.int64),
            test_groups=combo,
            paths=tuple(path_of[s][g] for g in combo),
        )


def cpcv_paths(n_groups: int, n_test_groups: int) -> np.ndarray:
    r"""The backtest paths of :func:`combinatorial_purged_cv`: which split tests each group.

    Returns an int array of shape :math:`(\varphi, N)`, with
    :math:`\varphi = \binom{N}{k}\,k/N`: ``table[p, g]`` is the number of the split
    (in :func:`combinatorial_purged_cv`'s order) whose predictions for group ``g``
    make up path ``p``.

    Raises
    ------
    ConfigError
        Group counts out of range.

    Examples
    --------
    >>> cpcv_paths(4, 2)
    array([[0, 0, 1, 2],
           [1, 3, 3, 4],
           [2, 4, 5, 5]])
    """
    _check_int("cpcv_paths", "n_groups", n_groups, minimum=2)
    _check_int("cpcv_paths", "n_test_groups", n_test_groups, minimum=1, maximum=n_groups - 1,
               hint="each split tests k groups and trains on the others")
    n_paths = math.comb(n_groups, n_test_groups) * n_test_groups // n_groups
    table = np.full((n_paths, n_groups), -1, dtype=np.int64)
    for s, groups in enumerate(_path_numbers(n_groups, n_test_groups)):
        for g, p in groups.items():
            table[p, g] = s
    return table


# -- helpers -----------------------------------------------------------------


def _path_numbers(n_groups: int, k: int) -> list[dict[int, int]]:
    """Per split, ``{test group: path}``: the m-th split testing group g feeds path m."""
    seen = [0] * n_groups
    out = []
    for combo in itertools.combinations(range(n_groups), k):
        out.append({g: seen[g] for g in combo})
        for g in combo:
            seen[g] += 1
    return out


def _train_mask(test: np.ndarray, horizon: np.ndarray, n_embargo: int) -> np.ndarray:
    """Training mask: not test, not overlapping a test block's labels, not embargoed."""
    n = test.size
    idx = np.arange(n)
    label_end = idx + horizon  # last observation each label looks at
    train = ~test
    # Maximal runs of consecutive test positions: [a, b).
    edges = np.flatnonzero(np.diff(np.concatenate(([0], test.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        end = int(label_end[a:b].max())  # the block's labels reach observation `end`
        train &= ~((idx <= end) & (label_end >= a))  # purge overlapping labels
        train[end + 1:end + 1 + n_embargo] = False  # embargo after the block
    return train


def _positions(train: np.ndarray, what: str) -> np.ndarray:
    out = np.flatnonzero(train).astype(np.int64)
    if out.size == 0:
        raise DataError(f"{what}: no training observation is left after purging and embargo",
                        hint="lower label_horizon or embargo, or use fewer test groups")
    return out


def _check_common(func: str, n: Any, label_horizon: Any, embargo: Any
                  ) -> tuple[int, np.ndarray, int]:
    _check_int(func, "n", n, minimum=2, hint="n is the number of observations")
    n = int(n)
    h = np.asarray(label_horizon)
    if h.ndim == 0:
        _check_int(func, "label_horizon", label_horizon, minimum=0,
                   hint="label_horizon counts observations after each one that its label uses")
        horizon = np.full(n, int(label_horizon), dtype=np.int64)
    else:
        if h.shape != (n,):
            raise ConfigError(f"{func}: label_horizon has shape {h.shape}, expected an int or "
                              f"one int per observation, shape ({n},)")
        if h.dtype.kind not in "iu" and not (
                h.dtype.kind == "f" and np.isfinite(h).all() and (h == np.round(h)).all()):
            raise ConfigError(f"{func}: label_horizon must hold whole numbers, got dtype {h.dtype}")
        if (h < 0).any():
            i = int(np.flatnonzero(h < 0)[0])
            raise ConfigError(f"{func}: label_horizon[{i}]={h[i]!r} is negative",
                              hint="label_horizon counts observations after each one")
        horizon = h.astype(np.int64)
    try:
        e = float(embargo)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{func}: embargo={embargo!r} is not a number") from err
    if not 0.0 <= e < 1.0:
        raise ConfigError(f"{func}: embargo={embargo!r} must be a fraction of n in [0, 1)",
                          hint=f"for k observations pass k / n (n={n})")
    return n, horizon, math.ceil(e * n)


def _check_int(func: str, name: str, value: Any, *, minimum: int,
               maximum: int | None = None, hint: str | None = None) -> None:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if ok and value >= minimum and (maximum is None or value <= maximum):
        return
    want = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    raise ConfigError(f"{func}: {name}={value!r} must be a whole number {want}", hint=hint)
