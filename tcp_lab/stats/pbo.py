"""Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado and Zhu (2015). Given the per-period returns of
``N`` trials (strategies, parameter combinations) over the same ``T`` periods:

1. cut the ``T`` rows into ``S`` contiguous blocks;
2. for each of the :math:`\\binom{S}{S/2}` ways to pick half of the blocks as the
   in-sample set ``J`` (the rest, ``J̄``, is out-of-sample):
   choose the trial ``n*`` with the best in-sample performance, find its rank
   among all trials out-of-sample, :math:`\\bar\\omega = rank / (N + 1)`, and its
   logit :math:`\\lambda = \\ln(\\bar\\omega / (1 - \\bar\\omega))`;
3. PBO is the share of combinations with :math:`\\lambda \\le 0`: how often the
   in-sample winner is no better than the median trial out of sample.

Speed: every metric here is a function of per-block sums (of returns, of
squares, of squared losses), so the matrix is read once into
``S × N`` block sums, and each combination's performance of every trial is a sum
over its blocks (a numba kernel, :mod:`tcp_lab.stats._kernels`, parallel over the
combinations). Identical trials (common in sweeps: combinations that never trade
differently) are merged first and counted with their multiplicity.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tcp_lab.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = ["METRICS", "PBOResult", "Degradation", "pbo"]

#: Performance metrics :func:`pbo` ranks trials by (per period, not annualised).
METRICS = ("sharpe", "sortino", "mean")

#: Elements per chunk of rows in the block-sum pass (about 8 MB of float64).
_CHUNK_ELEMENTS = 1 << 20
#: Most combinations pbo() runs: n_splits=22 (705,432); 24 would be 2.7 million.
_MAX_COMBINATIONS = 1_000_000
#: Above this much work (combinations × trials), progress=None shows a bar.
_LONG = 20_000_000


@dataclass(frozen=True, repr=False)
class Degradation:
    """In-sample vs out-of-sample performance of the trial chosen in each combination."""

    in_sample: np.ndarray
    """Metric of the chosen (best in-sample) trial, in sample, one value per combination."""
    out_of_sample: np.ndarray
    """Metric of the same trial out of sample."""
    slope: float
    """Least-squares slope of ``out_of_sample`` on ``in_sample`` (negative: the better a
    trial looked in sample, the worse it did out of sample)."""
    intercept: float
    """Intercept of that regression."""
    prob_oos_loss: float
    """Share of combinations whose chosen trial has a negative out-of-sample metric."""

    def __repr__(self) -> str:
        return (f"Degradation(slope={self.slope:.4g}, intercept={self.intercept:.4g}, "
                f"prob_oos_loss={self.prob_oos_loss:.4g}, combinations={self.in_sample.size})")


@dataclass(frozen=True, repr=False)
class PBOResult:
    """Outcome of :func:`pbo`: ``probability`` is the PBO; arrays have one entry per combination."""

    probability: float
    """Share of combinations whose logit is <= 0."""
    logits: np.ndarray
    """:math:`\\lambda_c = \\ln(\\bar\\omega_c / (1 - \\bar\\omega_c))` per combination."""
    oos_rank: np.ndarray
    """:math:`\\bar\\omega_c`: the chosen trial's out-of-sample rank / (N + 1), in (0, 1)."""
    chosen: np.ndarray
    """Column index of the best in-sample trial per combination (first one on ties)."""
    degradation: Degradation
    """In-sample vs out-of-sample performance of the chosen trials."""
    train_blocks: np.ndarray
    """Per combination, the in-sample blocks (``S/2`` block numbers)."""
    n_trials: int
    n_splits: int
    n_obs: int
    metric: str
    labels: tuple = field(default=())
    """Column labels when the input was a DataFrame (``labels[chosen[c]]``), else empty."""

    @property
    def n_combinations(self) -> int:
        """:math:`\\binom{S}{S/2}`."""
        return int(self.logits.size)

    def __repr__(self) -> str:
        return (f"PBOResult(probability={self.probability:.4g}, n_trials={self.n_trials}, "
                f"n_splits={self.n_splits}, combinations={self.n_combinations}, "
                f"metric={self.metric!r}, slope={self.degradation.slope:.4g})")

    def plot(self) -> go.Figure:
        """Histogram of the logits and the in-sample vs out-of-sample scatter (plotly)."""
        from tcp_lab.stats._figures import pbo_figure

        return pbo_figure(self)


