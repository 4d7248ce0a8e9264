"""``tcp-lab dashboard`` in a real browser: pick a series, run a backtest, start a bot, see its
status change, stop it; the page fits a 1366 px laptop screen.

The command runs as a user runs it (``python -m tcp_lab dashboard --port P`` from the
project root) on the embedded default of the test's home, which holds BTC/USDT 1m
candles up to now and one saved sweep. Screenshots of each step are left in the
test's tmp dir. Skips without Chromium, Voila or Playwright, except under
``TCP_LAB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.conftest import _free_port, _listening, _stop, _voila_env

ROOT = Path(__file__).parents[2]
FIRST_RENDER_MS = 120_000  # the kernel imports the panels and starts a bot manager
RUN_MS = 90_000
STEP_MS = 45_000


@pytest.fixture
def dashboard(tmp_path):
    """The dashboard command on a free port, over a home with candles and a sweep."""
    from tcp_lab.backtest import save_sweep, sweep
    from tcp_lab.settings import load_settings
    from tcp_lab.store import open_store
    from tcp_lab.testing import make_candles

    settings = load_settings()
    now = pd.Timestamp.now("UTC").floor("1min")
    candles = make_candles(600, "1m", start=now - pd.Timedelta(minutes=600), seed=5)
    with open_store(settings.database_url) as store:
        store.save_candles(candles, "binance", "BTC/USDT", "1m")
    save_sweep(sweep("sma_cross", candles, {"fast": [5, 10], "slow": [20, 40]},
                     timeframe="1m", progress=False), series="binance BTC/USDT 1m")
    port = _free_port()
    log = tmp_path / "dashboard.log"
    env = _voila_env(tmp_path / "jupyter")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tcp_lab", "dashboard", f"--port={port}"], cwd=ROOT,
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        _stop(process)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(420)
def test_dashboard_runs_a_backtest_and_a_bot_in_the_browser(dashboard, browser_page, tmp_path):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    url, log = dashboard
    assert f"dashboard: {url}" in log.read_text()  # the command prints where to go
    page, page_log = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    shots = tmp_path / "screenshots"
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=FIRST_RENDER_MS)
        run = page.get_by_role("button", name="Run backtest")
        run.wait_for(state="visible", timeout=FIRST_RENDER_MS)
        expect(page.get_by_text("store duckdb:///")).to_be_visible()
        charts = page.locator(".js-plotly-plot")
        expect(charts).to_have_count(2, timeout=STEP_MS)  # market chart and sweep heatmap
        page.screenshot(path=shots / "1-rendered.png", full_page=True)

        # Pick the stored series and run a backtest on it.
        data = page.get_by_label("data", exact=True)
        data.select_option(label=data.locator("option", has_text="binance BTC/USDT 1m")
                           .first.inner_text())
        run.click()
        metrics = page.locator("table.tcp-lab-metrics")
        expect(metrics).to_be_visible(timeout=RUN_MS)
        expect(page.get_by_text("sma_cross(fast=10, slow=30) on binance BTC/USDT 1m —")
               ).to_be_visible()
        expect(charts).to_have_count(4, timeout=STEP_MS)
        page.screenshot(path=shots / "2-backtest.png", full_page=True)

        # Start a bot from config/bots, see it run, stop it.
        picker = page.get_by_placeholder("bot or config name")
        picker.fill("sma-btc")
        picker.press("Enter")
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_text("started bot sma-btc")).to_be_visible(timeout=STEP_MS)
        row = page.locator("tr", has_text="sma-btc")
        expect(row.first).to_contain_text("running", timeout=STEP_MS)
        page.screenshot(path=shots / "3-bot-running.png", full_page=True)
        page.get_by_role("button", name="Stop").click()
        expect(page.get_by_text("stopped bot sma-btc")).to_be_visible(timeout=STEP_MS)
        expect(row.first).to_contain_text("stopped", timeout=STEP_MS)
        expect(page.locator(".tcp-lab-error")).to_have_count(0)

        # Readable on a laptop: no horizontal page scroll; charts use the page's width.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        widths = [charts.nth(i).bounding_box()["width"] for i in range(charts.count())]
        assert min(widths) > 900, f"charts narrower than the page: {widths}"
        page.screenshot(path=shots / "4-bot-stopped.png", full_page=True)
    except (AssertionError, PlaywrightError) as e:
        page.screenshot(path=shots / "failure.png", full_page=True)
        text = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{e}\n{page_log}\n--- dashboard log ---\n{text}") from e
    assert not page_log.errors, f"uncaught errors in the page: {page_log}"
    assert os.path.getsize(shots / "4-bot-stopped.png") > 0
