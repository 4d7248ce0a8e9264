"""Numba kernel of :func:`tcp_lab.stats.pbo.pbo`: per-block sums in, per-combination ranks out.

Numpy arrays only (``*_nb``); validation, block sums and the result object stay in
:mod:`tcp_lab.stats.pbo`. One loop over the combinations (parallel with
``prange``), each computing every trial's in- and out-of-sample metric from its
block sums without materialising a combinations × trials matrix.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["METRIC_CODES", "FLAT", "metric_nb", "cscv_nb"]

#: Metric name -> kernel code.
METRIC_CODES = {"sharpe": 0, "sortino": 1, "mean": 2}
#: Volatility (and mean) at or below which a trial counts as flat on a block set.
FLAT = 1e-13


@njit(cache=True, inline="always", error_model="numpy")
def metric_nb(code: int, s1: float, s2: float, loss2: float, n: float) -> float:
    """One trial's metric on ``n`` rows from ``sum(r)``, ``sum(r**2)`` and
    ``sum(min(r, 0)**2)``. Flat (volatility and |mean| <= FLAT): 0; no volatility with
    a mean: ±inf. Written without early returns so that loops over trials vectorise."""
    mean = s1 / n
    if code == 0:
        scale = math.sqrt(max((s2 - s1 * mean) / (n - 1.0), 0.0))
    else:
        scale = math.sqrt(loss2 / n)
    flat = 0.0 if abs(mean) <= FLAT else math.copysign(math.inf, mean)
    ratio = flat if scale <= FLAT else mean / scale
    return mean if code == 2 else ratio


@njit(cache=True, parallel=True, error_model="numpy")
def cscv_nb(s1: np.ndarray, s2: np.ndarray, loss2: np.ndarray, n_rows: np.ndarray,
            counts: np.ndarray, combos: np.ndarray, code: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank the in-sample winner out of sample, for every combination of in-sample blocks.

    Parameters
    ----------
    s1, s2, loss2
        float64 ``(n_blocks, n_trials)`` per-block sums of ``r``, ``r**2`` and
        ``min(r, 0)**2`` (``loss2`` may be ``(0, 0)`` unless the metric is the
        Sortino ratio).
    n_rows
        float64 ``(n_blocks,)`` rows per block.
    counts
        float64 ``(n_trials,)`` how many identical trials each column stands for.
    combos
        int64 ``(n_combinations, n_blocks / 2)`` in-sample blocks per combination.
    code
        :data:`METRIC_CODES` value.

    Returns
    -------
    chosen, perf_is, perf_oos, rank
        Per combination: the best in-sample column (first on ties), its in-sample
        and out-of-sample metric, and its out-of-sample rank among all trials
        weighted by ``counts`` (1 = worst; ties share their average rank).

    Both sides sum their own blocks (not total minus in-sample), so a trial flat
    on every block of one side has exactly zero sums there.
    """
    n_comb, half = combos.shape
    n_blocks, n_trials = s1.shape
    sortino = code == 1
    chosen = np.empty(n_comb, dtype=np.int64)
    perf_is = np.empty(n_comb)
    perf_oos = np.empty(n_comb)
    rank = np.empty(n_comb)
    for c in prange(n_comb):
        inside = np.zeros(n_blocks, dtype=np.bool_)
        for k in range(half):
            inside[combos[c, k]] = True
        perf = np.empty(n_trials)
        best = 0
        for side in range(2):  # 0: in sample, 1: out of sample
            a1 = np.zeros(n_trials)
            a2 = np.zeros(n_trials)
            a3 = np.zeros(n_trials)
            rows = 0.0
            for b in range(n_blocks):
                if inside[b] != (side == 0):
                    continue
                rows += n_rows[b]
                for j in range(n_trials):
                    a1[j] += s1[b, j]
                    a2[j] += s2[b, j]
                if sortino:
                    for j in range(n_trials):
                        a3[j] += loss2[b, j]
            for j in range(n_trials):
                perf[j] = metric_nb(code, a1[j], a2[j], a3[j], rows)
            if side == 0:
                best = np.argmax(perf)
                chosen[c] = best
                perf_is[c] = perf[best]
        v = perf[best]
        below = 0.0
        tied = 0.0
        for j in range(n_trials):
            below += counts[j] if perf[j] < v else 0.0
            tied += counts[j] if perf[j] == v else 0.0
        perf_oos[c] = v
        rank[c] = below + (tied + 1.0) / 2.0
    return chosen, perf_is, perf_oos, rank