def pbo(
    returns_matrix: Any, n_splits: int = 16, metric: str = "sharpe", *,
    progress: bool | None = None,
) -> PBOResult:
    r"""Probability of backtest overfitting by combinatorially symmetric cross-validation.

    .. math::

        PBO = \frac{1}{|C_S|}\sum_{c \in C_S} \mathbb{1}[\lambda_c \le 0], \qquad
        \lambda_c = \ln\frac{\bar\omega_c}{1 - \bar\omega_c}, \qquad
        \bar\omega_c = \frac{\operatorname{rank}_{\bar J_c}(n^*_c)}{N + 1}

    with :math:`C_S` the :math:`\binom{S}{S/2}` choices of in-sample blocks
    :math:`J_c`, :math:`n^*_c` the trial with the best in-sample metric on
    :math:`J_c` and :math:`\operatorname{rank}_{\bar J_c}` its rank (1 = worst,
    ``N`` = best; ties share their average rank) among all trials on the other
    blocks.

    Parameters
    ----------
    returns_matrix
        ``T × N`` per-period returns: rows are periods (in time order), columns
        trials. A NumPy array (float32 is read without an upcast copy) or a
        DataFrame. Periods without a position are 0.0, not NaN.
    n_splits
        :math:`S`, the number of contiguous blocks (even, >= 2). Rows are split
        with ``numpy.array_split`` (block sizes differ by at most one).
    metric
        What ranks the trials, per period on the concatenated rows of a block set:
        ``"sharpe"`` ``mean / std(ddof=1)``, ``"sortino"``
        ``mean / sqrt(mean(min(r, 0)**2))``, or ``"mean"``. A trial flat on a block
        set (volatility and mean below 1e-13, e.g. never in the market) scores 0;
        no volatility with a non-zero mean scores ±inf.
    progress
        Show ``tqdm`` bars; ``None`` (default) shows them for long runs only.

    Returns
    -------
    PBOResult
        ``probability``, ``logits``, ``degradation`` (in-sample vs out-of-sample
        metric of each chosen trial, with the regression slope), ``plot()``.

    Raises
    ------
    ConfigError
        ``n_splits`` odd, < 2 or > 22 (over a million combinations), or an unknown
        ``metric``.
    DataError
        Not 2-D or not numbers, fewer than 2 trials, fewer than ``2 * n_splits`` rows, or a NaN or
        infinite return (the first one is named).

    References
    ----------
    Bailey, D. H., Borwein, J., López de Prado, M. and Zhu, Q. J. (2017). "The
    Probability of Backtest Overfitting". Journal of Computational Finance 20(4),
    39–69 (working paper 2015). https://ssrn.com/abstract=2326253

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> result = pbo(rng.normal(0.0, 0.01, (1000, 50)), n_splits=8)
    >>> result.n_combinations, 0.0 <= result.probability <= 1.0
    (70, True)
    """
    if metric not in METRICS:
        guess = difflib.get_close_matches(str(metric), METRICS, n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise ConfigError(f"pbo: unknown metric {metric!r}{dym}",
                          hint="metrics: " + ", ".join(METRICS))
    matrix, labels = _as_matrix(returns_matrix)
    t, n = matrix.shape
    _check_splits(n_splits, t)
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)),
                      dtype=np.int64)
    if progress is None:
        progress = len(combos) * n > _LONG or t * n > 50 * _LONG
    stats = _block_stats(matrix, n_splits, metric, labels, progress)
    unique, counts, first = _merge_identical(stats)
    chosen_u, perf_is, perf_oos, rank = _rank_combinations(unique, counts, combos, metric,
                                                           progress)
    omega = rank / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(
        probability=float(np.mean(logits <= 0.0)),
        logits=logits,
        oos_rank=omega,
        chosen=first[chosen_u],
        degradation=_degradation(perf_is, perf_oos),
        train_blocks=combos,
        n_trials=n,
        n_splits=n_splits,
        n_obs=t,
        metric=metric,
        labels=labels,
    )


