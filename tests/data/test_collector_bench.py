"""Smoke test of ``benchmarks/bench_collect.py --quick`` (figures are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_collect


@pytest.mark.slow
def test_quick_benchmark_runs_and_writes_json(capsys):
    assert bench_collect.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "candles_per_s" in out
    path = out.strip().splitlines()[-1].removeprefix("-> ")
    payload = json.loads(Path(path).read_text())
    rows = [r for r in payload["rows"] if r["candles"]]
    assert payload["quick"] and rows and all(r["candles"] == rows[0]["candles"] for r in rows)
