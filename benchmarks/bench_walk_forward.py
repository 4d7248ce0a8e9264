"""Walk-forward cost: ``walk_forward`` beside the plain ``sweep`` of the same grid, one run.

The grid is the SMA cross ``fast`` 5..104 x ``slow`` 20..218 step 2 with
``fast < slow``: 8,151 combinations, on 1,000,000 1m candles. Rows:

* ``sweep`` — :func:`tcp_lab.sweep` of the grid over all the candles (the
  fused kernel), the reference;
* ``walk-forward train = test`` — :func:`tcp_lab.walk_forward`, 10 rolling
  folds, train and test windows of n/11 candles each (the train windows
  together cover the history once, as the sweep does);
* ``walk-forward train = 2 x test`` — 10 rolling folds, train n/6 and test
  n/12 candles (the train windows cover the history 1.67 times).

A walk-forward sweeps every train window (with the strategy's warm-up before
it) and then trades the test windows as one account; ``sweep_s`` is the part
spent in the train sweeps, ``vs_sweep`` the wall-time ratio to the plain
sweep (the issue's target: within 2x). Each measurement runs in a fresh
process (numba's on-disk cache warm, one small warm-up call first) so its
peak RSS is its own; wall times on a shared machine are noisy, CPU seconds
are reported beside them.

Usage: ``python -m benchmarks.bench_walk_forward [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from typing import Any

try:
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _report import report  # type: ignore[no-redef]

FULL = {"candles": 1_000_000, "fast": range(5, 105), "slow": range(20, 220, 2), "folds": 10}
QUICK = {"candles": 50_000, "fast": range(5, 25), "slow": range(20, 60, 2), "folds": 10}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _measure(kind: str, n: int, grid: dict, windows: tuple[int, int] | None, queue: Any) -> None:
    """Child process: warm up, then time one sweep or walk-forward; put figures on ``queue``."""
    import tcp_lab
    from tcp_lab.testing import make_candles

    candles = make_candles(n, seed=42)
    small = {"fast": [5, 10], "slow": [20, 40]}
    tcp_lab.sweep("sma_cross", candles.iloc[:2000], small, progress=False)
    tcp_lab.walk_forward("sma_cross", candles.iloc[:2000], small, train=800, test=400,
                         progress=False)
    base = _rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    out: dict[str, Any] = {}
    if kind == "sweep":
        df = tcp_lab.sweep("sma_cross", candles, grid, progress=False, deflate=0)
        out["n_combos"] = len(df)
    else:
        train, test = windows
        wf = tcp_lab.walk_forward("sma_cross", candles, grid, train=train, test=test,
                                  progress=False)
        out |= {"n_combos": int(wf.folds["n_combos"].iat[0]), "folds": len(wf.folds),
                "sweep_s": wf.settings["sweep_s"], "oos_candles": len(wf.equity),
                "swept_candles": int(wf.folds["n_train"].sum()),
                "flat_folds": int(wf.metrics["n_flat_folds"]),
                "oos_sharpe": float(wf.metrics["sharpe"])}
    out |= {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "peak_mb": _rss_mb(), "base_mb": base}
    queue.put(out)


def _run(kind: str, n: int, grid: dict, windows: tuple[int, int] | None = None) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(kind, n, grid, windows, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_walk_forward",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    n, k = cfg["candles"], cfg["folds"]
    grid = {"fast": list(cfg["fast"]), "slow": list(cfg["slow"])}
    rows: list[dict[str, Any]] = []

    plain = _run("sweep", n, grid)
    rows.append({"run": "sweep", "candles": n, "combos": plain["n_combos"], "folds": "-",
                 "train": "-", "test": "-", "swept_candles": n, "wall_s": plain["wall"],
                 "cpu_s": plain["cpu"], "sweep_s": plain["wall"], "vs_sweep": 1.0,
                 "peak_rss_mb": plain["peak_mb"],
                 "rss_increase_mb": plain["peak_mb"] - plain["base_mb"]})
    for label, (train, test) in (("walk-forward train = test", (n // (k + 1), n // (k + 1))),
                                 ("walk-forward train = 2 x test", (n // 6, n // 12))):
        m = _run("walk_forward", n, grid, (train, test))
        rows.append({"run": label, "candles": n, "combos": m["n_combos"], "folds": m["folds"],
                     "train": train, "test": test, "swept_candles": m["swept_candles"],
                     "wall_s": m["wall"], "cpu_s": m["cpu"], "sweep_s": m["sweep_s"],
                     "vs_sweep": m["wall"] / plain["wall"], "peak_rss_mb": m["peak_mb"],
                     "rss_increase_mb": m["peak_mb"] - m["base_mb"],
                     "oos_sharpe": m["oos_sharpe"], "flat_folds": m["flat_folds"]})
    worst = max(r["vs_sweep"] for r in rows[1:])
    notes = (
        f"grid: {plain['n_combos']:,} SMA-cross combinations on {n:,} 1m candles; fees 0.1 %, "
        f"all in, fills at close, selection by sharpe with min_trades=10. Target (issue #14): "
        f"a {k}-fold walk-forward within 2x the plain sweep's wall time; worst ratio here "
        f"{worst:.2f}x. swept_candles counts the train windows (without their warm-up); "
        "sweep_s is the time in the train sweeps, the rest is fold bookkeeping and the "
        "out-of-sample account. Wall times on a shared 2-core machine (other sessions were "
        "running); compare rows of this run, and cpu_s for the contention-free cost."
    )
    report("walk_forward", rows, quick=args.quick, notes=notes)


if __name__ == "__main__":
    main()
