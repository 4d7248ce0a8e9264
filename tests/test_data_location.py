"""Same data everywhere: what the demo collected is what a notebook and a panel see.

The demo's data step runs in a project folder with the default settings (no
``TCP_LAB_HOME``, no settings file); then notebook 02 runs from ``notebooks/`` and a
panel is built in a folder below the root. Both must read the stored series, not
synthetic candles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project (config/ and notebooks/ as in a clone) with default settings."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "config", root / "config")
    (root / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "02_backtest.ipynb", root / "notebooks")
    monkeypatch.delenv("TCP_LAB_HOME", raising=False)
    monkeypatch.delenv("TCP_LAB_SETTINGS_FILE", raising=False)
    monkeypatch.chdir(root)
    return root


@pytest.mark.slow
def test_after_the_demo_notebooks_and_panels_read_its_candles(project, monkeypatch):
    from tcp_lab.demo import run_demo
    from tcp_lab.settings import load_settings
    from tcp_lab.ui import MarketChartPanel

    demo = run_demo(report_dir=project / "reports", days=1, batch=False, say=lambda _: None)
    assert demo.database_url == f"duckdb:///{project.resolve() / 'data' / 'tcp_lab.duckdb'}"
    assert load_settings().database_url == demo.database_url

    # A notebook run from notebooks/ (as JupyterLab does) reads the stored series.
    out = project / "notebooks" / "out.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCP_LAB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "02_backtest.ipynb", str(out),
         "-p", "timeframe", "5m", "-p", "renderer", "json", "--log-output", "--no-progress-bar"],
        cwd=project / "notebooks", env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data source: store" in out.read_text(), "notebook 02 did not read the demo's candles"

    # A panel built in a new folder under the root sees the same series.
    scratch = project / "notebooks" / "scratch"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    panel = MarketChartPanel(strategy="sma_cross")
    assert {"BTC/USDT", "ETH/USDT"} <= set(panel.series["symbol"])
    assert panel.exchange_picker.value == "binance"
    assert len(panel.candles) > 0
