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

Each round runs every case once, into fresh files; ``--repeat`` rounds (3) give
the medians reported, with each case's CPU seconds (steadier than wall-clock
time on a shared machine) and its runs.

Target (issue): at least 3M trades/s for the first import. Run ``python -m
benchmarks.bench_import`` (N=10,000,000, a ~0.8 GB file in a temporary
directory) or add ``--quick`` (200,000 rows). Results go to
``benchmarks/results/import.json`` (``import.quick.json`` for quick runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def _clock() -> tuple[float, float]:
    """Wall-clock and CPU seconds (every thread of this process, DuckDB's included)."""
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def duckdb_sql(db: Path, setup: list[str], sql: str) -> tuple[float, float]:
    """Wall and CPU seconds DuckDB takes to run ``sql`` (after ``setup``) in a fresh file."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for stmt in setup:
            con.execute(stmt)
        start = _clock()
        con.execute(sql)
        return _since(start)
    finally:
        con.close()


def tcp_lab_import(path: Path, url: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``tcp-lab data import FILE --url URL``, in process."""
    import tcp_lab.data.importer  # noqa: F401 - module imports are not the import's time
    import tcp_lab.store._duckdb  # noqa: F401
    from tcp_lab.cli import main

    start = _clock()
    status = main(["data", "import", str(path), "--exchange", "binance", "--url", url,
                   "--no-progress"])
    if status != 0:
        raise RuntimeError(f"tcp-lab data import exited with {status}")
    return _since(start)


CASES = ("DuckDB read_csv -> table", "DuckDB read_csv -> raw_trades shape, no key",
         "DuckDB read_csv -> raw_trades shape, primary key",
         "tcp-lab data import, fresh DuckDB file", "tcp-lab data import again (all stored)")


def _one_round(path: Path, n: int, tmp: Path) -> dict[str, tuple[float, float]]:
    """Every case once, each into a fresh DuckDB file under ``tmp``."""
    from tcp_lab.store import open_store

    out = {CASES[0]: duckdb_sql(tmp / "raw.duckdb", [], "CREATE TABLE t AS SELECT * FROM "
                                f"read_csv('{path}', header = false, columns = {COLUMNS})"),
           CASES[1]: duckdb_sql(tmp / "nokey.duckdb", [RAW_TRADES.format(key="")],
                                raw_insert(path)),
           CASES[2]: duckdb_sql(tmp / "key.duckdb", [RAW_TRADES.format(
               key=", PRIMARY KEY (exchange, symbol, ts, id)")], raw_insert(path))}
    url = f"duckdb:///{tmp}/store.duckdb"
    out[CASES[3]] = tcp_lab_import(path, url)
    out[CASES[4]] = tcp_lab_import(path, url)
    with open_store(url) as store:
        stored = store.info()["tables"]["raw_trades"]
    if stored != n:
        raise RuntimeError(f"{stored:,} trades stored, expected {n:,}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the import benchmark; print a table and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_import",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows (a smoke run)")
    parser.add_argument("--rows", type=int, help="rows in the file (default 10,000,000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every case, interleaved; medians are reported (3)")
    args = parser.parse_args(argv)
    n = args.rows or (200_000 if args.quick else 10_000_000)
    runs: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="tcp_lab_bench_") as tmp:
        path = Path(tmp) / "BTCUSDT-aggTrades-2024-01-01.csv"
        t0 = time.perf_counter()
        write_aggtrades(path, n)
        print(f"wrote {n:,} rows ({path.stat().st_size / 1e6:,.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        loads = [os.getloadavg()[0]]
        for _ in range(max(args.repeat, 1)):
            with tempfile.TemporaryDirectory(dir=tmp) as round_dir:
                for case, timing in _one_round(path, n, Path(round_dir)).items():
                    runs[case].append(timing)
            loads.append(os.getloadavg()[0])
    base = statistics.median(wall for wall, _ in runs[CASES[0]])
    rows: list[dict[str, Any]] = []
    for case in CASES:
        seconds = statistics.median(wall for wall, _ in runs[case])
        row: dict[str, Any] = {
            "case": case, "rows": n, "seconds": round(seconds, 3), "rows/s": round(n / seconds),
            "vs read_csv": round(base / seconds, 2),
            "cpu s": round(statistics.median(cpu for _, cpu in runs[case]), 2),
            "runs (s)": [round(wall, 2) for wall, _ in runs[case]]}
        if case == CASES[3]:
            row["status"] = f"{'meets' if n / seconds >= TARGET else 'MISSES'} >= {TARGET:,}"
        rows.append(row)
    notes = (f"{n:,}-row Binance aggTrades CSV; medians of {len(runs[CASES[0]])} rounds, the "
             "cases interleaved in each. Load average "
             f"{' -> '.join(f'{x:.1f}' for x in loads)} (before, after each round) on "
             f"{os.cpu_count()} CPUs: wall-clock figures are noisy when the machine is shared; "
             "'cpu s' (all threads) is steadier. 'vs read_csv' is the engine's time over ours.")
    report("import", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
