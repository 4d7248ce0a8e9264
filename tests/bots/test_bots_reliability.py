"""Reliability with real processes, PostgreSQL and Redis: kill -9, manager loss, failing
strategies, a Redis restart. Each bot's records must equal one uninterrupted replay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from bots_helpers import (
    EXCHANGE,
    SYMBOL,
    TIMEFRAME,
    FakeStore,
    assert_same_fills,
    caught_up,
    make_config,
    reached,
    wait_until,
)

from tcp_lab.bots import Bot, BotManager, RestartPolicy
from tcp_lab.bots.control import FAILED_EVENT, SHUTDOWN_REASON, request_start
from tcp_lab.bus import SYSTEM_EVENTS, CandleMessage, market_channel, open_bus
from tcp_lab.errors import ServiceError
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Workers need ~2 s to start on a busy 2-core machine: generous hang timeout, quick beats.
PROC = RestartPolicy(backoff=0.1, backoff_max=0.5, heartbeat_interval=0.3, hang_timeout=15.0,
                     max_lag=5, stuck_timeout=30.0)
CROSS = {"strategy": "sma_cross", "parameters": {"fast": 3, "slow": 8}, "window_margin": 2}
ROOT = Path(__file__).parents[2]








class Feeder(threading.Thread):
    """Stores and publishes candles like the collector, one every ``pace`` seconds."""

    def __init__(self, store, bus_url, candles, pace=0.05, publish=True) -> None:
        super().__init__(daemon=True)
        self.store, self.candles, self.pace, self.publish = store, candles, pace, publish
        self.bus = open_bus(bus_url)
        self.lost = 0

    def run(self) -> None:
        try:
            for msg in CandleMessage.from_candles(self.candles, exchange=EXCHANGE,
                                                  symbol=SYMBOL, timeframe=TIMEFRAME):
                self.store.save_candles(self.candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
                if self.publish:
                    try:
                        self.bus.publish(market_channel(SYMBOL), msg)
                    except ServiceError:
                        self.lost += 1  # Redis is down: the bots catch up from the store
                time.sleep(self.pace)
        finally:
            self.bus.close()


def assert_like_one_run(store, bot_id, config, candles):
    """The bot's fills and equity curve equal one uninterrupted replay of the same candles."""
    fake = FakeStore()
    fake.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    reference = Bot(config.model_copy(update={"start": "earliest"}), fake)
    reference.catch_up()
    assert_same_fills(store.load_bot_trades(bot_id), fake.load_bot_trades(config.name), rtol=0)
    perf = store.load_performance(bot_id)
    assert list(perf.index) == list(candles.index)
    assert list(perf["equity"]) == list(fake.load_performance(config.name)["equity"])
    account = store.get_bot(bot_id)["state"]["account"]
    assert account == reference.account.to_dict()
    assert len(store.load_signals(bot_id)) == len(candles)


@pytest.fixture
def pg_store(postgres_url):
    with open_store(postgres_url) as store:
        yield store


