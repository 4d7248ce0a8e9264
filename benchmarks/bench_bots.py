"""Bot latency: candle close -> signal -> fill recorded, for 1 and for many bots on one symbol.

For each backend (the embedded default: a DuckDB file + ``memory://``, bots as
threads; PostgreSQL + Redis, bots as OS processes) and each bot count, a
:class:`~tcp_lab.bots.BotManager` runs the bots (``sma_cross`` 2/3 on a
zigzag price, so *every* candle fills: the slowest path). The benchmark then,
one candle at a time, stores the candle (as the collector does), publishes it
on ``market:BTC/USDT`` and waits for every bot's signal message. A bot
publishes its signal only after it recorded the signal, the fill, the
performance snapshot and its state, so publish -> signal received is the
candle-close -> trade-recorded latency. p50/p99/max over bots x candles.

A second table splits one bot's per-candle work (strategy + broker vs store
writes) on each backend.

PostgreSQL and Redis are ``$TCP_LAB_TEST_POSTGRES_URL`` / ``$TCP_LAB_TEST_REDIS_URL``
(defaults: the local servers), under a private schema and key prefix; those
rows are skipped with a note when a server is unreachable.

Usage: ``python -m benchmarks.bench_bots [--quick] [--backends embedded services]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._report import report
from tcp_lab.bots import Bot, BotConfig, BotManager, RestartPolicy
from tcp_lab.bus import CandleMessage, market_channel, open_bus, signals_pattern
from tcp_lab.errors import TcpLabError
from tcp_lab.store import open_store

SIZES = {"full": {"bots": (1, 50), "candles": 120, "split": 200},
         "quick": {"bots": (1, 3), "candles": 4, "split": 20}}
EXCHANGE, SYMBOL, TIMEFRAME = "binance", "BTC/USDT", "1m"
POSTGRES = os.environ.get("TCP_LAB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TCP_LAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = pd.Timestamp("2024-01-01", tz="UTC")
WARMUP = 5  # candles processed before timing the split
#: The manager runs in this process, beside the subscriber that times the signals: its
#: supervision pass (store reads each poll) would hold the GIL while a signal arrives, a
#: cost of measuring here, not of the candle path (`tcp-lab bots serve` is a process of
#: its own). It still starts, places and stops the bots; it just does not poll meanwhile.
POLL_S = 60.0


def zigzag(n: int, start: int = 0) -> pd.DataFrame:
    """Candles whose close alternates 100/102: SMA(2) crosses SMA(3) on every candle."""
    i = np.arange(start, start + n)
    close = np.where(i % 2 == 0, 100.0, 102.0) + i * 1e-3
    open_ = np.where(i % 2 == 0, 102.0, 100.0) + i * 1e-3
    index = pd.DatetimeIndex(T0 + pd.to_timedelta(i + 1, unit="min"), name="ts").as_unit("us")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.5,
                         "low": np.minimum(open_, close) - 0.5, "close": close,
                         "volume": np.full(n, 10.0), "trade_count": np.full(n, 5)}, index=index)


def config(i: int) -> BotConfig:
    return BotConfig(name=f"bench{i:03d}", strategy="sma_cross",
                     parameters={"fast": 2, "slow": 3}, exchange=EXCHANGE, symbol=SYMBOL,
                     timeframe=TIMEFRAME, start="latest", fees=0.001, slippage=0.0005)


def _pcts(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def _latency(store_url: str, bus_url: str, n_bots: int, n_candles: int, runner: str,
             log_dir: Path) -> dict[str, float]:
    history = zigzag(50)
    policy = RestartPolicy(heartbeat_interval=30.0, hang_timeout=600.0, stuck_timeout=600.0)
    with open_store(store_url) as store, open_bus(bus_url) as bus:
        store.save_candles(history, EXCHANGE, SYMBOL, TIMEFRAME)
        received: dict[pd.Timestamp, list[float]] = {}
        lock = threading.Lock()
        done = threading.Condition(lock)

        def on_signal(msg) -> None:
            now = time.perf_counter()
            with lock:
                stamps = received.setdefault(msg.ts, [])
                stamps.append(now)
                if len(stamps) >= n_bots:  # wake the publisher once, not once per signal
                    done.notify_all()

        manager = BotManager(store_url if runner == "process" else store,
                             bus_url if runner == "process" else bus, runner=runner,
                             policy=policy, poll_interval=POLL_S, log_dir=log_dir)
        with bus.subscribe(patterns=[signals_pattern()], handler=on_signal):
            manager.start()
            try:
                for i in range(n_bots):
                    manager.start_bot(config(i))
                deadline = time.monotonic() + 60 + 3 * n_bots
                while not all(r["status"] == "running" and pd.notna(r["heartbeat"])
                              for r in store.list_bots().to_dict("records")) or \
                        len(store.list_bots()) < n_bots:
                    if time.monotonic() > deadline:
                        raise TimeoutError("bots did not start")
                    time.sleep(0.2)
                lat: list[float] = []
                cpu = _CpuMeter()
                for k, msg in enumerate(CandleMessage.from_candles(
                        zigzag(n_candles + 1, start=50), exchange=EXCHANGE, symbol=SYMBOL,
                        timeframe=TIMEFRAME)):
                    store.save_candles(zigzag(1, start=50 + k), EXCHANGE, SYMBOL, TIMEFRAME)
                    t0 = time.perf_counter()
                    bus.publish(market_channel(SYMBOL), msg)
                    with lock:
                        ok = done.wait_for(lambda m=msg: len(received.get(m.ts, ())) >= n_bots,
                                           timeout=120)
                        stamps = list(received.get(msg.ts, ()))
                    if not ok:
                        raise TimeoutError(f"only {len(stamps)} of {n_bots} bots answered")
                    if k > 0:  # the first candle warms caches and connections
                        lat.extend(s - t0 for s in stamps)
                    else:
                        cpu.start()
                    time.sleep(0.05)
                used = cpu.stop()
                fills = sum(len(store.load_bot_trades(config(i).name)) for i in range(n_bots))
            finally:
                manager.stop(timeout=30)
    per_candle = {k: v / n_candles * 1e3 for k, v in used.items()}
    return {**_pcts(lat), "samples": len(lat), "fills": fills,
            "cpu_ms_per_candle": sum(per_candle.values()),
            "cpu_ms_per_bot_candle": sum(per_candle.values()) / n_bots,
            **{f"cpu_ms_{k}": v for k, v in per_candle.items()}}


class _CpuMeter:
    """CPU seconds used by this process, its children (bot workers) and the servers.

    The latency of the last of N bots cannot beat the CPU all of them need
    divided by the cores: this shows where that CPU goes. Process CPU times
    tick in 10 ms, so they are read over the whole run of candles.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._before: dict[str, float] = {}
        self._procs: dict[str, list] = {}

    def _groups(self) -> dict[str, list]:
        me = self._psutil.Process()
        servers: dict[str, list] = {"postgres": [], "redis": []}
        for proc in self._psutil.process_iter(["name"]):
            name = proc.info["name"] or ""
            if name.startswith("postgres"):
                servers["postgres"].append(proc)
            elif name.startswith("redis-server"):
                servers["redis"].append(proc)
        return {"benchmark_process": [me], "bot_workers": me.children(recursive=True),
                **servers}

    def _read(self) -> dict[str, float]:
        out = {}
        for key, procs in self._procs.items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except self._psutil.Error:
                    pass
            out[key] = total
        return out

    def start(self) -> None:
        self._procs = self._groups()
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {k: after[k] - self._before[k] for k in self._before}


