"""Backtest speed: run_backtest vs raw vectorbt, and vectorized vs the per-bar loop.

Measured side by side in one run:

* SMA(10)/SMA(30) on 1,000,000 1m candles, indicators included:
  ``run_backtest`` (tz-aware UTC candles in, tz-aware results out, tcp_lab's
  execution engine), the same with a stop-loss, take-profit and trailing stop,
  raw vectorbt with numpy inputs (target: ``run_backtest`` at most 0.5x of it),
  raw vectorbt with a tz-aware pandas index.
* The design's per-bar loop (``process_data(candles[:t+1])`` for every ``t``)
  on 2,000 and 4,000 candles vs ``run_backtest`` on the same candles.

``python -m benchmarks.bench_backtest [--quick]``; JSON goes to
``benchmarks/results/backtest.json`` (``backtest.quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benchmarks._report import report

TARGET_S = 0.3
#: run_backtest at most this fraction of raw vectorbt's numpy-path time (same run).
TARGET_RATIO = 0.5


def _time(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call (JIT, caches)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_vectorbt(close: np.ndarray | pd.Series) -> float:
    import vectorbt as vbt

    fast = vbt.MA.run(close, 10).ma
    slow = vbt.MA.run(close, 30).ma
    entries = fast.vbt.crossed_above(slow)
    exits = fast.vbt.crossed_below(slow)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, init_cash=10_000.0,
                                    freq="1min")
    return float(np.asarray(pf.total_return()).reshape(-1)[0])


def _per_bar_loop(strategy: Any, candles: pd.DataFrame) -> int:
    actions = 0
    for t in range(len(candles)):
        actions += strategy.process_data(candles.iloc[: t + 1]).action != "hold"
    return actions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_backtest", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per row")
    args = parser.parse_args(argv)

    import vectorbt as vbt

    from tcp_lab.backtest import run_backtest
    from tcp_lab.strategies import get_strategy
    from tcp_lab.testing import make_candles

    n_big = 20_000 if args.quick else 1_000_000
    loop_sizes = (200, 400) if args.quick else (2_000, 4_000)
    repeat = args.repeat or (2 if args.quick else 5)
    strategy = get_strategy("sma_cross", {"fast": 10, "slow": 30})
    candles = make_candles(n_big, "1m", seed=0)
    close_np = candles["close"].to_numpy()
    close_tz = candles["close"]
    rows: list[dict[str, Any]] = []
    engine_before = vbt.settings["engine"]
    try:
        from importlib.metadata import version

        engine = f"{engine_before}: rust (vectorbt-rust {version('vectorbt-rust')})"
    except ImportError:
        engine = f"{engine_before}: numba (vectorbt-rust not installed)"

    steps = tqdm(total=5 + 2 * len(loop_sizes), desc="bench_backtest", leave=False)
    try:
        r = run_backtest(strategy, candles)
        t = _time(lambda: run_backtest(strategy, candles), repeat)
        rows.append({"case": "run_backtest (tz-aware UTC candles)", "candles": n_big,
                     "engine": "tcp_lab.execution", "seconds": t,
                     "trades": r.metrics["n_trades"]})
        steps.update()
        levels = dict(stop_loss=0.01, take_profit=0.02, trailing_stop=0.005)
        r = run_backtest(strategy, candles, **levels)
        t = _time(lambda: run_backtest(strategy, candles, **levels), repeat)
        rows.append({"case": "run_backtest with stop, target and trailing stop",
                     "candles": n_big, "engine": "tcp_lab.execution", "seconds": t,
                     "trades": r.metrics["n_trades"]})
        steps.update()
        t = _time(lambda: _raw_vectorbt(close_np), repeat)
        rows.append({"case": "raw vectorbt, numpy inputs", "candles": n_big,
                     "engine": engine, "seconds": t})
        steps.update()
        t = _time(lambda: _raw_vectorbt(close_tz), 1)
        rows.append({"case": "raw vectorbt, tz-aware pandas index", "candles": n_big,
                     "engine": engine, "seconds": t})
        steps.update(2)
        for n in loop_sizes:
            small = candles.iloc[:n]
            vec = _time(lambda small=small: run_backtest(strategy, small), repeat)
            steps.update()
            loop = _time(lambda small=small: _per_bar_loop(strategy, small), 1)
            steps.update()
            rows.append({"case": "per-bar loop process_data(candles[:t+1])", "candles": n,
                         "seconds": loop, "vectorized_seconds": vec, "speedup": loop / vec})
    finally:
        vbt.settings["engine"] = engine_before
        steps.close()

    main_row, reference = rows[0], rows[2]
    ratio = main_row["seconds"] / reference["seconds"]
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    notes = (
        f"run_backtest on {n_big:,} candles: {main_row['seconds']:.3f} s = {ratio:.2f}x raw "
        f"vectorbt's numpy path ({reference['seconds']:.3f} s), {verdict} the "
        f"{TARGET_RATIO}x target{' (quick sizes: not the target case)' if args.quick else ''}; "
        "wall-clock medians on a shared machine, compare rows of the same run only."
    )
    report("backtest", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
