"""Sweeps (and batches) on a Dask cluster beside the same work in process, in one run.

Rows:

* ``sweep`` — the 8,151-combination SMA-cross grid (``fast`` 5..104 x
  ``slow`` 20..218 step 2, ``fast < slow``) on 1,000,000 candles: in process
  (numba on every core, today's default), in process with numba on one
  thread (what one single-threaded worker has), and through
  ``TCP_LAB_SCHEDULER`` on a ``LocalCluster`` of 1 and of 2 single-threaded
  worker processes. Every result is checked identical to the in-process one.
  Target: 2 workers >= 1.7x the rate of 1 worker.
* ``trivial tasks`` — the cost of one task (submit, schedule, run a no-op,
  return, progress) through :func:`tcp_lab.distributed.run_tasks`.
* ``control`` — what the machine itself allows, on the same workers: 8 tasks
  of pure CPU work (spin) and 8 of memory-bound numpy work (25 MB arrays).
  The sweep kernel reads its moving averages in cache-sized time blocks
  (:data:`tcp_lab.backtest.fused.BLOCK_BARS`), so it should scale like the
  first; streaming them from memory, it scaled like the second.
* ``batch`` — 8 runs of ``notebooks/02_backtest.ipynb`` (3,000 synthetic
  candles) one after another, in the process pool, and on the 2-worker
  cluster through the setting.

Workers are warmed up first (imports and numba's on-disk cache), as a
long-lived cluster would be; cluster start-up is reported apart. Wall times
on a shared machine: other sessions on the same cores make them noisy.

``python -m benchmarks --only distributed [--quick]`` (``--quick``: 100,000
candles, a 1,000-combination grid, no batch unless ``--batch``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

try:
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _report import report  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
FULL = {"candles": 1_000_000, "fast": range(5, 105), "slow": range(20, 220, 2), "tasks": 1000,
        "spin": 0.5, "stream": 100, "batch_runs": 8, "batch_candles": 3000}
QUICK = {"candles": 100_000, "fast": range(5, 45), "slow": range(20, 80, 2), "tasks": 200,
         "spin": 0.1, "stream": 20, "batch_runs": 2, "batch_candles": 500}
RUN_ATTRS = ("elapsed_s", "deflate_s", "combos_per_s", "n_chunks", "scheduler")


def _noop() -> None:
    return None


def _spin(seconds: float) -> None:
    """Control: pure CPU work (no memory traffic) for ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _stream(reps: int) -> None:
    """Control: memory-bound numpy work (25 MB arrays, beyond the caches)."""
    import numpy as np

    a = np.ones(25 * 2**20 // 8)
    b = np.empty_like(a)
    for _ in range(reps):
        np.multiply(a, 1.0001, out=b)


def _warm_worker() -> None:
    """Load tcp_lab and the sweep kernels (numba cache) in a worker, as later tasks will."""
    from tcp_lab.backtest.param_sweep import sweep
    from tcp_lab.testing import make_candles

    candles = make_candles(300, seed=1)
    sweep("sma_cross", candles, {"fast": [3, 4], "slow": [9]}, progress=False)


def _identical(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    except AssertionError:
        return False
    keep = [k for k in a.attrs if k not in RUN_ATTRS]
    return {k: a.attrs[k] for k in keep} == {k: b.attrs[k] for k in keep}


def _sweep_row(where: str, workers: Any, threads: Any, df: pd.DataFrame, seconds: float,
               cpu: float, reference: pd.DataFrame | None, n_candles: int) -> dict[str, Any]:
    return {"run": "sweep", "where": where, "workers": workers, "threads": threads,
            "candles": n_candles, "combos": len(df), "chunks": df.attrs["n_chunks"],
            "seconds": seconds, "per_s": len(df) / seconds, "cpu_s": cpu,
            "cores_used": cpu / seconds, "per_cpu_s": len(df) / cpu,
            "load_1m": os.getloadavg()[0],
            "identical": True if reference is None else _identical(reference, df)}


def _cpu(client: Any) -> float:
    """CPU seconds used so far by this process (client, and a local scheduler) and the workers."""
    workers = client.run(time.process_time) if client is not None else {}
    return time.process_time() + sum(workers.values())


def _timed_sweep(candles: pd.DataFrame, grid: dict,
                 client: Any = None) -> tuple[pd.DataFrame, float, float]:
    from tcp_lab.backtest.param_sweep import sweep

    cpu = _cpu(client)
    started = time.perf_counter()
    df = sweep("sma_cross", candles, grid, progress=False, deflate=0)
    return df, time.perf_counter() - started, _cpu(client) - cpu


def _batch_config(runs: int, n_candles: int) -> dict[str, Any]:
    fast = (3, 5, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45)[:runs]
    return {"name": "bench_distributed", "notebook": str(ROOT / "notebooks" / "02_backtest.ipynb"),
            "parameters": {"strategy": "sma_cross", "source": "synthetic",
                           "renderer": "plotly_mimetype", "n_synthetic": n_candles,
                           "parameters": {"slow": 50}},
            "grid": {"parameters.fast": list(fast)}, "metric": "sharpe"}


def _batch_row(where: str, workers: Any, config: dict, out: Path,
               executor: str | None) -> tuple[dict[str, Any], list]:
    from tcp_lab.batch import run_batch

    result = run_batch(config, output_dir=out, executor=executor, progress=False)
    if result.failed:
        raise RuntimeError(f"bench_distributed: batch {where} failed: {result.failed[0].error}")
    ran_on = json.loads((result.output_dir / "batch.json").read_text())["executor"]
    if executor is None and ran_on != "Client":
        raise RuntimeError(f"bench_distributed: the batch ran on {ran_on!r}, not the cluster")
    metrics = [r.metrics for r in result.records]
    return ({"run": "batch", "where": where, "workers": workers, "threads": 1,
             "combos": len(result.records), "seconds": result.seconds,
             "per_s": len(result.records) / result.seconds}, metrics)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--batch", action=argparse.BooleanOptionalAction, default=None,
                        help="include the notebook batch (default: on, off with --quick)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    with_batch = (not args.quick) if args.batch is None else args.batch

    import numba
    from distributed import LocalCluster

    from tcp_lab.distributed import Task, close_client, get_executor, run_tasks
    from tcp_lab.testing import make_candles

    candles = make_candles(cfg["candles"], seed=42)
    grid = {"fast": cfg["fast"], "slow": cfg["slow"]}
    n = len(candles)
    os.environ.pop("TCP_LAB_SCHEDULER", None)
    _warm_worker()
    rows: list[dict[str, Any]] = []

    reference, seconds, cpu = _timed_sweep(candles, grid)
    rows.append(_sweep_row("in process", "-", numba.get_num_threads(), reference, seconds, cpu,
                           None, n))
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        df, seconds, cpu = _timed_sweep(candles, grid)
    finally:
        numba.set_num_threads(previous)
    rows.append(_sweep_row("in process", "-", 1, df, seconds, cpu, reference, n))

    rates: dict[int, float] = {}
    controls: dict[str, dict[int, float]] = {}
    startup: dict[int, float] = {}
    batch_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_distributed.") as tmp:
        for workers in (1, 2):
            started = time.perf_counter()
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=":0")
            os.environ["TCP_LAB_SCHEDULER"] = cluster.scheduler_address
            try:
                client = get_executor()
                client.run(_warm_worker)
                startup[workers] = time.perf_counter() - started
                df, seconds, cpu = _timed_sweep(candles, grid, client)
                rows.append(_sweep_row("LocalCluster", workers, 1, df, seconds, cpu, reference,
                                       n))
                rates[workers] = len(df) / seconds
                tasks = [Task((), f"no-op {i}") for i in range(cfg["tasks"])]
                started = time.perf_counter()
                run_tasks(client, _noop, tasks, progress=False)
                seconds = time.perf_counter() - started
                rows.append({"run": "trivial tasks", "where": "LocalCluster", "workers": workers,
                             "threads": 1, "combos": len(tasks), "seconds": seconds,
                             "per_s": len(tasks) / seconds,
                             "ms_per_task": 1000 * seconds / len(tasks)})
                for name, fn, arg in (("control: CPU spin", _spin, cfg["spin"]),
                                      ("control: memory stream", _stream, cfg["stream"])):
                    started = time.perf_counter()
                    run_tasks(client, fn, [Task((arg,), name)] * 8, progress=False)
                    seconds = time.perf_counter() - started
                    controls.setdefault(name, {})[workers] = seconds
                    rows.append({"run": name, "where": "LocalCluster", "workers": workers,
                                 "threads": 1, "combos": 8, "seconds": seconds,
                                 "per_s": 8 / seconds})
                if with_batch and workers == 2:
                    config = _batch_config(cfg["batch_runs"], cfg["batch_candles"])
                    row, on_cluster = _batch_row("LocalCluster (setting)", 2, config,
                                                 Path(tmp) / "cluster", None)
                    batch_rows.append(row)
            finally:
                close_client()
                cluster.close()
                os.environ.pop("TCP_LAB_SCHEDULER", None)
        if with_batch:
            config = _batch_config(cfg["batch_runs"], cfg["batch_candles"])
            serial, serial_metrics = _batch_row("in process, serial", "-", config,
                                                Path(tmp) / "serial", "serial")
            pool, _ = _batch_row("process pool", os.cpu_count(), config, Path(tmp) / "pool",
                                 "process")
            batch_rows = [serial, pool, *batch_rows]
            batch_rows[-1]["identical"] = on_cluster == serial_metrics
    rows.extend(batch_rows)
    scaling = rates[2] / rates[1]
    for row in rows:
        if row["run"] == "sweep" and row["where"] == "LocalCluster":
            row["vs_1_worker"] = rates[row["workers"]] / rates[1]
            row["startup_s"] = startup[row["workers"]]
        elif row["run"] in controls:
            row["vs_1_worker"] = controls[row["run"]][1] / row["seconds"]
    cores = {r["workers"]: r["cores_used"] for r in rows
             if r["run"] == "sweep" and r["where"] == "LocalCluster"}
    notes = (f"sweep: 2 single-threaded workers run {scaling:.2f}x the rate of 1 (target >= 1.7) "
             f"and got {cores[2]:.2f} cores' worth of CPU (1 worker: {cores[1]:.2f}); "
             "controls on the same workers, 8 tasks each: CPU spin "
             f"{controls['control: CPU spin'][1] / controls['control: CPU spin'][2]:.2f}x, "
             "memory stream "
             f"{controls['control: memory stream'][1] / controls['control: memory stream'][2]:.2f}x"
             " (the machine's own limit for memory-bound work). "
             "per_s = combinations (sweep), tasks or notebook runs per second; cpu_s = CPU "
             "seconds of this process (client, local scheduler) plus the workers; cores_used = "
             "cpu_s / seconds (below the worker count: other work held the cores); per_cpu_s "
             "= combinations per CPU second (the contention-free cost); load_1m = the machine's "
             "1-minute load average after the run; startup_s = cluster start + worker warm-up, "
             f"not in 'seconds'. Wall times on a shared {os.cpu_count()}-core machine (other "
             "sessions running): noisy.")
    report("distributed", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
