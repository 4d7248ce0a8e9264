"""Smoke run of benchmarks/bench_portfolio_bot.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_portfolio_bot_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_portfolio_bot

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_portfolio_bot.main(["--quick"]) == 0
    rows = json.loads((tmp_path / "portfolio_bot.quick.json").read_text())["rows"]
    assert [r["case"].split(",")[0] for r in rows] == ["portfolio bot", "portfolio bot",
                                                       "run_portfolio (reference)"]
    assert rows[0]["same_equity_as_run_portfolio"] is True
    assert rows[0]["close_times"] == rows[2]["close_times"] - 1  # the first one: the read
    assert "load average" in capsys.readouterr().out
