"""A new user's walkthrough, scripted: the demo twice, a clean data check, the dashboard.

In a fresh project folder (this clone's ``config/``, default settings: no
``TCP_LAB_HOME``, no settings file) the test runs ``tcp-lab demo`` twice as ``make
demo`` does (with one day of candles to keep it short), ``tcp-lab data check`` (clean:
the demo's repair confirmed the quiet minutes with the emulator), then ``tcp-lab
dashboard`` over the demo's store and clicks through it in Chromium. The README's
blocks run in ``tests/test_readme.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.dashboard_steps import click_through, start_dashboard

ROOT = Path(__file__).parents[2]


def _cli(project: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcp_lab", *args], cwd=project,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(1200)
def test_demo_twice_then_a_clean_check_then_the_dashboard(browser_page, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "config", project / "config")
    monkeypatch.delenv("TCP_LAB_HOME")
    monkeypatch.delenv("TCP_LAB_SETTINGS_FILE")

    first = _cli(project, "demo", "--days", "1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = _cli(project, "demo", "--days", "1")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "replacing the batch of the previous demo" in second.stdout
    store = project / "data" / "tcp_lab.duckdb"
    assert f"database:      duckdb:///{store}" in second.stdout
    assert (project / "reports" / "demo.html").is_file()

    check = _cli(project, "data", "check")
    assert check.returncode == 0, f"data check after the demo:\n{check.stdout}{check.stderr}"
    assert "NOT OK" not in check.stdout

    page, page_log = browser_page
    with start_dashboard(project, tmp_path) as (url, log):
        click_through(page, page_log, url, log, tmp_path / "screenshots", saved_sweep=False)
