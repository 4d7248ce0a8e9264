"""Portfolio backtest speed and memory: one ``run_portfolio`` vs one ``run_backtest`` per symbol.

100 symbols × 100,000 1m candles (synthetic, one seed per symbol, same close
times), SMA(10)/SMA(30), fees 0.1 %, measured side by side in one run:

* ``run_portfolio`` on the whole universe, one account with shared cash
  (``sizing="fixed_value"``, 100 quote per entry out of 1,000,000: cash never runs
  short, so it is the sum of the 100 separate backtests);
* 100 separate ``run_backtest`` calls on the same candles (the reference).

Target (issue 15): the portfolio at most 2× the time of the 100 runs, under 2 GB.

Each case runs in a fresh process: it builds the universe, warms the compiled
kernels up on a small universe (numba's on-disk cache, or a compile on the very first
run), resets the peak-RSS mark (``/proc/self/clear_refs``), then times one call;
``peak_rss_mb`` is that call's peak (the process holds the candles:
``rss_before_mb``), ``added_mb`` what the call adds.

Usage: ``python -m benchmarks.bench_portfolio [--quick]`` (or ``python -m benchmarks
--only portfolio``); JSON goes to ``benchmarks/results/portfolio.json``
(``portfolio.quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

try:
    from benchmarks._memory import in_child, reset_peak, rss_mb
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _memory import in_child, reset_peak, rss_mb  # type: ignore[no-redef]
    from _report import report  # type: ignore[no-redef]

FULL = {"symbols": 100, "candles": 100_000}
QUICK = {"symbols": 5, "candles": 5_000}
#: run_portfolio at most this many times the 100 separate runs (same run), under this RSS.
TARGET_RATIO = 2.0
TARGET_MB = 2048
PARAMS = {"fast": 10, "slow": 30}
OPTIONS = {"fees": 0.001}
PORTFOLIO = {"sizing": "fixed_value", "size": 100.0, "init_cash": 1_000_000.0}


def make_universe(n_symbols: int, n_candles: int) -> dict[str, Any]:
    """``n_symbols`` synthetic 1m series on the same close times, one seed each."""
    from tcp_lab.testing import make_candles

    return {f"S{k:03d}/USDT": make_candles(n_candles, "1m", seed=k, start_price=100.0 + k)
            for k in range(n_symbols)}


def _portfolio(universe: dict[str, Any]) -> dict[str, Any]:
    from tcp_lab import run_portfolio

    r = run_portfolio("sma_cross", universe, parameters=PARAMS, **OPTIONS, **PORTFOLIO)
    return {"trades": int(r.metrics["n_trades"]), "pnl": float(r.equity.iloc[-1]
                                                               - PORTFOLIO["init_cash"])}


def _separate(universe: dict[str, Any]) -> dict[str, Any]:
    from tcp_lab.backtest import run_backtest
    from tcp_lab.strategies import get_strategy

    strategy = get_strategy("sma_cross", PARAMS)
    trades = 0
    for candles in universe.values():
        r = run_backtest(strategy, candles, **OPTIONS)
        trades += int(r.metrics["n_trades"])
    return {"trades": trades}


def _measure(case: str, n_symbols: int, n_candles: int, queue: Any) -> None:
    """Child process: build the universe, warm up, time one call; put figures on ``queue``."""
    import gc

    fn = {"portfolio": _portfolio, "separate": _separate}[case]
    t = time.perf_counter()
    universe = make_universe(n_symbols, n_candles)
    generating = time.perf_counter() - t
    t = time.perf_counter()
    fn(make_universe(2, 500))
    first_call = time.perf_counter() - t
    gc.collect()
    reset = reset_peak()
    base = rss_mb("VmRSS")
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(universe)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    queue.put(out | {"wall": wall, "cpu": cpu, "peak_mb": rss_mb(), "base_mb": base,
                     "peak_reset": reset, "first_call": first_call, "generating": generating})


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_portfolio", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    n_s, n_c = cfg["symbols"], cfg["candles"]
    load = os.getloadavg()
    rows: list[dict[str, Any]] = []
    res = {}
    for case, label in (("portfolio", f"run_portfolio, {n_s} symbols, one account"),
                        ("separate", f"{n_s} separate run_backtest calls")):
        r = res[case] = in_child(_measure, case, n_s, n_c)
        rows.append({"case": label, "symbols": n_s, "candles_per_symbol": n_c,
                     "wall_s": r["wall"], "cpu_s": r["cpu"], "rss_before_mb": r["base_mb"],
                     "peak_rss_mb": r["peak_mb"], "added_mb": r["peak_mb"] - r["base_mb"],
                     "round_trips": r["trades"]})
    ratio = res["portfolio"]["wall"] / res["separate"]["wall"]
    peak = res["portfolio"]["peak_mb"]
    time_ok = "meets" if ratio <= TARGET_RATIO else "MISSES"
    mem_ok = "meets" if peak <= TARGET_MB else "MISSES"
    quick = " (quick sizes: not the target case)" if args.quick else ""
    notes = (
        f"run_portfolio {res['portfolio']['wall']:.2f} s = {ratio:.2f}x the {n_s} separate "
        f"runs ({res['separate']['wall']:.2f} s): {time_ok} the {TARGET_RATIO}x target; peak "
        f"RSS {peak:,.0f} MB: {mem_ok} the {TARGET_MB} MB target{quick}.\n"
        f"round trips: portfolio {res['portfolio']['trades']:,}, separate "
        f"{res['separate']['trades']:,} (equal: cash never runs short).\n"
        f"first call in a fresh process: {res['portfolio']['first_call']:.2f} s (portfolio), "
        f"{res['separate']['first_call']:.2f} s (separate); peak RSS reset before the timed "
        f"call: {res['portfolio']['peak_reset']}; building the universe "
        f"{res['portfolio']['generating']:.1f} s (not timed).\n"
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs at "
        "the start: wall times on a shared machine are noisy, compare rows of the same run."
    )
    report("portfolio", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
