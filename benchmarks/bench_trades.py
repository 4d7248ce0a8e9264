"""Backtests resolved on market trades: the engine beside a plain numpy pass, streamed from the
store, and a sweep of stops on trades; measured side by side in one run.

Rows:

* ``numpy pass`` — ``price.sum()`` and ``ts.max()`` over the trades: what merely reading
  them costs (the reference; target: the engine within 2x of it);
* ``engine in memory`` — the per-candle index of the trades (one pass) and the engine
  with a stop-loss, take-profit and trailing stop over all candles (only candles whose
  trades can reach a level are scanned), single-threaded: trades per second per core
  (target: 100M/s);
* ``run_backtest(trades="store")`` — the same backtest streamed from a DuckDB store a
  chunk of candles at a time, in a fresh process: time and peak memory (target: under
  2 GB; the chunks bound it whatever the number of trades);
* ``sweep on trades`` — the SMA grid of the sweep benchmark times 5 stop-loss levels,
  with a take-profit, resolved on the trades (target: 2,500 combinations per second).

Trades are a random walk with exponential gaps (bursts and quiet stretches), prices
rounded to 8 decimals; candles (1m, close-time stamps) are built from them.

Usage: ``python -m benchmarks.bench_trades [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    from benchmarks._report import report
except ImportError:  # run as a script from benchmarks/
    from _report import report  # type: ignore[no-redef]

FULL = {"trades": 100_000_000, "store_trades": 100_000_000, "sweep_candles": 100_000,
        "fast": range(5, 105), "slow": range(20, 220, 2)}
QUICK = {"trades": 2_000_000, "store_trades": 500_000, "sweep_candles": 10_000,
         "fast": range(5, 15), "slow": range(20, 40, 2)}
#: Trades per 1m candle of :func:`market` (a mean gap of 0.6 s).
PER_CANDLE = 100
STOPS = [0.002, 0.004, 0.006, 0.008, 0.01]
LEVELS = dict(stop_loss=0.004, take_profit=0.008, trailing_stop=0.003)
MINUTE_US = 60_000_000


def market(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` trades: int64 µs times (about 100 a minute), 8-decimal prices, amounts."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(600_000.0, n)  # mean 0.6 s, bursts and lulls
    ts = 1_704_067_200_000_000 + np.cumsum(gaps).astype(np.int64)
    price = np.round(40_000.0 * np.exp(np.cumsum(rng.normal(0.0, 6e-5, n))), 8)
    amount = np.round(rng.lognormal(-4.0, 1.0, n), 8)
    return ts, price, amount


def candles_of(ts: np.ndarray, price: np.ndarray, amount: np.ndarray):
    """1m candles stamped by close time (a minute without trades has no candle)."""
    import pandas as pd

    from tcp_lab.execution.trades import bar_index_nb

    first = (ts[0] // MINUTE_US + 1) * MINUTE_US
    grid = np.arange(first, ts[-1] + MINUTE_US, MINUTE_US, dtype=np.int64)
    lo, hi, low, high = bar_index_nb(grid, ts, price)
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    volume = np.add.reduceat(amount, lo) if len(lo) else np.zeros(0)
    index = pd.DatetimeIndex(grid[keep].astype("datetime64[us]"), name="ts").tz_localize("UTC")
    return pd.DataFrame({"open": price[lo], "high": high[keep], "low": low[keep],
                         "close": price[hi - 1], "volume": volume,
                         "trade_count": hi - lo}, index=index)


def _best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def in_memory_rows(n: int, repeat: int) -> list[dict[str, Any]]:
    import numba

    from tcp_lab.backtest.engine import simulate_output
    from tcp_lab.backtest.trade_source import TradeArrays
    from tcp_lab.execution import TradingOptions
    from tcp_lab.execution.trades import bar_index_nb
    from tcp_lab.strategies import check_output, get_strategy

    ts, price, amount = market(n)
    candles = candles_of(ts, price, amount)
    strategy = get_strategy("sma_cross", {"fast": 10, "slow": 30})
    output = check_output(strategy.compute(candles), candles, "sma_cross")
    opts = TradingOptions(**LEVELS)
    bar_ts = candles.index.as_unit("us").asi8
    none = np.zeros(0)

    def engine() -> Any:
        lo, hi, low, high = bar_index_nb(bar_ts, ts, price)
        return simulate_output(candles, output, opts,
                               [(0, len(candles), TradeArrays(price, none, none, lo, hi, low,
                                                              high))])

    threads = numba.get_num_threads()
    t_numpy = _best(lambda: (float(price.sum()), int(ts.max())), repeat)
    t_all = _best(engine, repeat)
    numba.set_num_threads(1)
    try:
        t_one = _best(engine, repeat)
    finally:
        numba.set_num_threads(threads)
    n_trips = len(engine()[3])
    row = {"trades": n, "candles": len(candles), "round_trips": n_trips}
    return [
        {"case": "numpy pass over ts and price", **row, "seconds": t_numpy,
         "trades_per_s": n / t_numpy},
        {"case": "engine, one core (index + stop, target, trailing)", **row, "seconds": t_one,
         "trades_per_s": n / t_one, "vs_numpy": t_one / t_numpy},
        {"case": f"engine, {threads} threads (the index pass in parallel)", **row,
         "seconds": t_all, "trades_per_s": n / t_all, "vs_numpy": t_all / t_numpy},
    ]


def _store_child(url: str, n: int, queue: Any) -> None:
    from tcp_lab.backtest import run_backtest
    from tcp_lab.store import open_store

    with open_store(url) as store:
        candles = store.load_candles("bench", "BTC/USDT", "1m")
    base = _peak_mb()
    t = time.perf_counter()
    r = run_backtest("sma_cross", candles, parameters={"fast": 10, "slow": 30},
                     trades="store", exchange="bench", symbol="BTC/USDT", **LEVELS)
    queue.put({"seconds": time.perf_counter() - t, "base_mb": base, "peak_mb": _peak_mb(),
               "round_trips": len(r.trades)})


def _peak_mb() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would count the
    parent's memory at fork, which survives exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_row(n: int, folder: Path) -> dict[str, Any]:
    import os

    import pandas as pd

    from tcp_lab.store import open_store

    ts, price, amount = market(n, seed=1)
    candles = candles_of(ts, price, amount)
    url = f"duckdb:///{folder / 'trades.duckdb'}"
    with open_store(url) as store:
        store.save_candles(candles, "bench", "BTC/USDT", "1m")
        step = 5_000_000
        for a in range(0, n, step):
            b = min(a + step, n)
            store.save_raw_trades(pd.DataFrame({
                "ts": pd.DatetimeIndex(ts[a:b].astype("datetime64[us]")).tz_localize("UTC"),
                "id": np.arange(a, b, dtype=np.int64), "price": price[a:b],
                "amount": amount[a:b]}), "bench", "BTC/USDT")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_store_child, args=(url, n, queue))
    before = os.environ.get("TCP_LAB_DATABASE_URL")
    os.environ["TCP_LAB_DATABASE_URL"] = url  # trades="store" reads the default store
    try:
        child.start()
    finally:  # the child has its copy; this process keeps its own setting
        if before is None:
            del os.environ["TCP_LAB_DATABASE_URL"]
        else:
            os.environ["TCP_LAB_DATABASE_URL"] = before
    out = queue.get(timeout=3600)
    child.join()
    return {"case": 'run_backtest(trades="store"), streamed', "trades": n,
            "candles": len(candles), "seconds": out["seconds"],
            "trades_per_s": n / out["seconds"], "peak_rss_mb": round(out["peak_mb"], 1),
            "round_trips": out["round_trips"]}


def sweep_row(cfg: dict) -> dict[str, Any]:
    from tcp_lab.backtest.param_sweep import sweep

    n = cfg["sweep_candles"] * PER_CANDLE
    ts, price, amount = market(n, seed=2)
    import pandas as pd

    candles = candles_of(ts, price, amount)
    trades = pd.DataFrame({"ts": pd.DatetimeIndex(ts.astype("datetime64[us]")).tz_localize(
        "UTC"), "price": price, "amount": amount})
    grid = {"fast": list(cfg["fast"]), "slow": list(cfg["slow"]), "stop_loss": STOPS,
            "take_profit": [0.01]}
    sweep("sma_cross", candles.iloc[:2000], {"fast": [5], "slow": [20], "stop_loss": [0.01]},
          trades=trades, progress=False)  # compile
    t = time.perf_counter()
    df = sweep("sma_cross", candles, grid, trades=trades, progress=False, deflate=0)
    wall = time.perf_counter() - t
    return {"case": "sweep on trades: SMA grid x 5 stop-losses, take-profit", "trades": n,
            "candles": len(candles), "combos": len(df), "seconds": wall,
            "combos_per_s": len(df) / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_trades", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:  # first, while this process is small
        streamed = store_row(cfg["store_trades"], Path(tmp))
    rows = in_memory_rows(cfg["trades"], 2 if args.quick else 3)
    rows.append(streamed)
    rows.append(sweep_row(cfg))
    one, every = rows[1], rows[2]
    notes = (f"engine {one['trades_per_s'] / 1e6:,.0f}M trades/s on one core (target 100M); "
             f"{every['vs_numpy']:.2f}x the numpy pass with every core (target <= 2); streamed "
             f"from the store: peak {rows[3]['peak_rss_mb']:,.0f} MB (target < 2,048); sweep "
             f"on trades {rows[4]['combos_per_s']:,.0f} combos/s (target 2,500)"
             f"{' (quick sizes: not the target cases)' if args.quick else ''}.")
    report("trades", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
