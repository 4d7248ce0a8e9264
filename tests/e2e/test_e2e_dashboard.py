"""``tcp-lab dashboard`` in a real browser: pick a series, run a backtest, start a bot, see its
status change, stop it; the page fits a 1366 px laptop screen.

The command runs as a user runs it (``python -m tcp_lab dashboard --port P`` from the
project root) on the embedded default of the test's home, which holds BTC/USDT 1m
candles up to now and one saved sweep. Screenshots of each step are left in the
test's tmp dir. Skips without Chromium, Voila or Playwright, except under
``TCP_LAB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.dashboard_steps import click_through, start_dashboard

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(420)
def test_dashboard_runs_a_backtest_and_a_bot_in_the_browser(browser_page, tmp_path):
    from tcp_lab.backtest import save_sweep, sweep
    from tcp_lab.settings import load_settings
    from tcp_lab.store import open_store
    from tcp_lab.testing import make_candles

    now = pd.Timestamp.now("UTC").floor("1min")
    candles = make_candles(600, "1m", start=now - pd.Timedelta(minutes=600), seed=5)
    with open_store(load_settings().database_url) as store:
        store.save_candles(candles, "binance", "BTC/USDT", "1m")
    save_sweep(sweep("sma_cross", candles, {"fast": [5, 10], "slow": [20, 40]},
                     timeframe="1m", progress=False), series="binance BTC/USDT 1m")
    page, page_log = browser_page
    shots = tmp_path / "screenshots"
    with start_dashboard(ROOT, tmp_path) as (url, log):
        click_through(page, page_log, url, log, shots)
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-rendered.png", "2-backtest.png", "2b-portfolio.png", "3-bot-running.png",
            "4-bot-stopped.png"]