def _split(store_url: str, n: int) -> dict[str, float]:
    """One bot, in process: per-candle strategy+broker time vs store-write time."""
    n += WARMUP
    candles = zigzag(n + 50)
    with open_store(store_url) as store:
        store.save_candles(candles.iloc[:50], EXCHANGE, SYMBOL, TIMEFRAME)
        bot = Bot(config(999).model_copy(update={"name": "split"}), store)
        bot.load()
        record = bot._record
        spent = {"records": 0.0}

        def timed(*args, **kw):
            t = time.perf_counter()
            record(*args, **kw)
            spent["records"] += time.perf_counter() - t

        bot._record = timed  # type: ignore[method-assign]
        msgs = CandleMessage.from_candles(candles.iloc[50:], exchange=EXCHANGE, symbol=SYMBOL,
                                          timeframe=TIMEFRAME)
        for msg in msgs[:WARMUP]:  # first calls pay for imports and caches
            bot.process_candle(msg)
        spent["records"] = 0.0
        t = time.perf_counter()
        for msg in msgs[WARMUP:]:
            bot.process_candle(msg)
        total = time.perf_counter() - t
        n -= WARMUP
    return {"per_candle_ms": total / n * 1e3,
            "strategy_broker_ms": (total - spent["records"]) / n * 1e3,
            "store_writes_ms": spent["records"] / n * 1e3}