def test_kill_9_of_hosts_loses_and_duplicates_nothing(pg_store, postgres_url, redis_url,
                                                     tmp_path):
    """An isolated bot's host dies alone; a shared host's death restarts its bots only."""
    candles = make_candles(90, seed=21, volatility=2.0)
    pg_store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    victim = make_config("victim", isolation="process", **CROSS)
    shared = [make_config("other", **CROSS), make_config("other2", **CROSS)]
    manager = BotManager(postgres_url, redis_url, runner="process", hosts=2, policy=PROC,
                         poll_interval=0.2, log_dir=tmp_path).start()
    names = ("victim", "other", "other2")
    try:
        for config in (victim, *shared):
            manager.start_bot(config)
        assert manager.runner.kind == "process"
        wait_until(lambda: all(pg_store.get_bot(b)["status"] == "running" for b in names),
                   what="all running")
        pids = manager.pids()
        assert pids["other"] == pids["other2"] != pids["victim"]  # one host per symbol
        feeder = Feeder(pg_store, redis_url, candles.iloc[20:])
        feeder.start()
        wait_until(lambda: reached(pg_store, "victim", candles.index[40]), what="mid-run",
                   timeout=60)
        os.kill(pids["victim"], signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: manager.pids().get("victim") not in (None, pids["victim"]),
                   what="a new host")
        wait_until(lambda: pg_store.get_bot("victim")["status"] == "running", what="running")
        back = time.monotonic() - killed
        assert manager.pids()["other"] == pids["other"]  # the shared host never noticed
        wait_until(lambda: reached(pg_store, "other", candles.index[60]), what="later",
                   timeout=60)
        os.kill(pids["other"], signal.SIGKILL)  # the shared host: both its bots
        wait_until(lambda: all(manager.pids().get(b) not in (None, pids["other"])
                               for b in ("other", "other2")), what="a new shared host")
        feeder.join(60)
        for bot in names:
            wait_until(lambda b=bot: caught_up(pg_store, b, candles.index[-1]), what=bot)
        for bot in names:
            row = pg_store.get_bot(bot)
            assert row["restart_count"] == 1 and "SIGKILL" in row["last_error"], row
        assert back < 15.0, f"the bot took {back:.1f} s to come back"
    finally:
        if "feeder" in locals():
            feeder.join(60)
        manager.stop()
    for config in (victim, *shared):
        assert_like_one_run(pg_store, config.name, config, candles)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _serve(postgres_url, redis_url, tmp_path) -> subprocess.Popen:
    env = dict(os.environ, TCP_LAB_DATABASE_URL=postgres_url, TCP_LAB_REDIS_URL=redis_url,
               TCP_LAB_HOME=str(tmp_path / "home"))
    log = open(tmp_path / "manager.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcp_lab", "bots", "serve", "--runner", "process",
         "--poll-interval", "0.2", "--heartbeat-interval", "0.3", "--hang-timeout", "15"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def test_killed_manager_is_restarted_and_restores_its_bots(pg_store, postgres_url, redis_url,
                                                          tmp_path):
    candles = make_candles(80, seed=22, volatility=2.0)
    pg_store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    configs = [make_config(f"bot{i}", **CROSS) for i in range(2)]
    with open_bus(redis_url) as bus:
        for c in configs:
            request_start(pg_store, bus, c)
    first = _serve(postgres_url, redis_url, tmp_path)
    second = None
    try:
        wait_until(lambda: all(pg_store.get_bot(c.name)["status"] == "running" for c in configs),
                   what="bots running under the first manager")
        feeder = Feeder(pg_store, redis_url, candles.iloc[20:], pace=0.08)
        feeder.start()
        wait_until(lambda: reached(pg_store, "bot0", candles.index[35]), what="mid-run")
        workers = _children(first.pid)
        assert len(workers) == 1  # both bots trade one symbol: one host
        first.kill()
        first.wait(10)
        # the orphaned host's stdin closes with the manager: it stops its bots and exits
        wait_until(lambda: not any(Path(f"/proc/{w}").exists() and "Z" not in
                                   Path(f"/proc/{w}/stat").read_text().split()[2]
                                   for w in workers), timeout=10, what="orphans to exit")
        assert all(pg_store.get_bot(c.name)["status"] == "running" for c in configs)
        second = _serve(postgres_url, redis_url, tmp_path)
        feeder.join(60)
        for c in configs:
            wait_until(lambda n=c.name: caught_up(pg_store, n, candles.index[-1]), what=c.name)
            assert pg_store.get_bot(c.name)["restart_count"] == 0  # restored, not crashed
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        for c in configs:
            row = pg_store.get_bot(c.name)
            assert row["status"] == "stopped" and row["last_error"] == SHUTDOWN_REASON
    finally:
        if "feeder" in locals():
            feeder.join(60)
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    for c in configs:
        assert_like_one_run(pg_store, c.name, c, candles)


class FakeClock:
    def __init__(self) -> None:
        self.now = pd.Timestamp("2024-06-01", tz="UTC")

    def __call__(self) -> pd.Timestamp:
        return self.now


def test_failing_strategy_in_a_shared_host_fails_alone_after_four_crashes(pg_store, postgres_url,
                                                                 redis_url, tmp_path):
    candles = make_candles(40, seed=23, volatility=2.0)
    pg_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bad = candles.index[25]
    failing = make_config("failing", strategy="bot_strategies:FailOnCandle", window_margin=2,
                          parameters={"fail_at": bad.isoformat()})
    healthy = make_config("healthy", **CROSS)
    clock = FakeClock()
    with open_bus(redis_url) as bus, bus.subscribe(SYSTEM_EVENTS) as events:
        manager = BotManager(postgres_url, redis_url, runner="process", policy=PROC,
                             poll_interval=0.2, log_dir=tmp_path, clock=clock).start()
        try:
            manager.start_bot(healthy)
            manager.start_bot(failing)
            for crash in range(1, 4):
                wait_until(lambda c=crash: pg_store.get_bot("failing")["restart_count"] == c,
                           what=f"restart {crash}")
                clock.now += pd.Timedelta(minutes=10)
            row = wait_until(lambda: (r := pg_store.get_bot("failing"))["status"] == "failed"
                             and r, what="failed")
            event = wait_until(lambda: (m := events.get(timeout=0.2)) is not None
                               and m.kind == FAILED_EVENT and m, what="event")
            assert event.detail["bot_id"] == "failing" and bad.isoformat() in event.detail["reason"]
            assert bad.isoformat() in row["last_error"] and "deliberate" in row["last_error"]
            assert row["last_candle_ts"] == candles.index[24]
            wait_until(lambda: caught_up(pg_store, "healthy", candles.index[-1]), what="healthy")
            assert pg_store.get_bot("healthy")["restart_count"] == 0
            assert "failing" not in manager.pids()
        finally:
            manager.stop()
    logs = "".join(p.read_text() for p in tmp_path.glob("host-*.log"))
    assert logs.count("deliberate failure") >= 4  # in the log of the host it shares


def test_bots_survive_a_redis_outage_and_a_host_started_during_it(pg_store, postgres_url,
                                                                own_redis, tmp_path):
    candles = make_candles(90, seed=24, volatility=2.0)
    pg_store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    configs = [make_config(f"r{i}", **CROSS) for i in range(2)]
    manager = BotManager(postgres_url, own_redis.url, runner="process", policy=PROC,
                         poll_interval=0.2, log_dir=tmp_path).start()
    try:
        for c in configs:
            manager.start_bot(c)
        wait_until(lambda: all(pg_store.get_bot(c.name)["status"] == "running" for c in configs),
                   what="running")
        Feeder(pg_store, own_redis.url, candles.iloc[20:40]).run()
        for c in configs:
            wait_until(lambda n=c.name: caught_up(pg_store, n, candles.index[39]), what="live")
        own_redis.stop()
        # the collector keeps storing while the bus is down
        pg_store.save_candles(candles.iloc[40:50], EXCHANGE, SYMBOL, TIMEFRAME)
        time.sleep(1.0)
        # a host that starts while Redis is down starts anyway and runs from the store
        host = manager.pids()["r0"]
        os.kill(host, signal.SIGKILL)
        wait_until(lambda: all(manager.pids().get(c.name) not in (None, host) for c in configs),
                   what="a new host while Redis is down")
        pg_store.save_candles(candles.iloc[50:60], EXCHANGE, SYMBOL, TIMEFRAME)
        for c in configs:
            wait_until(lambda n=c.name: caught_up(pg_store, n, candles.index[59]),
                       what="caught up from the store")
        own_redis.start()
        Feeder(pg_store, own_redis.url, candles.iloc[60:]).run()
        for c in configs:
            wait_until(lambda n=c.name: caught_up(pg_store, n, candles.index[-1]),
                       what="caught up")
            row = pg_store.get_bot(c.name)
            assert row["restart_count"] == 1 and row["status"] == "running", row
        logs = "".join(p.read_text() for p in tmp_path.glob("host-*.log"))
        assert "reconnect attempt" in logs and "cannot subscribe" in logs
    finally:
        manager.stop()
    for c in configs:
        assert_like_one_run(pg_store, c.name, c, candles)
