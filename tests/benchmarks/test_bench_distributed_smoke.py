"""Smoke run of benchmarks/bench_distributed.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_distributed_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_distributed

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_distributed.main(["--quick", "--no-batch"]) == 0
    rows = json.loads((tmp_path / "distributed.quick.json").read_text())["rows"]
    sweeps = [r for r in rows if r["run"] == "sweep"]
    assert [(r["where"], r["workers"]) for r in sweeps] == [
        ("in process", "-"), ("in process", "-"), ("LocalCluster", 1), ("LocalCluster", 2)]
    assert all(r["identical"] for r in sweeps)
    assert len({r["combos"] for r in sweeps}) == 1
    assert sum(r["run"] == "trivial tasks" for r in rows) == 2
    assert all(r["seconds"] > 0 for r in rows)
    assert "2 single-threaded workers run" in capsys.readouterr().out
