"""The dashboard in process: every panel over the resolved settings; bots run here on the
embedded default; the sweep section shows the newest saved sweep."""

from __future__ import annotations

import time

from tcp_lab.backtest import save_sweep, sweep
from tcp_lab.settings import load_settings
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tcp_lab.ui.dashboard import Dashboard
from tcp_lab.ui.sweep_panel import SweepPanel


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_the_dashboard_shows_the_store_runs_bots_and_the_newest_sweep(tmp_path,
                                                                        memory_bus_url):
    settings = load_settings(home=str(tmp_path / "home"), redis_url=memory_bus_url)
    candles = make_candles(300, "1m", seed=2)
    with open_store(settings.database_url) as store:
        store.save_candles(candles, "binance", "BTC/USDT", "1m")
    df = sweep("sma_cross", candles, {"fast": [5, 10], "slow": [20, 30]}, timeframe="1m",
               progress=False)
    save_sweep(df, home=settings.home, series="binance BTC/USDT 1m")

    board = Dashboard(settings)
    try:
        assert board.manager is not None  # embedded: the bots run in this process
        assert ("binance", "BTC/USDT", "1m") in [v for _, v in board.backtest.source_picker.options]
        assert len(board.market.candles) == 300
        assert board.sweep.figure is not None
        assert board.sweep.summary()["x"] == "fast" and board.sweep.summary()["y"] == "slow"
        board.backtest.source_picker.value = ("binance", "BTC/USDT", "1m")
        assert board.backtest.run() is not None

        board.bots.bot_picker.value = "sma-btc"  # config/bots of the project root
        assert board.bots.start(), board.bots.message
        assert board.bots.message.startswith("started bot sma-btc")
        assert _wait(lambda: board.manager.status("sma-btc")["status"] == "running")
        assert board.bots.stop(), board.bots.message
        assert board.manager.status("sma-btc")["status"] == "stopped"
        assert not board.bots.stop("no-such-bot")
        assert board.bots.status.value == "" and "no-such-bot" in board.bots.message
    finally:
        board.close()


def test_the_sweep_panel_says_when_there_is_nothing_to_show(tmp_path):
    panel = SweepPanel(tmp_path)
    assert panel.figure is None
    assert "no saved sweeps" in panel.status.value
