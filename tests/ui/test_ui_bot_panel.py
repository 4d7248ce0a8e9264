"""The bot panel over a DuckDB store and a memory bus, with an in-process thread manager."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest

from tcp_lab.bots import BotManager, RestartPolicy
from tcp_lab.bus import SignalMessage, StatusMessage, open_bus, signals_channel, status_channel
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tcp_lab.ui import BotPanel

N_CANDLES = 60  # warm-up 20 + margin 20: every bot candle is a DuckDB transaction


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def config_dir(tmp_path):
    folder = tmp_path / "bots"
    folder.mkdir()
    (folder / "sma-test.json").write_text(json.dumps({
        "strategy": "sma_cross", "parameters": {"fast": 5, "slow": 20}, "exchange": "binance",
        "symbol": "BTC/USDT", "timeframe": "1m", "start": "earliest",
        "init_cash": 1000.0}))
    return folder


@pytest.fixture
def store(tmp_path):
    with open_store(f"duckdb:///{tmp_path / 'lab.duckdb'}") as s:
        s.save_candles(make_candles(N_CANDLES, seed=4), "binance", "BTC/USDT", "1m")
        yield s


@pytest.fixture
def bus(memory_bus_url):
    with open_bus(memory_bus_url) as b:
        yield b


@pytest.fixture
def manager(store, bus, config_dir):
    policy = RestartPolicy(heartbeat_interval=0.2, hang_timeout=5.0)
    m = BotManager(store, bus, runner="thread", policy=policy, poll_interval=0.1,
                   config_dir=config_dir)
    m.start()
    yield m
    m.stop()


@pytest.fixture
def panel(manager):
    p = BotPanel(manager, min_reload=0.05, age_refresh=None)
    yield p
    p.close()


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_lists_configs_and_starts_with_an_empty_table(panel):
    assert "sma-test" in panel.bot_picker.options
    assert panel.rows == {}
    assert "no bots yet" in panel.table.value
    assert panel.error.value == ""


def test_start_and_stop_by_button(panel, store):
    panel.bot_picker.value = "sma-test"
    panel.start_button.click()
    assert panel.error.value == ""
    assert "started bot sma-test" in panel.status.value
    # The bot catches up on the stored candles; its signals refresh the row from the store.
    assert _wait(lambda: panel.rows.get("sma-test", {}).get("last_candle")
                 == store.latest_candle_ts("binance", "BTC/USDT", "1m"))
    assert _wait(lambda: panel.rows["sma-test"]["equity"] is not None
                 and panel.rows["sma-test"]["status"] == "running")
    perf = store.load_performance("sma-test")
    assert len(perf) == N_CANDLES
    row = panel.frame().loc["sma-test"]
    assert _wait(lambda: panel.rows["sma-test"]["equity"] == pytest.approx(
        float(store.load_performance("sma-test")["equity"].iat[-1])))
    assert row["pnl"] == pytest.approx(row["equity"] - 1000.0)
    assert row["market"] == "binance BTC/USDT 1m"
    assert panel.n_messages > 0
    assert "sma-test" in panel.table.value

    panel.stop_button.click()
    assert panel.error.value == ""
    assert store.get_bot("sma-test")["status"] == "stopped"
    assert _wait(lambda: panel.rows["sma-test"]["status"] == "stopped")


def test_status_message_updates_the_row(panel, bus, store):
    store.upsert_bot("ext", strategy="sma_cross", name="ext")
    store.update_bot("ext", status="running")
    panel.refresh()
    assert panel.rows["ext"]["status"] == "running"
    beat = pd.Timestamp.now("UTC").floor("s")
    store.update_bot("ext", status="crashed", last_error="boom")  # as the manager does first
    bus.publish(status_channel("ext"), StatusMessage(bot_id="ext", ts=beat, status="crashed",
                                                     detail="boom", heartbeat=beat))
    assert _wait(lambda: panel.rows["ext"]["status"] == "crashed")
    assert panel.rows["ext"]["heartbeat"] == beat
    assert panel.rows["ext"]["last_error"] == "boom"
    bus.publish(signals_channel("ext"), SignalMessage(
        bot_id="ext", ts=beat, action="buy", confidence=1.0, price=123.0))
    assert _wait(lambda: panel.rows["ext"]["last_signal"] == "buy @ 123")
    assert "crashed" in panel.table.value and "boom" in panel.table.value


def test_messages_reload_the_store_once_per_burst(manager, store, bus, monkeypatch):
    store.upsert_bot("ext", strategy="sma_cross", name="ext")
    panel = BotPanel(manager, min_reload=0.3, age_refresh=None)
    reads = []
    real = store.get_bot
    monkeypatch.setattr(store, "get_bot", lambda b: reads.append(b) or real(b))
    try:
        ts = pd.Timestamp("2024-01-01", tz="UTC")
        for i in range(50):
            bus.publish(signals_channel("ext"), SignalMessage(
                bot_id="ext", ts=ts + pd.Timedelta(minutes=i), action="hold", confidence=0.0,
                price=100.0 + i))
        assert _wait(lambda: panel.n_messages == 50)
        assert _wait(lambda: reads)
        time.sleep(0.5)
        assert 1 <= len(reads) < 10  # coalesced, not one read per message (50)
        assert panel.rows["ext"]["last_signal"] == "hold @ 149"
    finally:
        panel.close()


def test_errors_are_shown_in_the_panel(panel):
    panel.bot_picker.value = "no-such-bot"
    panel.start_button.click()
    assert "ConfigError" in panel.error.value and "no bot config" in panel.error.value
    panel.stop_button.click()
    assert "DataError" in panel.error.value and "no-such-bot" in panel.error.value
    panel.bot_picker.value = ""
    panel.start_button.click()
    assert "no bot selected" in panel.error.value
    panel.bot_picker.value = "sma-test"
    panel.start_button.click()
    assert panel.error.value == ""  # cleared by the next action that works
    panel.stop_button.click()


def test_without_a_manager_buttons_write_requests(store, bus, config_dir):
    panel = BotPanel(store=store, bus=bus, config_dir=config_dir, age_refresh=None)
    try:
        assert panel.start("sma-test")
        assert store.get_bot("sma-test")["status"] == "starting"
        assert panel.rows["sma-test"]["status"] == "starting"
        assert "requested" in panel.status.value
        assert panel.stop("sma-test")
        assert store.get_bot("sma-test")["status"] == "stopping"
        assert not panel.stop("nope")
        assert "DataError" in panel.error.value
    finally:
        panel.close()


def test_a_bad_store_url_is_shown(bus, config_dir):
    panel = BotPanel(store="nosuch://lab", bus=bus, config_dir=config_dir, age_refresh=None)
    try:
        assert "ConfigError" in panel.error.value and "nosuch" in panel.error.value
        assert not panel.start("sma-test")
        assert "ServiceError" in panel.error.value and "no store" in panel.error.value
    finally:
        panel.close()


def test_close_leaves_no_threads(manager):
    before = _threads()
    panel = BotPanel(manager, age_refresh=0.05)
    assert "tcp_lab.ui.bot_panel" in _threads()
    time.sleep(0.15)
    panel.close()
    assert _wait(lambda: not (_threads() - before))


def test_rows_and_table_without_a_store():
    from tcp_lab.ui._bot_rows import bot_row, bots_table_html

    beat = pd.Timestamp("2024-01-01 00:10", tz="UTC")
    bot = {"id": "b", "status": "running", "strategy": "sma_cross", "heartbeat": beat,
           "last_candle_ts": None, "restart_count": 2, "last_error": None,
           "state": {"config": {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
                                "init_cash": 1000.0},
                     "account": {"cash": 1100.0, "position": 0.0}}}
    newer = beat + pd.Timedelta("30s")
    row = bot_row(bot, None, {"heartbeat": newer, "last_signal": "buy @ 1"})
    assert (row["equity"], row["pnl"], row["pnl_pct"]) == (1100.0, 100.0, 10.0)
    assert row["heartbeat"] == newer and row["last_signal"] == "buy @ 1"
    table = bots_table_html({"b": row}, now=newer + pd.Timedelta("5s"))
    assert "5 s ago" in table and "+100.00 (+10.00 %)" in table and "binance BTC/USDT 1m" in table


def test_a_bot_with_an_error_beside_one_without_shows_both(panel, store):
    # regression: pandas holds NaN for the bot without an error; the table sliced it
    store.upsert_bot("calm", strategy="sma_cross", name="calm")
    store.upsert_bot("hurt", strategy="sma_cross", name="hurt")
    store.update_bot("hurt", status="failed", last_error="CandleError: boom")
    panel.refresh()
    assert panel.error.value == ""
    assert panel.rows["calm"]["last_error"] is None
    assert panel.rows["hurt"]["last_error"] == "CandleError: boom"
    assert "CandleError: boom" in panel.table.value
