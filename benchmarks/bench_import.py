"""``tcp-lab data import`` of a Binance aggTrades CSV beside DuckDB's own ``read_csv``.

Writes an aggTrades CSV of N rows (Binance's spot layout, no header, prices and
quantities with 8 decimals, times in ms), then times in one run:

* DuckDB ``CREATE TABLE … AS SELECT * FROM read_csv(…)`` of the file into a
  fresh DuckDB file (the engine alone: parse and store, no validation, no key);
* DuckDB ``INSERT INTO`` a table shaped like ``raw_trades`` (exchange, symbol,
  ts, id, price, amount, side) ``SELECT … FROM read_csv(…)``, without and with
  its primary key (what an index on every trade costs the engine itself);
* ``tcp-lab data import FILE`` into a fresh DuckDB file (parse, validate, write
  only trades not stored yet), end to end through the CLI, in process;
* the same import again (every trade already stored: nothing written).

Target (issue): at least 3M trades/s for the first import. Run ``python -m
benchmarks.bench_import`` (N=10,000,000, a ~0.8 GB file in a temporary
directory) or add ``--quick`` (200,000 rows). Results go to
``benchmarks/results/import.json`` (``import.quick.json`` for quick runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import report

TARGET = 3_000_000  # trades/s, first import into DuckDB
T0_MS = 1_704_067_200_000


def write_aggtrades(path: Path, n: int, seed: int = 0, block: int = 1_000_000) -> None:
    """An aggTrades CSV of ``n`` rows as data.binance.vision writes them."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    price_e8, ms = 4_200_000_000_000, T0_MS
    options = pcsv.WriteOptions(include_header=False, quoting_style="none")

    def decimals(units: np.ndarray) -> pa.Array:  # 1e-8 units -> "42000.00007582"
        whole = pc.cast(pa.array(units // 10**8), pa.string())
        frac = pc.utf8_lpad(pc.cast(pa.array(units % 10**8), pa.string()), 8, "0")
        return pc.binary_join_element_wise(whole, frac, ".")

    with pcsv.CSVWriter(path, pa.schema([(c, pa.string() if c in "pq" else
                                          pa.bool_() if c in "mb" else pa.int64())
                                         for c in "apqfltmb"]), write_options=options) as w:
        for start in range(0, n, block):
            k = min(block, n - start)
            ids = np.arange(3_000_000_000 + start, 3_000_000_000 + start + k, dtype=np.int64)
            prices = price_e8 + np.cumsum(rng.integers(-100_000, 100_001, k))
            times = ms + np.cumsum(rng.integers(0, 20, k))
            price_e8, ms = int(prices[-1]), int(times[-1])
            w.write_table(pa.table({
                "a": ids, "p": decimals(prices), "q": decimals(rng.integers(1, 10**8, k)),
                "f": ids * 3, "l": ids * 3 + 2, "t": times, "m": rng.random(k) < 0.5,
                "b": np.ones(k, dtype=bool)}))


COLUMNS = ("{'id': 'BIGINT', 'price': 'DOUBLE', 'qty': 'DOUBLE', 'first_id': 'BIGINT', "
           "'last_id': 'BIGINT', 'time': 'BIGINT', 'buyer_maker': 'BOOLEAN', "
           "'best_match': 'BOOLEAN'}")
RAW_TRADES = ("CREATE TABLE raw_trades (exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, "
              "ts TIMESTAMPTZ NOT NULL, id BIGINT NOT NULL, price DOUBLE, amount DOUBLE, "
              "side VARCHAR{key})")


def raw_insert(path: Path) -> str:
    """DuckDB's own load of the file into the ``raw_trades`` shape."""
    return ("INSERT INTO raw_trades SELECT 'binance', 'BTC/USDT', make_timestamp(time * 1000), "
            "id, price, qty, CASE WHEN buyer_maker THEN 'sell' ELSE 'buy' END FROM read_csv("
            f"'{path}', header = false, columns = {COLUMNS})")


def duckdb_sql(db: Path, setup: list[str], sql: str) -> float:
    """Seconds DuckDB takes to run ``sql`` (after ``setup``) in a fresh file ``db``."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for stmt in setup:
            con.execute(stmt)
        t0 = time.perf_counter()
        con.execute(sql)
        return time.perf_counter() - t0
    finally:
        con.close()


def tcp_lab_import(path: Path, url: str) -> float:
    import tcp_lab.data.importer  # noqa: F401 - module imports are not the import's time
    import tcp_lab.store._duckdb  # noqa: F401
    from tcp_lab.cli import main

    t0 = time.perf_counter()
    status = main(["data", "import", str(path), "--exchange", "binance", "--url", url,
                   "--no-progress"])
    if status != 0:
        raise RuntimeError(f"tcp-lab data import exited with {status}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Run the import benchmark; print a table and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_import",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows (a smoke run)")
    parser.add_argument("--rows", type=int, help="rows in the file (default 10,000,000)")
    args = parser.parse_args(argv)
    n = args.rows or (200_000 if args.quick else 10_000_000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tcp_lab_bench_") as tmp:
        path = Path(tmp) / "BTCUSDT-aggTrades-2024-01-01.csv"
        t0 = time.perf_counter()
        write_aggtrades(path, n)
        print(f"wrote {n:,} rows ({path.stat().st_size / 1e6:,.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        load_before = os.getloadavg()[0]
        base = duckdb_sql(Path(tmp) / "raw.duckdb", [], "CREATE TABLE t AS SELECT * FROM "
                          f"read_csv('{path}', header = false, columns = {COLUMNS})")
        nokey = duckdb_sql(Path(tmp) / "nokey.duckdb", [RAW_TRADES.format(key="")],
                           raw_insert(path))
        key = duckdb_sql(Path(tmp) / "key.duckdb", [RAW_TRADES.format(
            key=", PRIMARY KEY (exchange, symbol, ts, id)")], raw_insert(path))
        url = f"duckdb:///{tmp}/store.duckdb"
        first = tcp_lab_import(path, url)
        again = tcp_lab_import(path, url)
        from tcp_lab.store import open_store

        with open_store(url) as store:
            stored = store.info()["tables"]["raw_trades"]
        if stored != n:
            raise RuntimeError(f"{stored:,} trades stored, expected {n:,}")
    for case, seconds in (("DuckDB read_csv -> table", base),
                          ("DuckDB read_csv -> raw_trades shape, no key", nokey),
                          ("DuckDB read_csv -> raw_trades shape, primary key", key),
                          ("tcp-lab data import, fresh DuckDB file", first),
                          ("tcp-lab data import again (all stored)", again)):
        row: dict[str, Any] = {"case": case, "rows": n, "seconds": round(seconds, 3),
                               "rows/s": round(n / seconds), "vs read_csv": round(base / seconds,
                                                                                  2)}
        if case.endswith("fresh DuckDB file"):
            row["status"] = f"{'meets' if n / seconds >= TARGET else 'MISSES'} >= {TARGET:,}"
        rows.append(row)
    notes = (f"{n:,}-row Binance aggTrades CSV. Load average {load_before:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs: wall-clock figures, "
             "noisy when the machine is shared; 'vs read_csv' is the engine's time over ours.")
    report("import", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
