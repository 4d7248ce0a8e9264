"""Backfill rate, end to end: exchange emulator -> real ccxt client -> collector -> store.

Measured per store backend (a DuckDB file, and PostgreSQL when reachable) and with
ccxt's rate limiter on (what a run against Binance obeys: ccxt spaces spot klines
requests 0.4 x 50 ms = 20 ms apart, so at most 50 pages of 1,000 candles per second) and
off (the pipeline's own speed): 1m candles of D days for S symbols, in candles stored
per second.
A first, untimed pass warms the emulator (it generates each day's trades on first use).

Run ``python -m benchmarks.bench_collect`` (full sizes: 7 days x 2 symbols, about 20,000
candles) or add ``--quick`` (6 hours x 1 symbol). PostgreSQL is taken from
``TCP_LAB_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
and works in a schema of its own, dropped afterwards. Results go to
``benchmarks/results/collect.json`` (``collect.quick.json`` for quick runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from typing import Any

import pandas as pd

from benchmarks._report import report

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _pg_server() -> tuple[str, str | None]:
    """The PostgreSQL URL, and why it cannot be used (None when it can)."""
    base = os.environ.get("TCP_LAB_BENCH_POSTGRES_URL", DEFAULT_PG)
    try:
        import psycopg2

        psycopg2.connect(base, connect_timeout=3).close()
    except Exception as e:  # noqa: BLE001 - reported as a skipped row
        return base, f"unreachable ({' '.join(str(e).split())[:80]})"
    return base, None


def _with_schema(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def _drop_schema(base: str, schema: str) -> None:
    import psycopg2

    conn = psycopg2.connect(base, connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


def _backfill(emu: Any, url: str, symbols: tuple[str, ...], since: pd.Timestamp,
              until: pd.Timestamp, rate_limit: bool) -> dict[str, Any]:
    from tcp_lab.data.collector import DataCollector

    options = {"config": {"enableRateLimit": rate_limit}}
    with DataCollector(url, bus=False, exchange_url=emu.base_url, provider_options=options,
                       progress=False) as c:
        t0 = time.perf_counter()
        summary = c.backfill(list(symbols), "1m", since=since, until=until)
        seconds = time.perf_counter() - t0
    return {"candles": summary.candles, "requests": summary.requests,
            "seconds": round(seconds, 3), "candles_per_s": round(summary.candles / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_collect")
    parser.add_argument("--quick", action="store_true", help="6 hours of one symbol")
    parser.add_argument("--days", type=float, default=None, help="days of 1m candles (7)")
    args = parser.parse_args(argv)
    days = args.days if args.days is not None else (0.25 if args.quick else 7.0)
    symbols = SYMBOLS[:1] if args.quick else SYMBOLS

    from tcp_lab.data.emulator import EmulatorServer

    now = pd.Timestamp.now("UTC").floor("1min")
    genesis = now - pd.Timedelta(days=days) - pd.Timedelta("10min")
    since, until = genesis, now - pd.Timedelta("5min")
    rows: list[dict[str, Any]] = []
    pg_base, pg_note = _pg_server()
    backends = ["duckdb"] + ([] if pg_note else ["postgresql"])
    with EmulatorServer(symbols=symbols, seed=1, genesis=genesis, weight_limit=None) as emu, \
            tempfile.TemporaryDirectory() as tmp:
        cold = _backfill(emu, "duckdb:///:memory:", symbols, since, until, rate_limit=False)
        rows.append({"backend": "duckdb (memory)", "rate_limiter": "off, emulator cold",
                     **cold})
        for backend in backends:
            for rate_limit in (False, True):  # a fresh store for each run
                schema = f"tcp_lab_bench_{uuid.uuid4().hex[:10]}"
                url = (f"duckdb:///{tmp}/{schema}.duckdb" if backend == "duckdb"
                       else _with_schema(pg_base, schema))
                try:
                    res = _backfill(emu, url, symbols, since, until, rate_limit)
                finally:
                    if backend == "postgresql":
                        _drop_schema(pg_base, schema)
                rows.append({"backend": backend, "rate_limiter": "on" if rate_limit else "off",
                             **res})
    if pg_note:
        rows.append({"backend": "postgresql", "rate_limiter": "-", "candles": 0,
                     "requests": 0, "seconds": 0.0, "candles_per_s": 0.0, "note": pg_note})
    notes = (f"1m candles of {days:g} day(s) x {len(symbols)} symbol(s), 1,000 per request, "
             "emulator on 127.0.0.1 (same machine, shared CPU). rate limiter on = ccxt's "
             "spacing for Binance spot klines (20 ms per request, not binding at these rates).")
    report("collect", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
