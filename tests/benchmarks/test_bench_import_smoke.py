"""Smoke run of benchmarks/bench_import.py --quick (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_import_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _report, bench_import

    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    assert bench_import.main(["--quick", "--rows", "20000"]) == 0
    payload = json.loads((tmp_path / "import.quick.json").read_text())
    cases = [row["case"] for row in payload["rows"]]
    assert cases == ["DuckDB read_csv -> table", "DuckDB read_csv -> raw_trades shape, no key",
                     "DuckDB read_csv -> raw_trades shape, primary key",
                     "tcp-lab data import, fresh DuckDB file",
                     "tcp-lab data import again (all stored)"]
    assert all(row["rows"] == 20_000 and row["rows/s"] > 0 for row in payload["rows"])
    assert "tcp-lab data import" in capsys.readouterr().out
