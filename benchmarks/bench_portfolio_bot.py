"""Portfolio bot: the time of one close time, against ``run_portfolio`` on the same candles.

10 symbols × 2,000 1m candles (synthetic, one seed each, same close times) in a
DuckDB file, SMA(10)/SMA(30), ``sizing="equal"``, ``max_positions=5``, measured side by
side in one run:

* a :class:`~tcp_lab.bots.PortfolioBot` replaying every close time from the store as a
  live bot does (each close time: the strategy on every symbol's trailing window, the
  portfolio driver for one row, the records written in one transaction): the time per
  close time, median and p99, with and without the records' write (a host writes them
  for all its bots together);
* ``run_portfolio`` over the same candles (the reference: all close times in one call),
  and the check that both give the same equity.

There is no target in the issue for this; the figure says how much of a candle's
interval a portfolio bot of this size uses.

Usage: ``python -m benchmarks.bench_portfolio_bot [--quick]`` (or ``python -m benchmarks
--only portfolio_bot``); JSON goes to ``benchmarks/results/portfolio_bot.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _report import report  # type: ignore[no-redef]

FULL = {"symbols": 10, "candles": 2_000}
QUICK = {"symbols": 3, "candles": 300}
PARAMS = {"fast": 10, "slow": 30}
OPTIONS = {"sizing": "equal", "max_positions": 5, "fees": 0.001}


def _config(symbols: list[str], name: str) -> Any:
    from tcp_lab.bots import BotConfig

    return BotConfig(name=name, strategy="sma_cross", parameters=PARAMS, exchange="binance",
                     symbols=symbols, timeframe="1m", start="earliest", **OPTIONS)


class _Discard:
    """A record sink that keeps nothing (the time of the decisions and fills alone)."""

    def record(self, bot: Any, record: Any) -> None:
        pass

    def publish(self, bot: Any, channel: str, message: Any) -> None:
        pass


def _replay(store: Any, config: Any, sink: Any) -> tuple[np.ndarray, Any]:
    from tcp_lab.bots import PortfolioBot

    bot = PortfolioBot(config, store)
    bot.sink = sink
    times: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    bot.on_progress = tick
    bot.catch_up()
    return np.array(times[1:]), bot  # the first interval holds the read of the candles


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_portfolio_bot", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args(argv)
    from tcp_lab import open_store, run_portfolio
    from tcp_lab.testing import make_candles

    cfg = QUICK if args.quick else FULL
    n_s, n_c = cfg["symbols"], cfg["candles"]
    universe = {f"S{k:02d}/USDT": make_candles(n_c, "1m", seed=k, start_price=100.0 + k)
                for k in range(n_s)}
    symbols = sorted(universe)
    load = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, \
            open_store(f"duckdb:///{Path(tmp) / 'bench.duckdb'}") as store:
        for s, c in universe.items():
            store.save_candles(c, "binance", s, "1m")
        run_portfolio("sma_cross", {s: universe[s].iloc[:200] for s in symbols[:2]},
                      parameters=PARAMS, **OPTIONS)  # compile / load the kernels
        _replay(store, _config(symbols[:2], "warm"), _Discard())
        t0 = time.perf_counter()
        reference = run_portfolio("sma_cross", universe, parameters=PARAMS, **OPTIONS)
        wall_ref = time.perf_counter() - t0
        for label, sink, name in (("portfolio bot, records written", None, "written"),
                                  ("portfolio bot, records discarded", _Discard(), "discarded")):
            times, bot = _replay(store, _config(symbols, name), sink)
            row = {"case": label, "symbols": n_s, "close_times": len(times),
                   "wall_s": float(times.sum()), "p50_ms": float(np.median(times) * 1e3),
                   "p99_ms": float(np.quantile(times, 0.99) * 1e3),
                   "per_symbol_us": float(np.median(times) * 1e6 / n_s)}
            if sink is None:
                equity = store.load_performance(name)["equity"].to_numpy()
                row["same_equity_as_run_portfolio"] = bool(
                    np.array_equal(equity, reference.equity.to_numpy()))
            rows.append(row)
        rows.append({"case": "run_portfolio (reference), all close times in one call",
                     "symbols": n_s, "close_times": len(reference.equity),
                     "wall_s": wall_ref,
                     "p50_ms": wall_ref * 1e3 / len(reference.equity)})
    quick = " (quick sizes)" if args.quick else ""
    notes = (f"a portfolio bot of {n_s} symbols takes {rows[0]['p50_ms']:.2f} ms per close "
             f"time (p99 {rows[0]['p99_ms']:.2f} ms) with its records written, "
             f"{rows[1]['p50_ms']:.2f} ms without; run_portfolio "
             f"{rows[2]['p50_ms'] * 1e3:.1f} µs per close time{quick}.\n"
             f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs "
             "at the start: wall times on a shared machine are noisy.")
    report("portfolio_bot", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
