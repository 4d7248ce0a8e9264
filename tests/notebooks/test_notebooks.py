"""Every ``notebooks/*.ipynb``: stored without outputs, and runs top to bottom under nbval.

Each notebook runs in a child ``pytest --nbval-lax --nbval-current-env``, so
its kernel is this interpreter's Python (the venv's) whatever kernels Jupyter
knows about, and it sees the isolated ``TCP_LAB_HOME`` of the test (an empty
store: notebooks fall back to synthetic data). Lax mode fails on any error
and compares only cells marked ``# NBVAL_CHECK_OUTPUT``. A failure shows the
child's report: the failing cell and its traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
CELL_TIMEOUT = 300  # seconds


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs; clear them before "
                       "committing (jupyter nbconvert --clear-output --inplace)")


@pytest.mark.parametrize("name", ["02_backtest.ipynb", "03_sweep.ipynb"])
def test_batchable_notebooks_declare_their_parameters(name):
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    declared = pm.inspect_notebook(str(path))
    assert {"strategy", "source", "metrics_path", "exchange", "symbol", "timeframe"} <= set(
        declared)
    assert declared["metrics_path"]["default"] in ("''", '""')  # records nothing by default


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_top_to_bottom_under_nbval(path, tmp_path):
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
           f"--nbval-cell-timeout={CELL_TIMEOUT}", "-p", "no:cacheprovider", "-q",
           "--rootdir", str(ROOT), str(path)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                          timeout=CELL_TIMEOUT * 4)
    assert proc.returncode == 0, (
        f"{path.name} failed under nbval (exit {proc.returncode}):\n"
        f"{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    assert " passed" in proc.stdout
