"""Smoke test of ``benchmarks/bench_walk_forward.py --quick`` (no timing assertions)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_walk_forward_quick_writes_its_table(tmp_path, monkeypatch, capsys):
    from benchmarks import _report, bench_walk_forward

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    bench_walk_forward.main(["--quick"])
    data = json.loads((tmp_path / "walk_forward.quick.json").read_text())
    runs = [r["run"] for r in data["rows"]]
    assert runs == ["sweep", "walk-forward train = test", "walk-forward train = 2 x test"]
    assert all(r["wall_s"] > 0 and r["combos"] == data["rows"][0]["combos"]
               for r in data["rows"])
    assert [r["folds"] for r in data["rows"][1:]] == [10, 10]
    assert "within 2x" in data["notes"]
    assert "vs_sweep" in capsys.readouterr().out
