"""The backtest panel in a real browser: Voila serves a dashboard, Chromium clicks through it.

``dashboard.ipynb`` (beside this file, not in ``notebooks/``: those all run
under nbval) shows a :class:`~tcp_lab.ui.BacktestPanel` on synthetic candles.
The test waits for the widgets to render, runs a backtest, changes a control
and runs again, then enters an invalid parameter, and checks each time that
what the page shows changes accordingly. Screenshots of each step are left in
the test's tmp dir.

Run alone with ``python -m pytest tests/e2e -q``. Skips without Chromium,
Voila or Playwright, except under ``TCP_LAB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).with_name("dashboard.ipynb")
FIRST_RENDER_MS = 90_000  # Voila starts a kernel that imports pandas, ipywidgets and plotly
RUN_MS = 90_000  # the first run imports vectorbt and compiles its kernels
STEP_MS = 30_000


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(240)
def test_backtest_panel_runs_and_reports_errors_in_the_browser(serve_notebook, browser_page,
                                                               tmp_path):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    server = serve_notebook(DASHBOARD)
    page, page_log = browser_page
    shots = tmp_path / "screenshots"

    def context() -> str:
        try:
            shown = page.inner_text("body", timeout=5_000)[-3000:]
        except PlaywrightError as e:
            shown = f"(unreadable: {e})"
        return (f"\n{page_log}\n--- page text ---\n{shown}\n"
                f"--- Voila log ---\n{server.log_tail()}")

    try:
        page.goto(server.url, wait_until="domcontentloaded", timeout=FIRST_RENDER_MS)
        run = page.get_by_role("button", name="Run backtest")
        # A notebook cell that fails shows its traceback as stderr output: stop there
        # (a mere warning on stderr is no reason to).
        cell_error = page.locator(".jp-OutputArea-output[data-mime-type="
                                  "'application/vnd.jupyter.stderr']").filter(
            has_text=re.compile(r"Traceback|\w+Error:"))
        run.or_(cell_error).first.wait_for(state="visible", timeout=FIRST_RENDER_MS)
        assert cell_error.count() == 0, "the dashboard notebook failed to run"
        fast = page.get_by_label("fast", exact=True)
        expect(fast).to_have_value("10", timeout=STEP_MS)
        metrics = page.locator("table.tcp-lab-metrics")
        error = page.locator(".tcp-lab-error")
        charts = page.locator(".js-plotly-plot")
        expect(metrics).to_have_count(0)
        expect(error).to_have_count(0)
        page.screenshot(path=shots / "1-rendered.png", full_page=True)

        # Run with the defaults: the metrics table and both plotly FigureWidgets appear.
        run.click()
        expect(metrics).to_be_visible(timeout=RUN_MS)
        expect(metrics).to_contain_text("sharpe")
        expect(metrics).to_contain_text("n_trades")
        expect(page.get_by_text("sma_cross(fast=10, slow=30) on 1m —")).to_be_visible()
        expect(charts).to_have_count(2, timeout=STEP_MS)
        expect(charts.first).to_contain_text("sma_fast")  # the legend of the price chart
        first_table = metrics.inner_text()
        page.screenshot(path=shots / "2-ran.png", full_page=True)

        # Change a control, run again: the status and the metrics follow the new value.
        fast.fill("5")
        fast.press("Enter")  # text widgets sync on Enter/blur (continuous_update=False)
        run.click()
        expect(page.get_by_text("sma_cross(fast=5, slow=30) on 1m —")).to_be_visible(
            timeout=STEP_MS)
        expect(metrics).not_to_have_text(first_table, timeout=STEP_MS)
        expect(error).to_have_count(0)

        # An invalid combination: an error in place, no stale metrics or charts.
        fast.fill("60")
        fast.press("Enter")
        run.click()
        expect(error).to_be_visible(timeout=STEP_MS)
        expect(error).to_contain_text("StrategyError")
        expect(error).to_contain_text("must be less than")
        expect(error).not_to_contain_text("Traceback")
        expect(metrics).to_have_count(0)
        expect(charts).to_have_count(0)
        page.screenshot(path=shots / "3-error.png", full_page=True)
    except (AssertionError, PlaywrightError) as e:  # a timeout is a PlaywrightError
        page.screenshot(path=shots / "failure.png", full_page=True)
        raise AssertionError(f"{e}{context()}") from e

    assert not page_log.errors, f"uncaught errors in the page{context()}"
    assert sorted(p.name for p in shots.iterdir()) == ["1-rendered.png", "2-ran.png",
                                                       "3-error.png"]
