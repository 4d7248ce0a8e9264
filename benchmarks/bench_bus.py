"""Bus latency and throughput: in-process fakeredis vs Redis, side by side.

For each backend:

- latency: one candle message at a time, publish -> handler called (encode,
  transport, decode included), p50/p99 over ``--latency`` messages;
- throughput: ``--throughput`` messages published back to back; publish rate
  and end-to-end rate (first publish to last handler call).

Redis is the server at ``--redis-url`` (default ``$TCP_LAB_TEST_REDIS_URL`` or
``redis://127.0.0.1:6379/0``) under a unique prefix; its row is skipped with a
note when it is unreachable.

Usage: ``python -m benchmarks.bench_bus [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid

import numpy as np
import pandas as pd

from benchmarks._report import report
from tcp_lab.bus import CandleMessage, market_channel, open_bus
from tcp_lab.errors import ServiceError

SIZES = {"full": {"latency": 2_000, "throughput": 20_000},
         "quick": {"latency": 100, "throughput": 1_000}}
CHANNEL = market_channel("BTC/USDT")


def _candle(i: int) -> CandleMessage:
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(minutes=i + 1)
    return CandleMessage(exchange="binance", symbol="BTC/USDT", timeframe="1m", ts=ts,
                         open=100.0, high=101.0, low=99.0, close=100.5, volume=12.0,
                         trade_count=42, vwap=100.2)


def _measure(url: str, n_latency: int, n_throughput: int) -> dict[str, float]:
    msgs = [_candle(i) for i in range(max(n_latency, n_throughput))]
    received = threading.Semaphore(0)
    stamps: list[float] = []

    def handler(_msg: CandleMessage) -> None:
        stamps.append(time.perf_counter())
        received.release()

    with open_bus(url) as bus, bus.subscribe(CHANNEL, handler=handler):
        for m in msgs[:20]:  # warm-up: connections, code paths
            bus.publish(CHANNEL, m)
            received.acquire(timeout=10)
        stamps.clear()
        latencies = []
        for m in msgs[:n_latency]:
            start = time.perf_counter()
            bus.publish(CHANNEL, m)
            if not received.acquire(timeout=10):
                raise RuntimeError(f"{url}: a message was not delivered within 10 s")
            latencies.append(stamps[-1] - start)
        stamps.clear()
        start = time.perf_counter()
        for m in msgs[:n_throughput]:
            bus.publish(CHANNEL, m)
        published = time.perf_counter()
        for _ in range(n_throughput):
            if not received.acquire(timeout=30):
                raise RuntimeError(f"{url}: only {len(stamps)} of {n_throughput} delivered")
        lat_us = np.asarray(latencies) * 1e6
        return {
            "latency_p50_us": float(np.percentile(lat_us, 50)),
            "latency_p99_us": float(np.percentile(lat_us, 99)),
            "publish_msgs_per_s": n_throughput / (published - start),
            "end_to_end_msgs_per_s": n_throughput / (stamps[-1] - start),
        }


def main(argv: list[str] | None = None) -> int:
    """Run the bus benchmark; print the table and write ``benchmarks/results/bus.json``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bus")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--redis-url", default=os.environ.get(
        "TCP_LAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    prefix = f"tcp_lab_bench_{uuid.uuid4().hex[:8]}:"
    sep = "&" if "?" in args.redis_url else "?"
    backends = {
        "memory (fakeredis)": f"memory://bench-{uuid.uuid4().hex[:8]}",
        "redis": f"{args.redis_url}{sep}prefix={prefix}",
    }
    rows, notes = [], []
    for name, url in backends.items():
        try:
            figures = _measure(url, size["latency"], size["throughput"])
        except ServiceError as e:
            notes.append(f"{name} skipped: {e}")
            continue
        rows.append({"backend": name, "latency_n": size["latency"],
                     "throughput_n": size["throughput"], **figures})
    notes.append("one process, handler in the listener thread; candle messages "
                 "(encode + decode included); wall clock on a shared machine")
    report("bus", rows, quick=args.quick, notes="\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
