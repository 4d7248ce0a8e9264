"""Smoke run of benchmarks/bench_backtest.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_backtest_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_backtest

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_backtest.main(["--quick", "--repeat", "1"]) == 0
    payload = json.loads((tmp_path / "backtest.quick.json").read_text())
    cases = [row["case"] for row in payload["rows"]]
    assert cases.count("per-bar loop process_data(candles[:t+1])") == 2
    assert any(c.startswith("raw vectorbt, tz-aware") for c in cases)
    assert all(row["seconds"] > 0 for row in payload["rows"])
    assert "run_backtest" in capsys.readouterr().out
