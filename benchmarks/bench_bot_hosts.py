"""Bots at scale on bot hosts (PostgreSQL + Redis, host processes).

Three measurements, each against the issue's target:

- **scale**: 1,000 bots over 100 symbols (10 per symbol) in ``--hosts`` host
  processes (default: the core count). Each step stores one candle per symbol
  (as the collector does) and publishes the 100 candles; a candle is fully
  processed when every bot of its symbol has recorded it and published its
  signal. p50/p99/max over symbols x steps (target: p99 < 1 s), and the memory
  of all hosts (proportional set size, so shared libraries count once;
  target < 2 GB) with the cost per bot (target <= 2 MB).
- **host kill -9**: 200 bots (20 symbols) in one host; the host is killed; time
  until every bot is ``running`` again with a fresh heartbeat (target 10 s).
- **manager kill -9**: the same 200 bots under ``tcp-lab bots serve`` in its own
  process; the manager is killed (its host notices the closed pipe and exits)
  and a new one started: time until all run again (target 30 s), none
  ``failed``; then candles flow again and every bot has exactly one signal per
  candle since it started (none lost; a candle processed twice would need two
  writers, which the fencing tokens forbid). Then the graceful stop of the
  200 bots (SIGTERM to the manager) is timed.

Usage: ``python -m benchmarks.bench_bot_hosts [--quick]``. Skipped with a note when
PostgreSQL or Redis is unreachable (``$TCP_LAB_TEST_POSTGRES_URL`` /
``$TCP_LAB_TEST_REDIS_URL``, defaults: the local servers).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._report import report
from benchmarks.bench_bots import _drop_schema, _services, zigzag
from tcp_lab.bots import BotConfig, BotManager, RestartPolicy
from tcp_lab.bots.control import request_start
from tcp_lab.bus import CandleMessage, market_channel, open_bus, signals_pattern
from tcp_lab.store import open_store

SIZES = {"full": {"symbols": 100, "per_symbol": 10, "steps": 10, "recovery": 200},
         "quick": {"symbols": 4, "per_symbol": 3, "steps": 3, "recovery": 12}}
EXCHANGE, TIMEFRAME = "binance", "1m"
ROOT = Path(__file__).parents[1]
IDLE_S = 10.0  # seconds of idle CPU measured after the scale steps
POLICY = RestartPolicy(heartbeat_interval=1.0, hang_timeout=60.0, stuck_timeout=600.0,
                       backoff=0.2, backoff_max=1.0)


def _symbols(n: int) -> list[str]:
    return [f"C{i:03d}/USDT" for i in range(n)]


def _config(symbol: str, j: int) -> BotConfig:
    return BotConfig(name=f"b{symbol[1:4]}_{j}", strategy="sma_cross",
                     parameters={"fast": 2, "slow": 3}, exchange=EXCHANGE, symbol=symbol,
                     timeframe=TIMEFRAME, start="latest")


def _seed(store, symbols: list[str], n: int = 50) -> None:
    for s in symbols:
        store.save_candles(zigzag(n), EXCHANGE, s, TIMEFRAME)


def _host_pids(root: int) -> list[int]:
    import psutil

    out = []
    for p in psutil.Process(root).children(recursive=True):
        try:
            if "tcp_lab.bots.host_process" in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


def _pss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return total / 2**20


def _idle_cpu(pids: list[int], seconds: float) -> float:
    """CPU of the hosts while no candle comes, in percent of one core (heartbeats only)."""
    import psutil

    procs = [psutil.Process(p) for p in pids]

    def used() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in procs)

    before = used()
    time.sleep(seconds)
    return (used() - before) / seconds * 100


def _wait(predicate, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def _all_running(store, names: set[str], since: pd.Timestamp | None = None) -> bool:
    rows = store.list_bots()
    rows = rows[rows["id"].isin(names)]
    ok = (rows["status"] == "running") & rows["heartbeat"].notna()
    if since is not None:
        ok &= rows["heartbeat"] > since
    return len(rows) == len(names) and bool(ok.all())


def _scale(store_url: str, bus_url: str, n_symbols: int, per_symbol: int, steps: int,
           hosts: int | None, log_dir: Path) -> dict[str, float]:
    symbols = _symbols(n_symbols)
    configs = [_config(s, j) for s in symbols for j in range(per_symbol)]
    names = {c.name for c in configs}
    got: dict[tuple[str, pd.Timestamp], list[float]] = {}
    lock = threading.Lock()
    with open_store(store_url) as store, open_bus(bus_url) as bus:
        store.init_schema()
        _seed(store, symbols)
        symbol_of = {c.name: c.symbol for c in configs}

        def on_signal(msg) -> None:
            now = time.perf_counter()
            with lock:
                got.setdefault((symbol_of[msg.bot_id], msg.ts), []).append(now)

        manager = BotManager(store_url, bus_url, runner="process", hosts=hosts, policy=POLICY,
                             poll_interval=1.0, log_dir=log_dir).start()
        try:
            first = configs[::per_symbol][: manager.runner.hosts]  # one per host
            for c in first:
                manager.start_bot(c)
            _wait(lambda: _all_running(store, {c.name for c in first}), 120, "first bots")
            base = _pss_mb(_host_pids(os.getpid()))
            t0 = time.monotonic()
            for c in configs:
                if c not in first:
                    manager.start_bot(c)
            _wait(lambda: _all_running(store, names), 600, "all bots running")
            start_s = time.monotonic() - t0
            pids = _host_pids(os.getpid())
            total = _pss_mb(pids)
            per_bot = (total - base) / max(1, len(configs) - len(first))
            lat: list[float] = []
            with bus.subscribe(patterns=[signals_pattern()], handler=on_signal):
                for k in range(steps + 1):
                    candle = zigzag(1, start=50 + k)
                    for s in symbols:
                        store.save_candles(candle, EXCHANGE, s, TIMEFRAME)
                    msgs = [(market_channel(s), CandleMessage.from_candles(
                        candle, exchange=EXCHANGE, symbol=s, timeframe=TIMEFRAME)[0])
                        for s in symbols]
                    ts = candle.index[0]
                    t = time.perf_counter()
                    bus.publish_many(msgs)
                    _wait(lambda ts=ts: sum(len(got.get((s, ts), ())) for s in symbols)
                          >= len(configs), 120, f"step {k}")
                    if k:  # the first step warms caches
                        with lock:
                            lat.extend(max(got[(s, ts)]) - t for s in symbols)
                    time.sleep(0.2)
            idle = _idle_cpu(pids, IDLE_S)
        finally:
            manager.stop(timeout=60)
    a = np.asarray(lat) * 1e3
    return {"test": "scale", "bots": len(configs), "symbols": n_symbols,
            "hosts": len(pids), "steps": steps,
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "start_all_s": start_s, "hosts_pss_mb": total,
            "per_bot_mb": per_bot, "idle_cpu_pct": idle}


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tcp_lab", "bots", "serve", "--runner", "process",
             "--hosts", "1", "--poll-interval", "0.2", "--heartbeat-interval", "1",
             "--hang-timeout", "60"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _recovery(store_url: str, bus_url: str, n: int, tmp: Path) -> list[dict[str, float]]:
    n_symbols = max(1, n // 10)
    symbols = _symbols(n_symbols)
    configs = [_config(s, j) for s in symbols for j in range(n // n_symbols)]
    names = {c.name for c in configs}
    env = dict(os.environ, TCP_LAB_DATABASE_URL=store_url, TCP_LAB_REDIS_URL=bus_url,
               TCP_LAB_HOME=str(tmp / "home"))
    rows = []
    with open_store(store_url) as store, open_bus(bus_url) as bus:
        store.init_schema()
        _seed(store, symbols)
        for c in configs:
            request_start(store, bus, c)
        manager = _serve(env, tmp / "manager.log")
        second = None
        fed = 0

        def feed(k: int) -> None:
            candle = zigzag(1, start=50 + k)
            for s in symbols:
                store.save_candles(candle, EXCHANGE, s, TIMEFRAME)
            bus.publish_many([(market_channel(s), CandleMessage.from_candles(
                candle, exchange=EXCHANGE, symbol=s, timeframe=TIMEFRAME)[0]) for s in symbols])

        try:
            first_s = _wait(lambda: _all_running(store, names), 300, "first start")
            for _ in range(3):
                feed(fed)
                fed += 1
                time.sleep(0.3)
            (host,) = _host_pids(manager.pid)
            killed = pd.Timestamp.now("UTC")
            os.kill(host, signal.SIGKILL)
            host_s = _wait(lambda: _all_running(store, names, killed), 120, "after host kill")
            rows.append({"test": "host kill -9", "bots": n, "first_start_s": first_s,
                         "back_running_s": host_s, "target_s": 10.0})
            feed(fed)
            fed += 1
            time.sleep(0.5)
            manager.kill()
            manager.wait(10)
            killed = pd.Timestamp.now("UTC")
            second = _serve(env, tmp / "manager.log")
            mgr_s = _wait(lambda: _all_running(store, names, killed), 300, "after manager kill")
            for _ in range(3):
                feed(fed)
                fed += 1
                time.sleep(0.3)
            last = zigzag(1, start=50 + fed - 1).index[0]
            _wait(lambda: all(store.list_bots().set_index("id").loc[list(names),
                                                                   "last_candle_ts"] == last),
                  120, "every candle processed")
            failed = int((store.list_bots()["status"] == "failed").sum())
            counts = {b: len(store.load_signals(b)) for b in names}
            wrong = sum(1 for v in counts.values() if v != fed)
            rows.append({"test": "manager kill -9", "bots": n, "back_running_s": mgr_s,
                         "target_s": 30.0, "failed": failed, "candles": fed,
                         "bots_with_missing_or_extra_rows": wrong})
            t = time.monotonic()
            second.send_signal(signal.SIGTERM)
            second.wait(120)
            rows.append({"test": "graceful stop (SIGTERM)", "bots": n,
                         "stop_s": time.monotonic() - t, "exit_code": second.returncode})
        finally:
            for proc in (manager, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bot_hosts")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--hosts", type=int, default=None, help="shared hosts (default: cores)")
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    services = _services()
    if services is None:
        report("bot_hosts", [], quick=args.quick, notes="skipped: no PostgreSQL/Redis")
        return 0
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tcp_lab_bench_hosts_") as tmp:
        tmp_path = Path(tmp)
        try:
            rows.append(_scale(f"{services[0]}_scale", f"{services[1]}scale:", sizes["symbols"],
                               sizes["per_symbol"], sizes["steps"], args.hosts,
                               tmp_path / "logs"))
            print(f"  scale: p99 {rows[-1]['p99_ms']:.0f} ms", flush=True)
            rows.extend(_recovery(f"{services[0]}_rec", f"{services[1]}rec:", sizes["recovery"],
                                  tmp_path))
        finally:
            for suffix in ("scale", "rec"):
                _drop_schema(f"{services[0]}_{suffix}")
    notes = (f"PostgreSQL + Redis, host processes, {os.cpu_count()} cores (shared: wall "
             "times are noisy). scale: a candle is done when every bot of its symbol has "
             "recorded it and its signal was received; first step excluded (warm-up). "
             "hosts_pss_mb: proportional set size of all host processes (shared pages "
             "counted once); per_bot_mb: its growth per bot beyond one bot per host; "
             "idle_cpu_pct: CPU of all hosts over 10 s without candles (heartbeats every "
             "second), percent of one core. "
             "Targets: scale p99 < 1000 ms and < 2 GB; host kill -9 < 10 s; manager kill -9 "
             "< 30 s with none failed and one signal per bot and candle.")
    report("bot_hosts", rows, quick=args.quick, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
