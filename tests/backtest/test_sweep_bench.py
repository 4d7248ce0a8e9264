"""Smoke test of ``benchmarks/bench_sweep.py --quick`` (no timing assertions)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_sweep_quick_writes_its_table(tmp_path, monkeypatch, capsys):
    from benchmarks import _report, bench_sweep

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    bench_sweep.main(["--quick"])
    data = json.loads((tmp_path / "sweep.quick.json").read_text())
    runs = [r["run"] for r in data["rows"]]
    assert runs[0] == "sweep fused" and any(r.startswith("vectorbt") for r in runs)
    assert all(r["combos_per_s"] > 0 for r in data["rows"])
    assert "EXTRAPOLATED" in data["notes"]
    assert "combos_per_s" in capsys.readouterr().out
