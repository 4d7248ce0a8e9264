"""Parameter-sweep throughput: our numba sweep beside vectorbt, measured in one run.

The grid is the SMA cross ``fast`` 5..104 x ``slow`` 20..218 step 2 with
``fast < slow``: 8,151 combinations. Rows:

* ``sweep fused`` — :func:`tcp_lab.backtest.param_sweep.sweep` on 100,000 candles
  (the fused MA-cross kernel), the full grid;
* ``sweep generic`` — the same strategy forced through the generic path
  (``strategy.compute`` per combination + the fill kernel) on a subset;
* ``vectorbt`` — ``Portfolio.from_signals`` with the combinations as columns
  plus its total return, Sharpe, max drawdown and trade count, on a subset
  (the full grid takes minutes and gigabytes); the signals (the strategy's
  own crosses) are built before the clock starts, which favours vectorbt.
  Its full-grid time and memory are **extrapolated** linearly from the
  subset and marked so;
* ``sweep fused 1M`` — the full grid on 1,000,000 candles.

Each measurement runs in a fresh process (numba's on-disk cache warm, one
small warm-up call first) so its peak RSS is its own. Timings are wall clock
on a shared machine: other work on the same cores slows them down; the CPU
seconds are reported beside them.

Sweeps run with ``deflate=0``: the figures are the sweep's own throughput (the
deflated Sharpe ratio of the best rows adds three ``run_backtest`` calls).

Usage: ``python -m benchmarks.bench_sweep [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np

from tcp_lab.strategies.sma_cross import SmaCross

try:
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _report import report  # type: ignore[no-redef]

FULL = {"candles": 100_000, "big": 1_000_000, "vbt_subset": 200, "generic_subset": 400,
        "fast": range(5, 105), "slow": range(20, 220, 2)}
QUICK = {"candles": 20_000, "big": 50_000, "vbt_subset": 40, "generic_subset": 40,
         "fast": range(5, 25), "slow": range(20, 60, 2)}


class SmaCrossGeneric(SmaCross):
    """``sma_cross`` under another name, so the sweep takes the generic path."""

    name = "sma_cross_generic_bench"


def _grid(cfg: dict) -> list[dict[str, int]]:
    return [{"fast": f, "slow": s} for f in cfg["fast"] for s in cfg["slow"] if f < s]


def _subset(combos: list[dict], k: int) -> list[dict]:
    idx = np.linspace(0, len(combos) - 1, min(k, len(combos))).round().astype(int)
    return [combos[i] for i in idx]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _measure(kind: str, n: int, job: Any, queue: Any) -> None:
    """Child process: warm up, then time one job; put the figures on ``queue``.

    ``job`` is a list of combinations for vectorbt, ``(grid, n_random)`` for a sweep.
    """
    from tcp_lab.backtest.param_sweep import sweep
    from tcp_lab.testing import make_candles

    candles = make_candles(n, seed=42)
    if kind == "vectorbt":
        import vectorbt as vbt

        close = candles["close"].to_numpy()
        _vbt_run(vbt, close[:500], *_signals(close[:500], job[:2]))  # warm-up (numba cache)
        base = _rss_mb()
        signals = _signals(close, job)
    else:
        strategy = SmaCrossGeneric if kind == "generic" else "sma_cross"
        sweep(strategy, candles.iloc[:500], {"fast": [5], "slow": [20]}, progress=False)
        base = _rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    if kind == "vectorbt":
        total = _vbt_run(vbt, close, *signals)
        result = {(c["fast"], c["slow"]): float(t) for c, t in zip(job, total, strict=True)}
    else:
        grid, n_random = job
        df = sweep(strategy, candles, grid, n_random=n_random, progress=False, deflate=0)
        result = {(int(f), int(s)): float(t)
                  for f, s, t in zip(df["fast"], df["slow"], df["total_return"], strict=True)}
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    queue.put({"wall": wall, "cpu": cpu, "peak_mb": _rss_mb(), "base_mb": base,
               "total_return": result, "n_combos": len(result)})


def _signals(close: np.ndarray, combos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The strategy's own crosses, one column per combination (each SMA computed once)."""
    from tcp_lab.strategies.indicators import crossed_above, crossed_below, sma

    windows = {w for c in combos for w in (c["fast"], c["slow"])}
    ma = {w: sma(close, w) for w in windows}
    entries = np.column_stack([crossed_above(ma[c["fast"]], ma[c["slow"]]) for c in combos])
    exits = np.column_stack([crossed_below(ma[c["fast"]], ma[c["slow"]]) for c in combos])
    return entries, exits


