"""Smoke run of benchmarks/bench_stats.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_stats_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_stats

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    bench_stats.main(["--quick"])
    payload = json.loads((tmp_path / "stats.quick.json").read_text())
    runs = [row["run"] for row in payload["rows"]]
    assert runs[0] == "pbo sharpe, T=10,000 (float32)"
    assert runs[-1].startswith("naive numpy per combination")
    assert all(row["combinations"] == 70 and row["wall_s"] > 0 for row in payload["rows"])
    assert 0.0 <= payload["rows"][0]["pbo"] <= 1.0
    assert "pbo sharpe" in capsys.readouterr().out