# -- input -------------------------------------------------------------------


def _as_matrix(returns_matrix: Any) -> tuple[np.ndarray, tuple]:
    labels: tuple = ()
    if hasattr(returns_matrix, "columns") and hasattr(returns_matrix, "to_numpy"):
        labels = tuple(returns_matrix.columns)
        returns_matrix = returns_matrix.to_numpy()
    m = np.asarray(returns_matrix)
    if m.dtype.kind not in "biuf" or m.dtype.itemsize > 8:
        try:
            if m.dtype.kind == "c":
                raise TypeError("complex")
            m = m.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"pbo: returns_matrix must hold real numbers, got dtype {m.dtype}"
                            ) from e
    if m.ndim != 2:
        raise DataError(f"pbo: returns_matrix must be 2-D (periods × trials), got shape {m.shape}",
                        hint="one column per trial; for a single strategy use "
                             "probabilistic_sharpe")
    if m.shape[1] < 2:
        raise DataError(f"pbo: returns_matrix has {m.shape[1]} trial(s) (columns), at least 2 "
                        "are needed to rank them",
                        hint="is the matrix transposed? rows are periods, columns trials")
    return m, labels


def _check_splits(n_splits: Any, t: int) -> None:
    if (not isinstance(n_splits, int | np.integer) or isinstance(n_splits, bool)
            or n_splits < 2 or n_splits % 2):
        raise ConfigError(f"pbo: n_splits={n_splits!r} must be an even whole number >= 2 "
                          "(half the blocks are in sample)", hint="e.g. 8 or 16")
    n_comb = math.comb(int(n_splits), int(n_splits) // 2)
    if n_comb > _MAX_COMBINATIONS:
        raise ConfigError(f"pbo: n_splits={n_splits} gives {n_comb:,} combinations, more than "
                          f"{_MAX_COMBINATIONS:,}", hint="use n_splits <= 22 (the paper uses 16)")
    if t < 2 * n_splits:
        raise DataError(f"pbo: returns_matrix has {t} period(s) (rows) for n_splits={n_splits}; "
                        f"at least {2 * n_splits} are needed",
                        hint="use fewer splits (is the matrix transposed? rows are periods)")


# -- pass 1: block sums --------------------------------------------------------


def _block_stats(m: np.ndarray, n_splits: int, metric: str, labels: tuple,
                 progress: bool) -> dict[str, np.ndarray]:
    """Per block: row count and, per trial, sums of r and r**2 [and min(r, 0)**2].

    Raw sums: a period without a position adds exactly 0, so a trial flat on a block
    set is exactly flat there. The variance ``(S2 - S1 * mean) / (n - 1)`` loses
    about ``1 + SR**2`` in relative precision, nothing for per-period returns.
    """
    t, n = m.shape
    bounds = np.cumsum([0] + [len(b) for b in np.array_split(np.arange(t), n_splits)])
    s1 = np.zeros((n_splits, n))
    s2 = np.zeros((n_splits, n))
    loss2 = np.zeros((n_splits, n)) if metric == "sortino" else None
    bar = _bar(progress, t, "pbo: block sums", "row")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf: reported below
        _accumulate(m, bounds, s1, s2, loss2, bar)
    bar.close()
    bad = ~(np.isfinite(s1).all(axis=0) & np.isfinite(s2).all(axis=0))
    if bad.any():
        _raise_not_finite(m, int(np.flatnonzero(bad)[0]), labels)
    stats = {"n": np.diff(bounds).astype(np.float64), "s1": s1, "s2": s2}
    if loss2 is not None:
        stats["loss2"] = loss2
    return stats


def _accumulate(m: np.ndarray, bounds: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                loss2: np.ndarray | None, bar: Any) -> None:
    rows = max(1, _CHUNK_ELEMENTS // m.shape[1])
    for b in range(len(bounds) - 1):
        for lo in range(int(bounds[b]), int(bounds[b + 1]), rows):
            hi = min(lo + rows, int(bounds[b + 1]))
            x = m[lo:hi].astype(np.float64, copy=False)
            s1[b] += x.sum(axis=0)
            s2[b] += np.einsum("ij,ij->j", x, x)
            if loss2 is not None:
                neg = np.minimum(x, 0.0)
                loss2[b] += np.einsum("ij,ij->j", neg, neg)
            bar.update(hi - lo)


def _raise_not_finite(m: np.ndarray, col: int, labels: tuple) -> None:
    column = m[:, col]
    bad = ~np.isfinite(column)
    row = int(np.flatnonzero(bad)[0]) if bad.any() else -1
    name = f"column {col}" + (f" ({labels[col]!r})" if labels else "")
    where = f"first at row {row}" if row >= 0 else "its sums overflow"
    raise DataError(f"pbo: returns_matrix {name} holds NaN or infinite returns ({where})",
                    hint="fill periods without a position with 0.0")


def _merge_identical(stats: dict[str, np.ndarray]) -> tuple[dict, np.ndarray, np.ndarray]:
    """Merge trials with identical block sums; keep first-occurrence order."""
    keys = [stats["s1"], stats["s2"]]
    if "loss2" in stats:
        keys.append(stats["loss2"])
    stacked = np.concatenate(keys, axis=0)
    _, first, counts = np.unique(stacked, axis=1, return_index=True, return_counts=True)
    order = np.argsort(first)
    first, counts = first[order], counts[order]
    unique = {k: (v if k == "n" else np.ascontiguousarray(v[..., first]))
              for k, v in stats.items()}
    return unique, counts.astype(np.float64), first


# -- pass 2: combinations ------------------------------------------------------


def _rank_combinations(stats: dict, counts: np.ndarray, combos: np.ndarray, metric: str,
                       progress: bool) -> tuple[np.ndarray, ...]:
    """The numba kernel over all combinations, in pieces when a progress bar is shown."""
    from tcp_lab.stats._kernels import METRIC_CODES, cscv_nb

    args = (stats["s1"], stats["s2"], stats.get("loss2", np.empty((0, 0))), stats["n"], counts)
    n_comb = len(combos)
    step = max(64, -(-n_comb // 50)) if progress else n_comb
    parts = []
    bar = _bar(progress, n_comb, "pbo: combinations", "split")
    for lo in range(0, n_comb, step):
        piece = np.ascontiguousarray(combos[lo:lo + step])
        parts.append(cscv_nb(*args, piece, METRIC_CODES[metric]))
        bar.update(len(piece))
    bar.close()
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _degradation(perf_is: np.ndarray, perf_oos: np.ndarray) -> Degradation:
    ok = np.isfinite(perf_is) & np.isfinite(perf_oos)
    x, y = perf_is[ok], perf_oos[ok]
    slope = intercept = math.nan
    if x.size >= 2:
        dx = x - x.mean()
        sxx = float(dx @ dx)
        if sxx > 0:
            slope = float(dx @ (y - y.mean())) / sxx
            intercept = float(y.mean() - slope * x.mean())
    return Degradation(in_sample=perf_is, out_of_sample=perf_oos, slope=slope,
                       intercept=intercept, prob_oos_loss=float(np.mean(perf_oos < 0.0)))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(show: bool, total: int, desc: str, unit: str) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False)
