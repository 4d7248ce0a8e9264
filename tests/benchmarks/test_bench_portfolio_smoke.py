"""Smoke run of benchmarks/bench_portfolio.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_portfolio_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_portfolio

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_portfolio.main(["--quick"]) == 0
    payload = json.loads((tmp_path / "portfolio.quick.json").read_text())
    rows = payload["rows"]
    assert [r["case"].split(",")[0] for r in rows] == ["run_portfolio",
                                                       "5 separate run_backtest calls"]
    assert all(r["wall_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert rows[0]["round_trips"] == rows[1]["round_trips"] > 0  # cash never runs short
    assert "load average" in capsys.readouterr().out
