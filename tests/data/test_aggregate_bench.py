"""Smoke test of ``benchmarks/bench_aggregate.py --quick`` (no timing assertions)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_aggregate_quick_writes_its_table(tmp_path, monkeypatch, capsys):
    from benchmarks import _report, bench_aggregate

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    res = bench_aggregate.main(["--quick"])
    data = json.loads((tmp_path / "aggregate.quick.json").read_text())
    runs = [r["run"] for r in data["rows"]]
    assert runs[0] == "aggregate_trades 1m" and any(r.startswith("pandas") for r in runs)
    assert all(r["trades_per_s"] > 0 for r in data["rows"])
    ident = res["batch"]["identical_to_pandas"]
    assert ident["index"] and ident["ohlc"] and ident["trade_count"]
    assert ident["volume_max_rel_diff"] < 1e-12
    assert res["chunked"]["all_trades_counted"]
    assert "OHLC identical True" in capsys.readouterr().out
