"""Smoke run of benchmarks/bench_batch.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_batch_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_batch

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_batch.main(["--quick", "--workers", "2"]) == 0
    payload = json.loads((tmp_path / "batch.quick.json").read_text())
    modes = [row["mode"] for row in payload["rows"]]
    assert modes == ["serial", "process pool"]
    assert all(row["runs"] == 2 and row["seconds"] > 0 for row in payload["rows"])
    assert payload["rows"][0]["speedup"] == 1.0
    assert "process pool" in capsys.readouterr().out
