"""What a user does with ``tcp-lab dashboard``, shared by the dashboard test and the walkthrough.

:func:`start_dashboard` runs the command as a user runs it (``python -m tcp_lab
dashboard --port P`` in a project folder) and waits for it to listen;
:func:`click_through` drives the page: pick a stored series, run a backtest, start a bot
from ``config/bots``, see it run, stop it, and check the page fits a 1366 px screen.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import _free_port, _listening, _stop, _voila_env

FIRST_RENDER_MS = 120_000  # the kernel imports the panels and starts a bot manager
RUN_MS = 90_000
STEP_MS = 45_000


@contextmanager
def start_dashboard(cwd: Path, scratch: Path,
                    env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """``tcp-lab dashboard`` in ``cwd`` on a free port; yields its URL and its log."""
    port = _free_port()
    log = scratch / "dashboard.log"
    full_env = _voila_env(scratch / "jupyter")
    full_env.update(env or {})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tcp_lab", "dashboard", f"--port={port}"], cwd=cwd,
            env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        url = f"http://127.0.0.1:{port}/"
        assert f"dashboard: {url}" in log.read_text()  # the command prints where to go
        yield url, log
    finally:
        _stop(process)


def click_through(page: Any, page_log: Any, url: str, log: Path, shots: Path, *,
                  series: str = "binance BTC/USDT 1m", saved_sweep: bool = True) -> None:
    """Drive the dashboard at ``url``; raise AssertionError with the page and the log.

    ``saved_sweep``: the home holds a saved sweep, so the page starts with its heatmap
    beside the market chart.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1366, "height": 900})
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=FIRST_RENDER_MS)
        run = page.get_by_role("button", name="Run backtest")
        run.wait_for(state="visible", timeout=FIRST_RENDER_MS)
        expect(page.get_by_text("store duckdb:///")).to_be_visible()
        charts = page.locator(".js-plotly-plot")
        first = 2 if saved_sweep else 1  # the market chart (and the sweep's heatmap)
        expect(charts).to_have_count(first, timeout=STEP_MS)
        if not saved_sweep:
            expect(page.get_by_text("no saved sweeps in")).to_be_visible()
        page.screenshot(path=shots / "1-rendered.png", full_page=True)

        # Pick the stored series and run a backtest on it.
        data = page.get_by_label("data", exact=True)
        data.select_option(label=data.locator("option", has_text=series).first.inner_text())
        run.click()
        expect(page.locator("table.tcp-lab-metrics")).to_be_visible(timeout=RUN_MS)
        expect(page.get_by_text(f"sma_cross(fast=10, slow=30) on {series} —")).to_be_visible()
        expect(charts).to_have_count(first + 2, timeout=STEP_MS)
        page.screenshot(path=shots / "2-backtest.png", full_page=True)

        # The portfolio panel: the stored symbols of the first series, one account.
        page.get_by_role("button", name="Run portfolio").click()
        expect(page.locator("table.tcp-lab-metrics")).to_have_count(2, timeout=RUN_MS)
        expect(charts).to_have_count(first + 3, timeout=STEP_MS)
        page.screenshot(path=shots / "2b-portfolio.png", full_page=True)

        # Start a bot from config/bots, see it run, stop it.
        picker = page.get_by_placeholder("bot or config name")
        picker.fill("sma-btc")
        picker.press("Enter")
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_text("started bot sma-btc")).to_be_visible(timeout=STEP_MS)
        row = page.locator("tr").filter(has=page.get_by_role("cell", name="sma-btc", exact=True))
        expect(row).to_contain_text("running", timeout=STEP_MS)
        page.screenshot(path=shots / "3-bot-running.png", full_page=True)
        page.get_by_role("button", name="Stop").click()
        expect(page.get_by_text("stopped bot sma-btc")).to_be_visible(timeout=STEP_MS)
        expect(row).to_contain_text("stopped", timeout=STEP_MS)
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
