"""Benchmark trades -> candles: batch, chunked (bounded memory) and streaming.

Measured side by side in one run, on the same synthetic trades (a random walk
around 40,000 with ~20 trades/s, amounts lognormal, 8 decimals like an exchange):

- ``aggregate_trades(trades, "1m")`` vs pandas
  ``resample("1min", label="right", closed="right")`` (ohlc + sum + count) vs one
  plain numpy pass ``ts.sum() + price.sum() + amount.sum()`` (the memory floor:
  reading the three columns once). The candles are checked against pandas'.
- ``aggregate_trade_chunks`` over chunks generated on the fly, in a child process
  whose peak RSS is the figure (target: under 2 GB for 100M trades).
- ``StreamingAggregator`` over the default timeframes, fed DataFrame batches of
  1,000 trades and one trade at a time (``add_trade``).

Targets: >= 6x faster than pandas, within 2x of the floor, >= 1M trades/s in
batches, >= 100k trades/s one at a time. Timings are best-of-N wall clock and
noisy on a shared machine.

Usage: ``python -m benchmarks.bench_aggregate [--quick]`` (or ``python -m benchmarks
--only aggregate``); JSON goes to ``benchmarks/results/aggregate.json``
(``aggregate.quick.json`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._report import report

ROOT = Path(__file__).resolve().parents[1]
START_US = 1_704_067_200_000_000  # 2024-01-01 00:00 UTC
FULL = {"batch": 10_000_000, "chunked": 100_000_000, "chunk": 2_000_000,
        "stream": 2_000_000, "single": 300_000, "repeat": 3}
QUICK = {"batch": 200_000, "chunked": 1_000_000, "chunk": 200_000,
         "stream": 50_000, "single": 10_000, "repeat": 2}


def make_trades(n: int, rng: np.random.Generator, t0: int = START_US,
                p0: float = 40_000.0) -> dict[str, np.ndarray]:
    """``n`` trades after ``t0`` (epoch us) starting near price ``p0``; sorted by time."""
    ts = t0 + np.cumsum(rng.exponential(50_000.0, n).astype(np.int64))
    price = np.round(p0 * np.exp(np.cumsum(rng.normal(0.0, 2e-5, n))), 2)
    amount = np.round(rng.lognormal(-4.0, 1.5, n), 8) + 1e-8
    return {"ts": ts, "price": price, "amount": amount}


def to_frame(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    ts = pd.DatetimeIndex(arrays["ts"].view("datetime64[us]")).tz_localize("UTC")
    cols = {"ts": ts, "price": arrays["price"], "amount": arrays["amount"]}
    if "id" in arrays:
        cols["id"] = arrays["id"]
    return pd.DataFrame(cols)


def gen_chunks(total: int, size: int, seed: int, timer: list[float]) -> Iterator[pd.DataFrame]:
    """Trade chunks generated on the fly (time spent generating is added to ``timer[0]``)."""
    rng = np.random.default_rng(seed)
    t0, p0, done = START_US, 40_000.0, 0
    while done < total:
        t = time.perf_counter()
        arrays = make_trades(min(size, total - done), rng, t0, p0)
        t0, p0 = int(arrays["ts"][-1]), float(arrays["price"][-1])
        df = to_frame(arrays)
        del arrays
        done += len(df)
        timer[0] += time.perf_counter() - t
        yield df


def best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def pandas_candles(df: pd.DataFrame) -> pd.DataFrame:
    r = df.resample("1min", on="ts", label="right", closed="right")
    out = r["price"].ohlc()
    out["volume"] = r["amount"].sum()
    out["trade_count"] = r["price"].count()
    return out[out["trade_count"] > 0]


def bench_batch(n: int, repeat: int) -> dict:
    from tcp_lab.data.aggregate import aggregate_trades

    arrays = make_trades(n, np.random.default_rng(1))
    df = to_frame(arrays)
    aggregate_trades(df.iloc[:1000], "1m")  # load the compiled kernel (not timed)
    ts, price, amount = arrays["ts"], arrays["price"], arrays["amount"]
    t_floor, _ = best(lambda: ts.sum() + price.sum() + amount.sum(), repeat + 2)
    t_ours, ours = best(lambda: aggregate_trades(df, "1m"), repeat)
    t_pandas, theirs = best(lambda: pandas_candles(df), max(1, repeat - 1))
    ours, theirs = ours, theirs  # type: ignore[assignment]
    same_index = ours.index.equals(theirs.index.as_unit("us"))
    ohlc_equal = same_index and all(
        np.array_equal(ours[c].to_numpy(), theirs[c].to_numpy())
        for c in ("open", "high", "low", "close"))
    count_equal = same_index and np.array_equal(ours["trade_count"].to_numpy(),
                                                theirs["trade_count"].to_numpy())
    vol_o, vol_p = ours["volume"].to_numpy(), theirs["volume"].to_numpy()
    rel = float(np.max(np.abs(vol_o - vol_p) / vol_p)) if same_index and len(vol_p) else np.nan
    ids_df = df.assign(id=np.arange(n, dtype=np.int64))
    t_ids, _ = best(lambda: aggregate_trades(ids_df, "1m"), repeat)
    return {
        "trades": n, "candles": len(ours),
        "seconds": {"tcp_lab": t_ours, "tcp_lab_with_ids": t_ids, "pandas": t_pandas,
                    "numpy_floor": t_floor},
        "trades_per_s": n / t_ours,
        "speedup_vs_pandas": t_pandas / t_ours,
        "ratio_to_floor": t_ours / t_floor,
        "identical_to_pandas": {"index": bool(same_index), "ohlc": bool(ohlc_equal),
                                "trade_count": bool(count_equal),
                                "volume_exact": bool(same_index and np.array_equal(vol_o, vol_p)),
                                "volume_max_rel_diff": rel},
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB).

    Linux's ``VmHWM`` belongs to the current address space; ``ru_maxrss`` would
    carry the parent's peak over ``fork``/``exec``, so it is only the fallback.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunked_child(total: int, size: int) -> None:
    """Run in a fresh process: aggregate ``total`` trades in chunks, print JSON."""
    from tcp_lab.data.aggregate import aggregate_trade_chunks

    base_rss = peak_rss_mb()
    timer = [0.0]
    t = time.perf_counter()
    candles = aggregate_trade_chunks(gen_chunks(total, size, 7, timer), "1m", progress=True)
    wall = time.perf_counter() - t
    peak = peak_rss_mb()
    print(json.dumps({"trades": total, "chunk": size, "candles": len(candles),
                      "trade_count_sum": int(candles["trade_count"].sum()),
                      "seconds_total": wall, "seconds_generating": timer[0],
                      "seconds_aggregating": wall - timer[0],
                      "peak_rss_mb": peak, "rss_after_imports_mb": base_rss}))


def bench_chunked(total: int, size: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_aggregate", "--child-chunked", str(total),
           str(size)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["aggregating_trades_per_s"] = total / out["seconds_aggregating"]
    out["all_trades_counted"] = out["trade_count_sum"] == total
    return out


def bench_streaming(n_batch: int, n_single: int, repeat: int) -> dict:
    from tcp_lab.data.streaming import StreamingAggregator
    from tcp_lab.timeframes import TIMEFRAMES

    arrays = make_trades(max(n_batch, n_single), np.random.default_rng(3))
    arrays["id"] = np.arange(len(arrays["ts"]), dtype=np.int64) + 10**9
    df = to_frame(arrays).iloc[:n_batch]
    batches = [df.iloc[i:i + 1000] for i in range(0, n_batch, 1000)]
    singles = list(zip(*(arrays[c][:n_single].tolist() for c in ("ts", "price", "amount", "id")),
                       strict=True))
    StreamingAggregator(TIMEFRAMES).add(batches[0])  # load the compiled kernel (not timed)

    def feed_batches() -> int:
        agg, closed = StreamingAggregator(TIMEFRAMES), 0
        for b in batches:
            closed += len(agg.add(b))
        return closed

    def feed_singles() -> int:
        agg, closed = StreamingAggregator(TIMEFRAMES), 0
        add = agg.add_trade
        for ts, p, a, i in singles:
            closed += len(add(ts, p, a, i))
        return closed

    t_b, closed_b = best(feed_batches, repeat)
    t_s, closed_s = best(feed_singles, repeat)
    return {"timeframes": list(TIMEFRAMES), "batch_size": 1000,
            "batched": {"trades": n_batch, "seconds": t_b, "trades_per_s": n_batch / t_b,
                        "candles_closed": closed_b},
            "single": {"trades": n_single, "seconds": t_s, "trades_per_s": n_single / t_s,
                       "candles_closed": closed_s}}


def _rows(res: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    b, c, s = res["batch"], res["chunked"], res["streaming"]
    sec, n = b["seconds"], b["trades"]

    def row(run: str, trades: int, seconds: float, compare: str = "", target: str = "",
            met: bool | str = "") -> dict[str, Any]:
        return {"run": run, "trades": trades, "seconds": seconds,
                "trades_per_s": trades / seconds, "compare": compare, "target": target,
                "met": met}

    speedup, floor = b["speedup_vs_pandas"], b["ratio_to_floor"]
    rss = c["peak_rss_mb"]
    sb, ss = s["batched"], s["single"]
    rows = [
        row("aggregate_trades 1m", n, sec["tcp_lab"], f"{b['candles']:,} candles"),
        row("aggregate_trades 1m, id column", n, sec["tcp_lab_with_ids"]),
        row("pandas resample 1min (same data)", n, sec["pandas"],
            f"tcp_lab {speedup:.1f}x faster", ">= 6x", speedup >= 6),
        row("numpy floor: 3 column sums", n, sec["numpy_floor"],
            f"tcp_lab at {floor:.2f}x the floor", "<= 2x", floor <= 2),
        row(f"aggregate_trade_chunks 1m ({c['chunk']:,}/chunk)", c["trades"],
            c["seconds_aggregating"], f"peak RSS {rss:,.0f} MB", "< 2048 MB", rss < 2048),
        row("StreamingAggregator, batches of 1,000", sb["trades"], sb["seconds"],
            f"{len(s['timeframes'])} timeframes", ">= 1M/s", sb["trades_per_s"] >= 1e6),
        row("StreamingAggregator.add_trade, one by one", ss["trades"], ss["seconds"],
            f"{len(s['timeframes'])} timeframes", ">= 100k/s", ss["trades_per_s"] >= 1e5),
    ]
    ident = b["identical_to_pandas"]
    notes = (
        f"candles vs pandas: index {ident['index']}, OHLC identical {ident['ohlc']}, "
        f"trade_count identical {ident['trade_count']}, volume bit-identical "
        f"{ident['volume_exact']} (max relative difference {ident['volume_max_rel_diff']:.1e}: "
        "pandas sums with compensation, tcp_lab sequentially like its streaming path).\n"
        f"chunked: {c['trades']:,} trades generated on the fly in a child process "
        f"({c['seconds_generating']:.1f} s generating, not counted above; RSS after imports "
        f"{c['rss_after_imports_mb']:.0f} MB; all trades counted: {c['all_trades_counted']}).\n"
        f"streaming timeframes: {', '.join(s['timeframes'])}; trades carry ids.\n"
        f"load average {res['load_avg_1m']:.1f} on {os.cpu_count()} CPUs at the start: other "
        "processes compete for the CPU, so timings are noisy (best of several runs)."
    )
    return rows, notes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; returns the measurements."""
    ap = argparse.ArgumentParser(prog="bench_aggregate", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--child-chunked", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_chunked:
        chunked_child(*args.child_chunked)
        return {}
    sizes = QUICK if args.quick else FULL
    res = {
        "load_avg_1m": os.getloadavg()[0],
        "batch": bench_batch(sizes["batch"], sizes["repeat"]),
        "chunked": bench_chunked(sizes["chunked"], sizes["chunk"]),
        "streaming": bench_streaming(sizes["stream"], sizes["single"], sizes["repeat"]),
    }
    rows, notes = _rows(res)
    report("aggregate", rows, quick=args.quick, notes=notes)
    return res


if __name__ == "__main__":
    main()
