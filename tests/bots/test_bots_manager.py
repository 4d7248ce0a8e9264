"""The manager with the thread runner (embedded default): start, stop, crashes, hangs, restore."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from bots_helpers import EXCHANGE, SYMBOL, TIMEFRAME, caught_up, make_config, wait_until

from tcp_lab.bots import Bot, BotManager, RestartPolicy
from tcp_lab.bots.control import FAILED_EVENT, SHUTDOWN_REASON, request_start, request_stop
from tcp_lab.bus import SYSTEM_EVENTS, CandleMessage, market_channel, open_bus
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

FAST = RestartPolicy(backoff=0.05, backoff_max=0.2, heartbeat_interval=0.2, hang_timeout=1.5,
                     max_lag=3, stuck_timeout=1.0)
CROSS = {"strategy": "sma_cross", "parameters": {"fast": 3, "slow": 8}, "window_margin": 2}


class FakeClock:
    """A wall clock the test moves by hand (the rolling hour of the restart budget)."""

    def __init__(self) -> None:
        self.now = pd.Timestamp("2024-06-01", tz="UTC")

    def __call__(self) -> pd.Timestamp:
        return self.now




@pytest.fixture
def env(duckdb_url, memory_bus_url):
    with open_store(duckdb_url) as store, open_bus(memory_bus_url) as bus:
        yield store, bus


def feed(store, bus, candles):
    for msg in CandleMessage.from_candles(candles, exchange=EXCHANGE, symbol=SYMBOL,
                                          timeframe=TIMEFRAME):
        store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
        bus.publish(market_channel(SYMBOL), msg)




def test_start_and_stop_a_bot_from_its_config_file(env, tmp_path):
    store, bus = env
    candles = make_candles(40, seed=1, volatility=2.0)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    (tmp_path / "alpha.json").write_text(json.dumps(
        {**CROSS, "exchange": EXCHANGE, "symbol": SYMBOL, "timeframe": TIMEFRAME}))
    with BotManager(store, bus, policy=FAST, poll_interval=0.1, config_dir=tmp_path) as manager:
        assert manager.runner.kind == "thread"
        assert manager.start_bot("alpha") == "alpha"
        wait_until(lambda: store.get_bot("alpha")["status"] == "running", what="running")
        assert store.get_bot("alpha")["config_path"] == str(tmp_path / "alpha.json")
        feed(store, bus, candles.iloc[20:])
        wait_until(lambda: caught_up(store, "alpha", candles.index[-1]), what="last candle")
        # start="latest": only the 20 candles after its start were traded
        assert len(store.load_signals("alpha")) == 20
        manager.stop_bot("alpha")
        assert store.get_bot("alpha")["status"] == "stopped"
        assert manager.running == []


def test_crashes_restart_with_backoff_then_fail_with_a_system_event(env):
    store, bus = env
    clock = FakeClock()
    candles = make_candles(40, seed=2, volatility=2.0)
    store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bad = candles.index[25]
    failing = make_config("failing", strategy="bot_strategies:FailOnCandle",
                          parameters={"fail_at": bad.isoformat()}, window_margin=2)
    healthy = make_config("healthy", **CROSS)
    with bus.subscribe(SYSTEM_EVENTS) as events, \
            BotManager(store, bus, policy=FAST, poll_interval=0.1, clock=clock) as manager:
        manager.start_bot(healthy)
        manager.start_bot(failing)
        for crash in range(1, 4):
            wait_until(lambda c=crash: store.get_bot("failing")["restart_count"] == c,
                       what=f"restart {crash}")
            clock.now += pd.Timedelta(minutes=5)
        row = wait_until(lambda: (r := store.get_bot("failing"))["status"] == "failed" and r,
                         what="failed")
        event = wait_until(lambda: events.get(timeout=0.2), what="system event")
        assert event.kind == FAILED_EVENT and event.detail["bot_id"] == "failing"
        assert bad.isoformat() in event.detail["reason"]
        assert "deliberate failure" in row["last_error"] and bad.isoformat() in row["last_error"]
        assert row["restart_count"] == 3 and len(row["restart_times"]) == 3
        # it never got past the bad candle, and the healthy bot traded everything
        assert row["last_candle_ts"] == candles.index[24]
        wait_until(lambda: caught_up(store, "healthy", candles.index[-1]), what="healthy")
        assert store.get_bot("healthy")["status"] == "running"
        assert manager.running == ["healthy"]


def test_crashes_more_than_an_hour_apart_do_not_exhaust_the_budget(env):
    store, bus = env
    clock = FakeClock()
    candles = make_candles(30, seed=2)
    store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    failing = make_config("failing", strategy="bot_strategies:FailOnCandle",
                          parameters={"fail_at": candles.index[20].isoformat()}, window_margin=2)
    with BotManager(store, bus, policy=FAST, poll_interval=0.1, clock=clock) as manager:
        manager.start_bot(failing)
        for crash in range(1, 6):
            wait_until(lambda c=crash: store.get_bot("failing")["restart_count"] == c,
                       what=f"restart {crash}")
            clock.now += pd.Timedelta(minutes=31)  # at most 2 restarts in any hour
        assert store.get_bot("failing")["status"] in ("crashed", "starting", "running")


def test_a_recovered_bot_continues_without_losing_or_duplicating(env, tmp_path):
    store, bus = env
    candles = make_candles(60, seed=5, volatility=2.0)
    store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    flag = tmp_path / "armed"
    flag.touch()
    config = make_config("flaky", strategy="bot_strategies:FailOnCandle", window_margin=2,
                         parameters={"fail_at": candles.index[30].isoformat(),
                                     "flag_file": str(flag)})
    with BotManager(store, bus, policy=FAST, poll_interval=0.1) as manager:
        manager.start_bot(config)
        wait_until(lambda: store.get_bot("flaky")["restart_count"] >= 1, what="a crash")
        flag.unlink()
        wait_until(lambda: caught_up(store, "flaky", candles.index[-1]), what="recovery")
    reference = Bot(make_config("reference", strategy="bot_strategies:FailOnCandle",
                                parameters={}, window_margin=2), store)
    reference.catch_up()
    got, want = store.load_bot_trades("flaky"), store.load_bot_trades("reference")
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want)
    assert len(store.load_signals("flaky")) == len(candles)


def test_a_hung_bot_is_killed_and_restarted(env, tmp_path):
    store, bus = env
    candles = make_candles(30, seed=6)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    flag = tmp_path / "hang"
    config = make_config("sleepy", strategy="bot_strategies:HangWhileFlag",
                         parameters={"flag_file": str(flag)}, window_margin=2)
    with BotManager(store, bus, policy=FAST, poll_interval=0.1) as manager:
        manager.start_bot(config)
        wait_until(lambda: caught_up(store, "sleepy", candles.index[19]), what="first candles")
        flag.touch()
        feed(store, bus, candles.iloc[20:21])
        row = wait_until(lambda: (r := store.get_bot("sleepy"))["restart_count"] >= 1 and r,
                         what="hang detected")
        assert "hung" in row["last_error"]
        flag.unlink()
        feed(store, bus, candles.iloc[21:])
        wait_until(lambda: caught_up(store, "sleepy", candles.index[-1]), what="recovery")
        assert len(store.load_signals("sleepy")) == 30


def test_a_stuck_bot_is_restarted(env, monkeypatch):
    store, bus = env
    candles = make_candles(30, seed=7)
    store.save_candles(candles.iloc[:10], EXCHANGE, SYMBOL, TIMEFRAME)
    with BotManager(store, bus, policy=FAST, poll_interval=0.1) as manager:
        manager.start_bot(make_config("stuck", **CROSS))
        wait_until(lambda: caught_up(store, "stuck", candles.index[9]), what="start")
        # alive, no progress
        monkeypatch.setattr(Bot, "catch_up", lambda self, extra=None, **kw: [])
        monkeypatch.setattr(Bot, "process_candle", lambda self, candle: [])
        feed(store, bus, candles.iloc[10:])
        row = wait_until(lambda: (r := store.get_bot("stuck"))["restart_count"] >= 1 and r,
                         what="stuck detected")
        assert "stuck: 20 candles behind" in row["last_error"]
        monkeypatch.undo()
        wait_until(lambda: caught_up(store, "stuck", candles.index[-1]), what="recovery")


def test_active_bots_are_restored_by_the_next_manager(env):
    store, bus = env
    candles = make_candles(50, seed=8, volatility=2.0)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    manager = BotManager(store, bus, policy=FAST, poll_interval=0.1).start()
    manager.start_bot(make_config("keeper", **CROSS))
    manager.start_bot(make_config("quitter", **CROSS))
    wait_until(lambda: caught_up(store, "keeper", candles.index[19]), what="keeper")
    manager.stop_bot("quitter")
    # the manager dies without cleaning up: its bots' rows still say "running"
    manager._halt.set()
    for handle in manager._handles.values():
        handle.stop(5.0)
    manager._lease.release()  # its process is gone, and with it the manager's lease
    assert store.get_bot("keeper")["status"] == "running"
    store.save_candles(candles.iloc[20:35], EXCHANGE, SYMBOL, TIMEFRAME)  # while down

    with BotManager(store, bus, policy=FAST, poll_interval=0.1) as second:
        assert second.running == ["keeper"]
        wait_until(lambda: caught_up(store, "keeper", candles.index[34]), what="catch-up")
        feed(store, bus, candles.iloc[35:])
        wait_until(lambda: caught_up(store, "keeper", candles.index[-1]), what="live again")
        assert store.get_bot("quitter")["status"] == "stopped"
    # a graceful shutdown also resumes at the next start
    assert store.get_bot("keeper")["last_error"] == SHUTDOWN_REASON
    with BotManager(store, bus, policy=FAST, poll_interval=0.1) as third:
        assert third.running == ["keeper"]
    reference = Bot(make_config("reference", **CROSS), store)  # one uninterrupted run
    reference.catch_up()
    assert len(store.load_bot_trades("reference")) > 0
    pd.testing.assert_frame_equal(store.load_bot_trades("keeper"),
                                  store.load_bot_trades("reference"))
    pd.testing.assert_frame_equal(store.load_performance("keeper"),
                                  store.load_performance("reference"))


def test_requests_through_the_table_are_served(env, tmp_path):
    store, bus = env
    store.save_candles(make_candles(20, seed=9), EXCHANGE, SYMBOL, TIMEFRAME)
    with BotManager(store, bus, policy=FAST, poll_interval=5.0) as manager:  # woken by events
        request_start(store, bus, make_config("remote", **CROSS))
        wait_until(lambda: store.get_bot("remote")["status"] == "running", timeout=4.0,
                   what="started on request")
        assert manager.running == ["remote"]
        request_stop(store, bus, "remote")
        wait_until(lambda: store.get_bot("remote")["status"] == "stopped", timeout=4.0,
                   what="stopped on request")
        assert manager.running == []
