"""The demo runs end to end, offline, on the embedded default, and leaves its report."""

from __future__ import annotations

import pytest

from tcp_lab.demo import run_demo


@pytest.mark.slow
def test_demo_runs_offline_and_writes_its_report(tmp_path, monkeypatch):
    # A user's production URLs must not be used (or touched) by the demo.
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("TCP_LAB_SCHEDULER", "tcp://127.0.0.1:9")  # nor a cluster
    lines: list[str] = []
    result = run_demo(tmp_path / "home", report_dir=tmp_path / "reports", days=1,
                      say=lines.append)
    assert result.report.is_file()
    html = result.report.read_text()
    for section in ("Stored candles", "Backtest", "Paper bot replay", "Batch", "plotly"):
        assert section in html
    assert result.database_url.startswith("duckdb:///")
    assert set(result.series["symbol"]) == {"BTC/USDT", "ETH/USDT"}
    assert set(result.series["timeframe"]) == {"1m", "5m", "1h"}
    assert (result.series["candles"] > 0).all()
    assert result.bot_matches_backtest
    assert result.batch_dir is not None and (result.batch_dir / "summary.csv").is_file()
    assert any(str(result.report) in line for line in lines)

    # Running it again resumes: the same series, the bot still matches the backtest.
    again = run_demo(tmp_path / "home", report_dir=tmp_path / "reports", days=1, batch=False,
                     say=lines.append)
    assert again.series["candles"].sum() >= result.series["candles"].sum()
    assert again.bot_matches_backtest
