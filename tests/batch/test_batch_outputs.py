"""Batch outputs stay small and open offline: no plotly.js or widget state in the notebooks,
one ``plotly.min.js`` per batch folder for every run's HTML export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tcp_lab.batch import run_batch, run_one
from tcp_lab.reports.assets import PLOTLYJS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
NB02 = ROOT / "notebooks" / "02_backtest.ipynb"
LIMIT = 2_000_000  # bytes, per file


def _script_sources(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\ssrc=['\"]([^'\"]+)['\"]", page)


def test_a_batch_run_leaves_small_files_that_load_a_local_plotly_js(tmp_path):
    # the notebook's own renderer default: what `tcp-lab batch` users get
    config = {"name": "small", "notebook": str(NB02), "executor": "serial",
              "parameters": {"strategy": "sma_cross", "source": "synthetic",
                             "n_synthetic": 3000, "parameters": {"fast": 5, "slow": 20}}}
    result = run_batch(config, output_dir=tmp_path / "out", progress=False)
    [rec] = result.records
    assert rec.ok, rec.error
    notebook, page = Path(rec.notebook), Path(rec.html)
    assert notebook.stat().st_size < LIMIT and page.stat().st_size < LIMIT
    text = page.read_text()
    assert text.count('class="plotly-graph-div"') == 2  # the strategy and equity figures
    local = [s for s in _script_sources(text) if "plotly" in s]
    assert local == [f"../{PLOTLYJS}"]
    assert (page.parent / local[0]).resolve() == (result.output_dir / PLOTLYJS).resolve()
    assert (result.output_dir / PLOTLYJS).stat().st_size > 1_000_000  # the real plotly.js
    assert "plotly.js v" not in notebook.read_text()  # not embedded in the notebook


def test_widget_state_is_not_stored_and_widgets_become_a_note(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider(3)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    src = tmp_path / "widget.ipynb"
    nbformat.write(nb, src)
    rec = run_one(src, {}, tmp_path / "batch" / "run-000", metrics_parameter=None,
                  assets_dir=tmp_path / "batch")
    assert rec.ok, rec.error
    executed = json.loads(Path(rec.notebook).read_text())
    assert "widgets" not in executed["metadata"]
    page = Path(rec.html).read_text()
    assert "interactive panel (ipywidgets)" in page.lower()
    assert not (tmp_path / "batch" / PLOTLYJS).exists()  # no figures: no plotly.js