def _services() -> tuple[str, str] | None:
    try:
        import psycopg2

        psycopg2.connect(POSTGRES, connect_timeout=3).close()
        open_bus(REDIS).close()
    except (Exception, TcpLabError) as e:  # noqa: BLE001 - report and skip
        print(f"PostgreSQL/Redis rows skipped: {e}", file=sys.stderr)
        return None
    tag = uuid.uuid4().hex[:10]
    sep = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{sep}schema=tcp_lab_bench_{tag}", f"{REDIS}?prefix=tcp_lab_bench_{tag}:"


def _drop_schema(url: str) -> None:
    import psycopg2

    schema = url.rsplit("schema=", 1)[1]
    conn = psycopg2.connect(POSTGRES, connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bots")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--backends", nargs="+", choices=("embedded", "services"),
                        default=["embedded", "services"])
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tcp_lab_bench_bots_") as tmp:
        tmp_path = Path(tmp)
        backends = []
        if "embedded" in args.backends:
            backends.append(("embedded (DuckDB file + memory://, threads)", "thread",
                             lambda n: (f"duckdb:///{tmp_path / f'bots{n}.duckdb'}",
                                        f"memory://bench-bots-{n}")))
        services = _services() if "services" in args.backends else None
        if services is not None:
            backends.append(("PostgreSQL + Redis (processes)", "process",
                             lambda n: (f"{services[0]}_{n}", f"{services[1]}{n}:")))
        split_rows = []
        try:
            for label, runner, urls in backends:
                store_url, _ = urls("split")
                split_rows.append({"backend": label, "candles": sizes["split"],
                                   **_split(store_url, sizes["split"])})
                for n in sizes["bots"]:
                    store_url, bus_url = urls(n)
                    t = time.perf_counter()
                    stats = _latency(store_url, bus_url, n, sizes["candles"], runner,
                                     tmp_path / "logs")
                    rows.append({"backend": label, "bots": n, "candles": sizes["candles"],
                                 **stats, "run_s": time.perf_counter() - t})
                    print(f"  {label}, {n} bot(s): p99 {stats['p99_ms']:.1f} ms", flush=True)
        finally:
            if services is not None:
                for suffix in ["split", *sizes["bots"]]:
                    _drop_schema(f"{services[0]}_{suffix}")
    notes = ("latency = candle published -> every bot's signal message received, each bot "
             "having recorded signal, fill, performance and state first; every candle fills. "
             f"First candle excluded (warm-up). Wall clock on a shared {os.cpu_count()}-core "
             "machine: figures are noisy. Target: p99 < 20 ms with 50 bots. cpu_ms_* = CPU "
             "per candle (all bots) of this process (the embedded bots, the collector's "
             "store write and the signal subscriber), the bot worker processes, PostgreSQL "
             "and Redis; with N bots the last one cannot answer before cpu_ms_per_candle / "
             "cores.")
    report("bots", rows + split_rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