def _vbt_run(vbt: Any, close: np.ndarray, entries: np.ndarray, exits: np.ndarray) -> np.ndarray:
    """One vectorbt portfolio with a column per combination, and its headline metrics."""
    pf = vbt.Portfolio.from_signals(close[:, None], entries=entries, exits=exits, size=np.inf,
                                    fees=0.001, init_cash=10_000.0, freq="1min")
    total = pf.total_return().to_numpy()
    pf.sharpe_ratio()
    pf.max_drawdown()
    pf.trades.count()
    return total


def _run(kind: str, n: int, job: Any) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(kind, n, job, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    combos = _grid(cfg)
    n, total = cfg["candles"], len(combos)
    rows: list[dict[str, Any]] = []

    def row(label: str, m: dict, n_candles: int, *, extrapolated: bool = False,
            memory_scales: bool = True) -> dict:
        rate = m["n_combos"] / m["wall"]
        r = {"run": label, "candles": n_candles, "combos": m["n_combos"],
             "wall_s": m["wall"], "cpu_s": m["cpu"], "combos_per_s": rate,
             "combos_per_cpu_s": m["n_combos"] / m["cpu"] if m["cpu"] else float("nan"),
             "peak_rss_mb": m["peak_mb"], "rss_increase_mb": m["peak_mb"] - m["base_mb"]}
        rows.append(r)
        if extrapolated:
            scale = total / m["n_combos"]
            rows.append({"run": f"{label} (extrapolated to {total:,})", "candles": n_candles,
                         "combos": total, "wall_s": m["wall"] * scale,
                         "cpu_s": m["cpu"] * scale, "combos_per_s": rate,
                         "combos_per_cpu_s": r["combos_per_cpu_s"],
                         "peak_rss_mb": m["base_mb"] + (m["peak_mb"] - m["base_mb"]) * scale
                         if memory_scales else "bounded by chunks",
                         "rss_increase_mb": (m["peak_mb"] - m["base_mb"]) * scale
                         if memory_scales else "bounded by chunks"})
        return r

    grid = {"fast": list(cfg["fast"]), "slow": list(cfg["slow"])}
    ours = _run("fused", n, (grid, None))
    row("sweep fused", ours, n)
    generic = _run("generic", n, (grid, cfg["generic_subset"]))
    row("sweep generic", generic, n, extrapolated=True, memory_scales=False)
    theirs = _run("vectorbt", n, _subset(combos, cfg["vbt_subset"]))
    row("vectorbt from_signals", theirs, n, extrapolated=True)
    big = _run("fused", cfg["big"], (grid, None))
    row("sweep fused", big, cfg["big"])

    diff = max(abs(ours["total_return"][k] - v) for k, v in theirs["total_return"].items())
    speedup = (theirs["wall"] / theirs["n_combos"]) / (ours["wall"] / ours["n_combos"])
    notes = (
        f"grid: {total:,} SMA-cross combinations; fees 0.1 %, all in, fills at close. "
        f"vectorbt and generic full-grid rows are EXTRAPOLATED linearly from their subsets "
        f"(vectorbt's signals built before its clock starts; the generic sweep's memory is "
        f"bounded by its chunks, so only its time is scaled). "
        f"Per combination our fused sweep is {speedup:,.0f}x faster than vectorbt; "
        f"max |total_return difference| on vectorbt's subset: {diff:.1e}. "
        "Wall times on a shared 2-core machine (other sessions were running); "
        "combos_per_cpu_s is the contention-free figure per core."
    )
    report("sweep", rows, quick=args.quick, notes=notes)


if __name__ == "__main__":
    main()
