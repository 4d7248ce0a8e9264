"""Store throughput on DuckDB and PostgreSQL, each beside its raw engine in the same run.

Measured per backend, end to end through :class:`tcp_lab.store.Store` (validation
included) and with the bare engine doing the same work:

* bulk write of N fresh candles (rows/s) — raw: DuckDB ``INSERT`` from the
  DataFrame into a table with the same primary key; PostgreSQL binary ``COPY``
  of the same rows into such a table;
* all-conflict upsert of the same N candles, identical and with changed values
  (rows/s) — raw: the engine's own ``INSERT … ON CONFLICT DO UPDATE``;
* L live single-candle writes, each committed (writes/s) — raw: one-row
  ``INSERT … ON CONFLICT`` + commit;
* a range read of R candles into a DataFrame (ms, best of 5) — raw: the
  driver's own fetch (DuckDB ``.df()``, psycopg2 ``fetchall``) into a DataFrame.

Run ``python -m benchmarks.bench_store`` (full sizes: N=1,000,000, L=1,000,
R=100,000) or add ``--quick``. PostgreSQL is taken from ``TCP_LAB_BENCH_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``); it works in a schema of
its own, dropped afterwards, and its rows are reported as skipped when the
server is unreachable. Results go to ``benchmarks/results/store.json``
(``store.quick.json`` for quick runs).
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._report import report

KEY = ("binance", "BTC/USDT", "1m")
COLS = ("open", "high", "low", "close", "volume", "trade_count")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TARGETS = {  # (backend, measurement) -> (comparison, value)
    ("duckdb", "bulk write, fresh"): (">=", 400_000),
    ("postgresql", "bulk write, fresh"): (">=", 150_000),
    ("duckdb", "range read"): ("<", 150),
    ("postgresql", "range read"): ("<", 500),
    ("postgresql", "live single-candle writes"): (">=", 500),
}
UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in (*COLS, "vwap"))
RAW_DDL = (
    "CREATE TABLE raw_market_data (exchange {t} NOT NULL, symbol {t} NOT NULL, "
    "timeframe {t} NOT NULL, ts TIMESTAMP WITH TIME ZONE NOT NULL, open DOUBLE PRECISION "
    "NOT NULL, high DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL, close DOUBLE "
    "PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL, trade_count BIGINT NOT NULL, vwap "
    "DOUBLE PRECISION, PRIMARY KEY (exchange, symbol, timeframe, ts))"
)
RAW_UPSERT = ("INSERT INTO raw_market_data SELECT {src} ON CONFLICT "
              "(exchange, symbol, timeframe, ts) DO UPDATE SET " + UPSERT_SET)
PG_EPOCH_US = 946_684_800_000_000


def make_candles(n: int, start: str = "2020-01-01 00:01", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.abs(rng.standard_normal(n).cumsum() * 0.1)
    open_ = close + rng.standard_normal(n) * 0.05
    spread = rng.random(n) * 0.5
    idx = pd.DatetimeIndex(pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq="1min")
                           .as_unit("us"), name="ts", freq=None)
    return pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread + 1e-9, "close": close,
        "volume": rng.random(n) * 10, "trade_count": rng.integers(0, 100, n)}, index=idx)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_ms(fn: Callable[[], Any], repeat: int = 5) -> float:
    return min(timed(fn) for _ in range(repeat)) * 1000


def full_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The candles with their key columns, as the raw engines ingest them."""
    out = df.reset_index()
    out.insert(0, "timeframe", KEY[2])
    out.insert(0, "symbol", KEY[1])
    out.insert(0, "exchange", KEY[0])
    out["vwap"] = np.nan
    return out


