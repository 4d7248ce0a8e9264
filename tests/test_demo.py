"""The demo runs end to end on the embedded default and leaves its report."""

from __future__ import annotations

import pytest

from tcp_lab.demo import run_demo


@pytest.mark.slow
def test_demo_runs_offline_and_writes_its_report(tmp_path, monkeypatch):
    # A user's production URLs must not be used (or touched) by the demo.
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    lines: list[str] = []
    result = run_demo(tmp_path / "home", report_dir=tmp_path / "reports", days=1, say=lines.append)
    assert result.report.is_file()
    html = result.report.read_text()
    assert "Stored candles" in html and "plotly" in html
    assert result.database_url.startswith("duckdb:///")
    assert set(result.series["symbol"]) == {"BTC/USDT", "ETH/USDT"}
    assert (result.series["candles"] > 0).all()
    assert result.metrics["n_trades"] >= 0
    assert any(str(result.report) in line for line in lines)
    # Running it again is fine (idempotent writes, same store).
    again = run_demo(tmp_path / "home", report_dir=tmp_path / "reports", days=1, say=lines.append)
    assert again.series["candles"].tolist() == result.series["candles"].tolist()
