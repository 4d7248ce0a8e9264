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


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(300)
def test_stopping_the_command_stops_voila_and_its_kernel(tmp_path):
    """``kill`` of ``tcp-lab dashboard`` ends the Voila server and the page's kernel (they
    outlived it before, half a GB each)."""
    import signal
    import urllib.request

    import psutil

    with start_dashboard(ROOT, tmp_path) as (url, _):
        with urllib.request.urlopen(url, timeout=240) as page:  # the page starts a kernel
            assert b"tcp_lab" in page.read()
        command = psutil.Process(_command_pid(url))
        family = command.children(recursive=True)
        assert any("ipykernel" in " ".join(p.cmdline()) for p in family), family
        command.send_signal(signal.SIGTERM)
        command.wait(60)
        _, alive = psutil.wait_procs(family, timeout=60)
        assert not alive, [" ".join(p.cmdline())[:120] for p in alive]


def _command_pid(url: str) -> int:
    """The ``python -m tcp_lab dashboard`` process serving ``url``."""
    import psutil

    port = url.rsplit(":", 1)[1].strip("/")
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] and p.info["cmdline"][-1] == f"--port={port}" and \
                "dashboard" in p.info["cmdline"]:
            return p.pid
    raise AssertionError(f"no tcp-lab dashboard process on port {port}")
