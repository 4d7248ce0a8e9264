"""Smoke run of benchmarks/bench_trades.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_trades_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_trades

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    monkeypatch.setitem(bench_trades.QUICK, "trades", 200_000)
    monkeypatch.setitem(bench_trades.QUICK, "store_trades", 50_000)
    monkeypatch.setenv("TCP_LAB_HOME", str(tmp_path / "home"))
    assert bench_trades.main(["--quick"]) == 0
    rows = json.loads((tmp_path / "trades.quick.json").read_text())["rows"]
    assert [r["case"].split(",")[0] for r in rows] == [
        "numpy pass over ts and price", "engine", "engine", 'run_backtest(trades="store")',
        "sweep on trades: SMA grid x 5 stop-losses"]
    assert all(r["seconds"] > 0 for r in rows) and rows[3]["peak_rss_mb"] > 0
    assert rows[1]["round_trips"] == rows[2]["round_trips"] > 0
    assert "trades/s on one core" in capsys.readouterr().out