def store_measurements(store, df: pd.DataFrame, changed: pd.DataFrame, live: int,
                       read: int) -> dict[str, float]:
    n = len(df)
    out = {"bulk write, fresh": n / timed(lambda: store.save_candles(df, *KEY))}
    out["upsert, identical rows"] = n / timed(lambda: store.save_candles(df, *KEY))
    out["upsert, changed values"] = n / timed(lambda: store.save_candles(changed, *KEY))
    a, b = df.index[n // 2], df.index[n // 2 + read - 1]
    got = store.load_candles(*KEY, start=a, end=b)
    assert len(got) == read, (len(got), read)
    out["range read"] = best_ms(lambda: store.load_candles(*KEY, start=a, end=b))
    tail = make_candles(live, start=str(df.index[-1] + pd.Timedelta(minutes=1))[:19], seed=9)
    rows = [tail.iloc[[i]] for i in range(live)]

    def live_writes() -> None:
        for row in rows:
            store.save_candles(row, *KEY)

    out["live single-candle writes"] = live / timed(live_writes)
    return out


def duckdb_raw(path: str, df: pd.DataFrame, changed: pd.DataFrame, live: int,
               read: int) -> dict[str, float]:
    import duckdb

    con = duckdb.connect(path)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(RAW_DDL.format(t="VARCHAR"))
    frame, frame2 = full_frame(df), full_frame(changed)
    con.register("bench_fresh", frame)
    con.register("bench_changed", frame2)
    n = len(df)
    out = {"bulk write, fresh": n / timed(
        lambda: con.execute("INSERT INTO raw_market_data SELECT * FROM bench_fresh"))}
    out["upsert, identical rows"] = n / timed(
        lambda: con.execute(RAW_UPSERT.format(src="* FROM bench_fresh")))
    out["upsert, changed values"] = n / timed(
        lambda: con.execute(RAW_UPSERT.format(src="* FROM bench_changed")))
    a, b = df.index[n // 2].to_pydatetime(), df.index[n // 2 + read - 1].to_pydatetime()
    query = ("SELECT ts, open, high, low, close, volume, trade_count, vwap FROM raw_market_data "
             "WHERE exchange = ? AND symbol = ? AND timeframe = ? AND ts BETWEEN ? AND ? "
             "ORDER BY ts")
    out["range read"] = best_ms(lambda: con.execute(query, [*KEY, a, b]).df())
    start = df.index[-1]
    sql = RAW_UPSERT.format(src="?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL")

    def live_writes() -> None:
        for i in range(live):
            ts = (start + pd.Timedelta(minutes=i + 1)).to_pydatetime()
            con.execute(sql, [*KEY, ts, 1.0, 2.0, 0.5, 1.5, 3.0, 4])

    out["live single-candle writes"] = live / timed(live_writes)
    con.close()
    return out


def _pg_binary(frame: pd.DataFrame) -> bytes:
    """The rows as one binary COPY payload (fixed-width: the key strings are constant)."""
    texts = [(c, len(str(frame[c].iloc[0]).encode())) for c in ("exchange", "symbol", "timeframe")]
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for c, size in texts:
        fields += [(f"l_{c}", ">i4"), (c, f"S{size}")]
    fields += [("l_ts", ">i4"), ("ts", ">i8")]
    for c in COLS:
        fields += [(f"l_{c}", ">i4"), (c, ">i8" if c == "trade_count" else ">f8")]
    fields += [("l_vwap", ">i4")]  # NULL: length -1, no data
    rows = np.empty(len(frame), dtype=fields)
    rows["n"] = 11
    for c, size in texts:
        rows[f"l_{c}"], rows[c] = size, str(frame[c].iloc[0]).encode()
    rows["l_ts"] = 8
    rows["ts"] = frame["ts"].to_numpy(dtype="datetime64[us]").view("i8") - PG_EPOCH_US
    for c in COLS:
        rows[f"l_{c}"], rows[c] = 8, frame[c].to_numpy()
    rows["l_vwap"] = -1
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + rows.tobytes() + b"\xff\xff"


def postgres_raw(dsn: str, schema: str, df: pd.DataFrame, changed: pd.DataFrame, live: int,
                 read: int) -> dict[str, float]:
    import psycopg2

    conn = psycopg2.connect(dsn, options=f"-c search_path={schema}")
    cur = conn.cursor()
    cur.execute(RAW_DDL.format(t='TEXT COLLATE "C"'))
    conn.commit()
    fresh, upd = _pg_binary(full_frame(df)), _pg_binary(full_frame(changed))
    n = len(df)

    def copy(payload: bytes, upsert: bool) -> None:
        if upsert:
            cur.execute("CREATE TEMP TABLE bench_stage (LIKE raw_market_data) ON COMMIT DROP")
            cur.copy_expert("COPY bench_stage FROM STDIN (FORMAT binary)", io.BytesIO(payload),
                            size=1 << 20)
            cur.execute(RAW_UPSERT.format(src="* FROM bench_stage"))
        else:
            cur.copy_expert("COPY raw_market_data FROM STDIN (FORMAT binary)",
                            io.BytesIO(payload), size=1 << 20)
        conn.commit()

    out = {"bulk write, fresh": n / timed(lambda: copy(fresh, False))}
    out["upsert, identical rows"] = n / timed(lambda: copy(fresh, True))
    out["upsert, changed values"] = n / timed(lambda: copy(upd, True))
    a, b = df.index[n // 2].to_pydatetime(), df.index[n // 2 + read - 1].to_pydatetime()
    query = ("SELECT ts, open, high, low, close, volume, trade_count, vwap FROM raw_market_data "
             "WHERE exchange = %s AND symbol = %s AND timeframe = %s AND ts BETWEEN %s AND %s "
             "ORDER BY ts")

    def fetch() -> pd.DataFrame:
        cur.execute(query, (*KEY, a, b))
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])

    out["range read"] = best_ms(fetch)
    conn.commit()
    start = df.index[-1]
    sql = RAW_UPSERT.format(src="%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL")

    def live_writes() -> None:
        for i in range(live):
            ts = (start + pd.Timedelta(minutes=i + 1)).to_pydatetime()
            cur.execute(sql, (*KEY, ts, 1.0, 2.0, 0.5, 1.5, 3.0, 4))
            conn.commit()

    out["live single-candle writes"] = live / timed(live_writes)
    conn.close()
    return out


def run_duckdb(df, changed, live, read) -> dict[str, dict[str, float]]:
    from tcp_lab.store import open_store

    with tempfile.TemporaryDirectory(prefix="tcp_lab_bench_") as tmp:
        with open_store(f"duckdb:///{tmp}/store.duckdb") as store:
            ours = store_measurements(store, df, changed, live, read)
        raw = duckdb_raw(f"{tmp}/raw.duckdb", df, changed, live, read)
    return {"store": ours, "raw": raw}


def run_postgres(url: str, df, changed, live, read) -> dict[str, dict[str, float]] | str:
    import psycopg2

    from tcp_lab.store import open_store

    try:
        psycopg2.connect(url, connect_timeout=3).close()
    except psycopg2.Error as e:
        return f"skipped: PostgreSQL not reachable ({str(e).strip().splitlines()[0]})"
    schema = f"tcp_lab_bench_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in url else "?"
    try:
        with open_store(f"{url}{sep}schema={schema}") as store:
            ours = store_measurements(store, df, changed, live, read)
        raw = postgres_raw(url, schema, df, changed, live, read)
    finally:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()
    return {"store": ours, "raw": raw}


UNITS = {"bulk write, fresh": "rows/s", "upsert, identical rows": "rows/s",
         "upsert, changed values": "rows/s", "range read": "ms",
         "live single-candle writes": "writes/s"}


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend, res in results.items():
        for name, unit in UNITS.items():
            target = TARGETS.get((backend, name))
            row: dict[str, Any] = {"backend": backend, "measurement": name, "unit": unit}
            if isinstance(res, str):
                row |= {"tcp_lab": "skipped", "raw engine": "skipped", "status": res}
            else:
                ours = res["store"][name]
                row |= {"tcp_lab": round(ours, 1), "raw engine": round(res["raw"][name], 1)}
                if target:
                    ok = ours >= target[1] if target[0] == ">=" else ours < target[1]
                    row["status"] = f"{'meets' if ok else 'MISSES'} {target[0]} {target[1]:,}"
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the store benchmark; print a table and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_store",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--postgres-url",
                        default=os.environ.get("TCP_LAB_BENCH_POSTGRES_URL", DEFAULT_PG))
    args = parser.parse_args(argv)
    n, live, read = (20_000, 50, 5_000) if args.quick else (1_000_000, 1_000, 100_000)

    from tqdm.auto import tqdm

    df = make_candles(n)
    changed = df.assign(volume=df["volume"] + 1.0, trade_count=df["trade_count"] + 1)
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    for backend in tqdm(["duckdb", "postgresql"], desc="store benchmark", leave=False):
        if backend == "duckdb":
            results[backend] = run_duckdb(df, changed, live, read)
        else:
            results[backend] = run_postgres(args.postgres_url, df, changed, live, read)
    notes = (f"{n:,} candles, {live:,} live writes, {read:,}-row range reads. Load average "
             f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} "
             "CPUs: wall-clock figures, noisy when the machine is shared. Upserts rewrite all "
             "N rows (identical, then with new volume/trade_count).")
    report("store", _rows(results), quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
