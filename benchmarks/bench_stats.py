"""Overfitting statistics: ``pbo`` (CSCV) at the size of a large sweep, time and peak memory.

8,151 trials (the SMA-cross grid of ``bench_sweep``) × 16 splits (12,870
combinations) of synthetic per-period returns: a common market factor plus
fat-tailed idiosyncratic noise and a small drift per trial, every column
distinct (the conservative case: identical trials, common in real sweeps, are
merged and cost nothing). Rows:

* ``pbo sharpe, T=100,000`` — :func:`tcp_lab.stats.pbo` over a float32 matrix
  (3.3 GB, read in place); also ``sortino`` and ``mean``;
* ``pbo sharpe, T=3,200`` — the same trials on few rows: the combination phase
  alone (the read of the matrix is negligible there);
* ``naive numpy per combination, T=3,200`` — the direct implementation (per
  combination: gather the in-sample and out-of-sample rows, ``mean``/``std``
  of every column, argmax, rank), timed on a few combinations and extrapolated.

Each pbo row runs in a fresh process: it builds the matrix, loads the compiled
kernel with a small call (its time is the ``first call`` row: numba's on-disk
cache, or a compile on the very first run), resets the peak-RSS mark
(``/proc/self/clear_refs``) and then times one call; ``peak_rss_mb`` is that
call's peak and ``added_mb`` what the call adds to the process (which holds the
matrix: ``rss_before_mb``). Wall times on a shared machine are noisy; CPU seconds
are reported beside them.

Usage: ``python -m benchmarks.bench_stats [--quick]`` (or ``python -m benchmarks
--only stats``); JSON goes to ``benchmarks/results/stats.json``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
from typing import Any

import numpy as np

try:
    from benchmarks._memory import in_child, reset_peak, rss_mb
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _memory import in_child, reset_peak, rss_mb  # type: ignore[no-redef]
    from _report import report  # type: ignore[no-redef]

FULL = {"trials": 8_151, "splits": 16, "rows": 100_000, "few_rows": 3_200, "naive_combos": 8,
        "metrics": ("sharpe", "sortino", "mean")}
QUICK = {"trials": 500, "splits": 8, "rows": 10_000, "few_rows": 800, "naive_combos": 4,
         "metrics": ("sharpe",)}


def make_returns(rows: int, trials: int, seed: int = 0) -> np.ndarray:
    """``rows × trials`` float32 per-period returns (generated in chunks: no float64 copy)."""
    rng = np.random.default_rng(seed)
    beta = rng.uniform(0.2, 1.0, trials).astype(np.float32)
    drift = rng.normal(0.0, 5e-5, trials).astype(np.float32)
    out = np.empty((rows, trials), dtype=np.float32)
    step = max(1, (1 << 22) // trials)
    for lo in range(0, rows, step):
        hi = min(lo + step, rows)
        market = rng.standard_t(5, (hi - lo, 1)).astype(np.float32)
        noise = rng.standard_normal((hi - lo, trials), dtype=np.float32)
        out[lo:hi] = 0.006 * (beta * market) + 0.008 * noise + drift
    return out


def _measure(rows: int, trials: int, splits: int, metric: str, queue: Any) -> None:
    """Child process: build the matrix, warm up, time one pbo call; put figures on ``queue``."""
    import numba

    from tcp_lab.stats import pbo

    t = time.perf_counter()
    m = make_returns(rows, trials)
    generating = time.perf_counter() - t
    t = time.perf_counter()
    pbo(m[:64, :8], 4, metric, progress=False)
    first_call = time.perf_counter() - t
    reset = reset_peak()
    base = rss_mb("VmRSS")
    c0, t0 = time.process_time(), time.perf_counter()
    result = pbo(m, splits, metric, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    queue.put({"wall": wall, "cpu": cpu, "peak_mb": rss_mb(), "base_mb": base,
               "matrix_mb": m.nbytes / 2**20, "peak_reset": reset, "first_call": first_call,
               "generating": generating, "probability": result.probability,
               "combinations": result.n_combinations, "slope": result.degradation.slope,
               "threads": numba.get_num_threads()})


def naive_pbo_seconds(m: np.ndarray, splits: int, n_combos: int) -> tuple[float, int]:
    """Seconds per combination of the direct numpy implementation, and the total count."""
    blocks = np.array_split(np.arange(len(m)), splits)
    combos = list(itertools.combinations(range(splits), splits // 2))
    t = time.perf_counter()
    for train in combos[:n_combos]:
        test = [b for b in range(splits) if b not in train]
        r_in = m[np.concatenate([blocks[b] for b in train])].astype(np.float64)
        r_out = m[np.concatenate([blocks[b] for b in test])].astype(np.float64)
        is_perf = r_in.mean(axis=0) / r_in.std(axis=0, ddof=1)
        oos_perf = r_out.mean(axis=0) / r_out.std(axis=0, ddof=1)
        best = int(np.argmax(is_perf))
        v = oos_perf[best]
        rank = np.sum(oos_perf < v) + (np.sum(oos_perf == v) + 1) / 2
        math.log(rank / (len(is_perf) + 1 - rank))
    return (time.perf_counter() - t) / n_combos, len(combos)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; returns the rows."""
    ap = argparse.ArgumentParser(prog="bench_stats", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    n, s = cfg["trials"], cfg["splits"]
    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    first: dict[str, Any] = {}

    def row(label: str, t_rows: int, res: dict) -> None:
        rows.append({"run": label, "periods": t_rows, "trials": n, "splits": s,
                     "combinations": res["combinations"], "wall_s": res["wall"],
                     "cpu_s": res["cpu"], "combinations_per_s": res["combinations"] / res["wall"],
                     "matrix_mb": res["matrix_mb"], "rss_before_mb": res["base_mb"],
                     "peak_rss_mb": res["peak_mb"], "added_mb": res["peak_mb"] - res["base_mb"],
                     "pbo": res["probability"]})

    for metric in cfg["metrics"]:
        res = in_child(_measure, cfg["rows"], n, s, metric)
        first = first or res
        row(f"pbo {metric}, T={cfg['rows']:,} (float32)", cfg["rows"], res)
    small = in_child(_measure, cfg["few_rows"], n, s, "sharpe")
    row(f"pbo sharpe, T={cfg['few_rows']:,} (combinations only)", cfg["few_rows"], small)
    per_combo, total = naive_pbo_seconds(make_returns(cfg["few_rows"], n), s,
                                         cfg["naive_combos"])
    naive = per_combo * total
    rows.append({"run": f"naive numpy per combination, T={cfg['few_rows']:,} (extrapolated "
                        f"from {cfg['naive_combos']})", "periods": cfg["few_rows"], "trials": n,
                 "splits": s, "combinations": total, "wall_s": naive,
                 "combinations_per_s": 1 / per_combo,
                 "speedup": naive / small["wall"]})
    notes = (
        f"first call in a fresh process (numba cache load, or compile on the very first run): "
        f"{first['first_call']:.2f} s; numba threads {first['threads']}; peak RSS reset before "
        f"the timed call: {first['peak_reset']} (else it includes building the matrix, "
        f"{first['generating']:.0f} s, not timed).\n"
        f"synthetic returns: market factor + t(5)/normal noise + per-trial drift, all columns "
        f"distinct; PBO {first['probability']:.3f}, degradation slope {first['slope']:.3f}.\n"
        f"naive: the direct numpy implementation (gather rows, mean/std per column, rank) "
        f"costs {per_combo * 1e3:.0f} ms per combination at T={cfg['few_rows']:,}; at "
        f"T={cfg['rows']:,} each combination would read the whole matrix again.\n"
        f"load average {load:.1f} on {os.cpu_count()} CPUs at the start: timings are noisy."
    )
    report("stats", rows, quick=args.quick, notes=notes)
    return {"rows": rows}


if __name__ == "__main__":
    main()
