"""The backtest panel, driven like a user would: set values, click, look at what it shows."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tcp_lab.ui import BacktestPanel


@pytest.fixture(scope="module")
def candles():
    return make_candles(600, seed=1)


def test_run_shows_metrics_and_charts(candles):
    panel = BacktestPanel(candles, strategy="sma_cross")
    panel.controls["fast"].value = 5
    panel.controls["slow"].value = 25
    panel.fees.value = 0.0
    panel.run_button.click()
    assert panel.error.value == ""
    assert panel.result is not None
    assert dict(panel.result.parameters) == {"fast": 5, "slow": 25}
    assert panel.result.options["fees"] == 0.0
    assert "sharpe" in panel.metrics.value and "total_return" in panel.metrics.value
    assert f"{panel.result.metrics['n_trades']}" in panel.metrics.value
    assert len(panel.figures) == 2 and all(isinstance(f, go.FigureWidget) for f in panel.figures)
    names = {t.name for t in panel.figures[0].data}
    assert {"price", "sma_fast", "sma_slow"} <= names
    assert "sma_cross(fast=5, slow=25)" in panel.status.value


def test_bad_parameters_show_a_message_not_a_traceback(candles):
    panel = BacktestPanel(candles)
    panel.run_button.click()
    assert panel.result is not None
    panel.controls["fast"].value = 60  # fast >= slow
    panel.run_button.click()
    assert panel.result is None
    assert "StrategyError" in panel.error.value
    assert "must be less than" in panel.error.value
    assert "Traceback" not in panel.error.value
    assert panel.metrics.value == "" and panel.figures == []  # no stale results
    panel.controls["fast"].value = 5
    panel.run_button.click()
    assert panel.error.value == "" and panel.result is not None


def test_unexpected_errors_are_shown_in_place_too(candles, monkeypatch, caplog):
    panel = BacktestPanel(candles)

    def boom(*args, **kwargs):
        raise ZeroDivisionError("kaput")

    monkeypatch.setattr("tcp_lab.backtest.run_backtest", boom)
    panel.run_button.click()
    assert "unexpected ZeroDivisionError" in panel.error.value and "kaput" in panel.error.value
    assert "kaput" in caplog.text  # logged with its traceback for the developer


def test_switching_strategy_regenerates_controls(candles):
    panel = BacktestPanel(candles, strategy="sma_cross", parameters={"fast": 3})
    assert panel.controls["fast"].value == 3
    panel.strategy_picker.value = "rsi_reversion"
    assert list(panel.controls) == ["period", "lower", "upper"]
    assert list(panel._params_box.children) == list(panel.controls.values())
    panel.controls["lower"].value = 25.0
    panel.run_button.click()
    assert panel.error.value == ""
    assert panel.result.strategy_name == "rsi_reversion"
    assert panel.result.parameters["lower"] == 25.0


def test_without_candles_the_picker_offers_store_series_and_synthetic(tmp_path):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    with open_store(url) as store:
        store.save_candles(make_candles(400, "5m"), "binance", "ETH/USDT", "5m")
    panel = BacktestPanel(store=url, n_synthetic=500)
    values = [v for _, v in panel.source_picker.options]
    assert values == [("binance", "ETH/USDT", "5m"), "synthetic"]
    panel.source_picker.value = ("binance", "ETH/USDT", "5m")
    panel.run_button.click()
    assert panel.error.value == ""
    assert panel.result.symbol == "ETH/USDT" and panel.result.timeframe.name == "5m"
    assert len(panel.result.equity) == 400
    panel.source_picker.value = "synthetic"
    panel.run_button.click()
    assert len(panel.result.equity) == 500 and "synthetic" in panel.status.value


def test_fresh_machine_offers_synthetic_only_and_creates_no_database(tmp_path):
    url = f"duckdb:///{tmp_path / 'missing.duckdb'}"
    panel = BacktestPanel(store=url)
    assert [v for _, v in panel.source_picker.options] == ["synthetic"]
    assert not (tmp_path / "missing.duckdb").exists()


def test_unknown_strategy_name_is_a_strategy_error_with_a_suggestion():
    from tcp_lab.errors import StrategyError

    with pytest.raises(StrategyError, match="did you mean 'sma_cross'"):
        BacktestPanel(make_candles(100), strategy="sma_cros")
