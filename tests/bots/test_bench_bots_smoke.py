"""Smoke run of benchmarks/bench_bots.py --quick on the embedded default (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_bots_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_bots

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_bots.main(["--quick", "--backends", "embedded"]) == 0
    rows = json.loads((tmp_path / "bots.quick.json").read_text())["rows"]
    latency = [r for r in rows if "bots" in r]
    assert [r["bots"] for r in latency] == [1, 3]
    assert all(r["samples"] == r["bots"] * 4 and r["p99_ms"] >= r["p50_ms"] > 0
               for r in latency)
    assert all(r["fills"] == r["bots"] * 5 for r in latency)  # every candle fills
    split = [r for r in rows if "store_writes_ms" in r]
    assert len(split) == 1 and split[0]["store_writes_ms"] > 0
    assert "p99" in capsys.readouterr().out
