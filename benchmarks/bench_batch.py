"""Batch speed: the same backtest notebooks run one after another vs in a process pool.

Measured side by side in one run: ``notebooks/02_backtest.ipynb`` on small
synthetic data (3,000 1m candles), 8 parameter sets (``--quick``: 2 runs on 500
candles without plotly.js in the files),
through :func:`tcp_lab.batch.run_batch` with ``executor="serial"`` and with
the process pool (one worker per core). Each run starts its own Jupyter
kernel and exports its HTML, so the figures are mostly kernel start-up,
imports and nbconvert: what a user of ``tcp-lab batch`` waits for.

``python -m benchmarks.bench_batch [--quick]``; JSON goes to
``benchmarks/results/batch.json`` (``batch.quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._report import report

ROOT = Path(__file__).resolve().parents[1]
FAST = (3, 5, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45)


def _config(runs: int, n_candles: int, renderer: str) -> dict[str, Any]:
    return {
        "name": "bench",
        "notebook": str(ROOT / "notebooks" / "02_backtest.ipynb"),
        "parameters": {"strategy": "sma_cross", "source": "synthetic", "renderer": renderer,
                       "n_synthetic": n_candles, "parameters": {"slow": 50}},
        "grid": {"parameters.fast": list(FAST[:runs])},
        "metric": "sharpe",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs (smoke run)")
    parser.add_argument("--runs", type=int, default=None, help=f"runs (max {len(FAST)})")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: cores)")
    args = parser.parse_args(argv)

    from tcp_lab.batch import run_batch

    runs = min(args.runs or (2 if args.quick else 8), len(FAST))
    workers = args.workers or os.cpu_count() or 1
    # --quick: tiny data, a smoke run of the machinery
    n_candles = 500 if args.quick else 3000
    renderer = "plotly_mimetype"  # the notebooks' default: figures as JSON, no plotly.js inside
    config = _config(runs, n_candles, renderer)
    rows: list[dict[str, Any]] = []
    serial_s = None
    with tempfile.TemporaryDirectory(prefix="bench_batch.") as tmp:
        for mode, pool in (("serial", 1), ("process pool", workers)):
            result = run_batch(config, output_dir=Path(tmp) / mode.replace(" ", "_"),
                               executor="serial" if pool == 1 else "process",
                               max_workers=pool, progress=False)
            if result.failed:
                raise RuntimeError(f"bench_batch: {mode} run failed: {result.failed[0].error}")
            seconds = result.seconds
            serial_s = serial_s or seconds
            rows.append({
                "mode": mode,
                "runs": runs,
                "workers": min(pool, runs),
                "seconds": seconds,
                "s_per_run": seconds / runs,
                "speedup": serial_s / seconds,
                "mean_run_s": sum(r.seconds for r in result.records) / runs,
            })
    report("batch", rows, quick=args.quick,
           notes=f"notebook 02_backtest.ipynb, {n_candles} synthetic 1m candles per run, "
                 f"renderer {renderer}, HTML export on; {os.cpu_count()} core(s). Each run "
                 "starts a kernel and imports vectorbt; mean_run_s is one run's own wall time.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
