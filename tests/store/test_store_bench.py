"""Smoke run of benchmarks/bench_store.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_store_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_store

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_store.main(["--quick"]) == 0
    payload = json.loads((tmp_path / "store.quick.json").read_text())
    assert payload["quick"] is True
    duck = {r["measurement"]: r for r in payload["rows"] if r["backend"] == "duckdb"}
    assert set(duck) == set(bench_store.UNITS)
    assert all(r["tcp_lab"] > 0 and r["raw engine"] > 0 for r in duck.values())
    assert {r["backend"] for r in payload["rows"]} == {"duckdb", "postgresql"}
    assert "range read" in capsys.readouterr().out
