"""The portfolio panel, driven like a user would: pick symbols, set values, click, look."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

import tcp_lab.portfolio
from tcp_lab.errors import ConfigError
from tcp_lab.portfolio import SIZINGS, run_portfolio
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tcp_lab.ui import PortfolioPanel
from tcp_lab.ui.portfolio_panel import takes_size

SYMBOLS_1M = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
PARAMS = {"fast": 5, "slow": 20}


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    """binance 1m: three symbols; binance 5m: one."""
    url = f"duckdb:///{tmp_path_factory.mktemp('portfolio') / 'lab.duckdb'}"
    with open_store(url) as store:
        for k, symbol in enumerate(SYMBOLS_1M):
            store.save_candles(make_candles(300, seed=k), "binance", symbol, "1m")
        store.save_candles(make_candles(300, "5m", seed=9), "binance", "ETH/USDT", "5m")
    return url


@pytest.fixture(scope="module")
def universe():
    return {s: make_candles(300, seed=k) for k, s in enumerate(SYMBOLS_1M)}


def spy_on_run_portfolio(monkeypatch) -> list[dict]:
    calls: list[dict] = []

    def spy(strategy, candles_by_symbol, **kwargs):
        calls.append(kwargs)
        return run_portfolio(strategy, candles_by_symbol, **kwargs)

    monkeypatch.setattr(tcp_lab.portfolio, "run_portfolio", spy)
    return calls


def test_pickers_list_the_store_groups_and_their_symbols(store_url):
    panel = PortfolioPanel(store=store_url)
    assert [v for _, v in panel.series_picker.options] == [("binance", "1m"), ("binance", "5m")]
    assert panel.series_picker.value == ("binance", "1m")
    assert panel.symbol_picker.options == SYMBOLS_1M
    assert panel.symbol_picker.value == SYMBOLS_1M  # up to DEFAULT_SYMBOLS are picked
    panel.series_picker.value = ("binance", "5m")
    assert panel.symbol_picker.options == ("ETH/USDT",)
    assert panel.symbol_picker.value == ("ETH/USDT",)
    panel.run_button.click()
    assert panel.error.value == ""
    assert panel.result.symbols == ["ETH/USDT"] and panel.result.timeframe.name == "5m"


def test_the_first_five_symbols_are_picked_by_default():
    many = {f"S{k}/USDT": make_candles(50, seed=k) for k in range(7)}
    panel = PortfolioPanel(many)
    assert len(panel.symbol_picker.options) == 7
    assert panel.symbol_picker.value == tuple(sorted(many)[:5])
    panel = PortfolioPanel(many, symbols=["S6/USDT"])
    assert panel.symbol_picker.value == ("S6/USDT",)


def test_run_on_two_stored_symbols_equals_run_portfolio(store_url):
    panel = PortfolioPanel(store=store_url, parameters=PARAMS, sizing="equal", fees=0.0005)
    panel.symbol_picker.value = ("BTC/USDT", "SOL/USDT")
    result = panel.run()
    assert panel.error.value == "" and result is panel.result
    with open_store(store_url) as store:
        wide = store.load_candles_many("binance", ["BTC/USDT", "SOL/USDT"], "1m")
    direct = run_portfolio("sma_cross", wide, parameters=PARAMS, sizing="equal", fees=0.0005)
    pd.testing.assert_series_equal(result.equity, direct.equity, check_exact=True)
    pd.testing.assert_frame_equal(result.trades, direct.trades, check_exact=True)
    assert result.symbols == ["BTC/USDT", "SOL/USDT"] and result.exchange == "binance"
    assert "total_return" in panel.metrics.value and "sharpe" in panel.metrics.value
    assert "BTC/USDT" in panel.by_symbol.value and "SOL/USDT" in panel.by_symbol.value
    assert len(panel.figures) == 1 and isinstance(panel.figures[0], go.FigureWidget)
    assert {"equity", "BTC/USDT", "SOL/USDT"} <= {t.name for t in panel.figures[0].data}
    assert "sma_cross(fast=5, slow=20)" in panel.status.value


def test_sizing_size_and_max_positions_reach_run_portfolio(universe, monkeypatch):
    calls = spy_on_run_portfolio(monkeypatch)
    panel = PortfolioPanel(universe, parameters=PARAMS)
    assert list(panel.sizing_picker.options) == list(SIZINGS)
    assert panel.sizing_picker.value == "equal" and panel.size.disabled
    panel.sizing_picker.value = "fixed_value"
    assert not panel.size.disabled
    panel.size.value = 1_000.0
    panel.max_positions.value = 1
    panel.run_button.click()
    assert panel.error.value == ""
    assert calls[-1] | {"parameters": None} == {
        "parameters": None, "sizing": "fixed_value", "size": 1_000.0, "max_positions": 1,
        "stop_loss": None, "vol_window": None, "direction": "long", "leverage": 1.0,
        "maintenance_margin": 0.005, "init_cash": 10_000.0, "fees": 0.001, "slippage": 0.0,
        "timeframe": None}
    assert calls[-1]["parameters"] == PARAMS
    assert panel.result.options["sizing"] == "fixed_value"
    assert (panel.result.skipped["reason"] == "max_positions").any()
    panel.sizing_picker.value = "all_in"
    panel.max_positions.value = 0  # no cap
    panel.stop_loss.value = 0.02
    assert panel.size.disabled
    panel.run_button.click()
    assert panel.error.value == ""
    assert calls[-1]["sizing"] == "all_in" and calls[-1]["stop_loss"] == 0.02
    assert calls[-1]["size"] is None and calls[-1]["max_positions"] is None
    assert panel.result.options["stop_loss"] == 0.02
    assert panel.maintenance_margin.disabled  # no leverage: no margin
    panel.direction.value, panel.leverage.value = "longshort", 2.0
    assert not panel.maintenance_margin.disabled
    panel.maintenance_margin.value = 0.02
    panel.run_button.click()
    assert panel.error.value == ""
    assert calls[-1]["direction"] == "longshort" and calls[-1]["leverage"] == 2.0
    assert panel.result.options["leverage"] == 2.0 and panel.result.cash.min() < 0  # borrowed
    assert panel.result.options["maintenance_margin"] == 0.02
    assert panel.vol_window.disabled
    panel.leverage.value = 1.0
    panel.sizing_picker.value, panel.size.value = "volatility_target", 0.3
    assert not panel.vol_window.disabled
    panel.vol_window.value = 12
    panel.run_button.click()
    assert panel.error.value == ""
    assert calls[-1]["vol_window"] == 12 and panel.result.options["vol_window"] == 12


def test_the_size_box_follows_the_sizings_that_take_a_size(universe):
    panel = PortfolioPanel(universe)
    for sizing in SIZINGS:
        panel.sizing_picker.value = sizing
        assert panel.size.disabled is not takes_size(sizing)
    assert not takes_size("all_in") and not takes_size("equal")
    assert takes_size("fixed_value") and takes_size("fixed_fraction")


def test_no_symbol_picked_is_a_message_and_no_result(universe):
    panel = PortfolioPanel(universe)
    assert panel.run() is not None
    panel.symbol_picker.value = ()
    assert panel.run() is None
    assert panel.result is None
    assert "no symbol picked" in panel.error.value
    assert "pick at least one symbol" in panel.error.value
    assert "Traceback" not in panel.error.value
    assert panel.metrics.value == "" and panel.by_symbol.value == "" and panel.figures == []


def test_run_portfolio_errors_are_shown_in_place(universe):
    panel = PortfolioPanel(universe, sizing="fixed_fraction", size=5.0)
    assert panel.run() is None
    assert "ConfigError" in panel.error.value and "fraction of equity" in panel.error.value
    panel.size.value = 0.2
    assert panel.run() is not None and panel.error.value == ""


def test_a_given_mapping_needs_no_store(universe, tmp_path):
    missing = tmp_path / "missing.duckdb"
    panel = PortfolioPanel(universe, store=f"duckdb:///{missing}", parameters=PARAMS,
                           symbols=["ETH/USDT", "BTC/USDT"])
    assert [v for _, v in panel.series_picker.options] == ["given"]
    result = panel.run()
    assert panel.error.value == ""
    direct = run_portfolio("sma_cross", {s: universe[s] for s in ("BTC/USDT", "ETH/USDT")},
                           parameters=PARAMS, sizing="equal")
    pd.testing.assert_series_equal(result.equity, direct.equity, check_exact=True)
    assert not missing.exists()


def test_fresh_machine_says_what_to_do_and_creates_no_database(tmp_path):
    missing = tmp_path / "missing.duckdb"
    panel = PortfolioPanel(store=f"duckdb:///{missing}")
    assert panel.series_picker.options == () and panel.symbol_picker.options == ()
    assert "tcp-lab collect" in panel.status.value
    assert panel.run() is None and "no symbol picked" in panel.error.value
    assert not missing.exists()


def test_bad_arguments_raise_with_a_suggestion(universe):
    with pytest.raises(ConfigError, match="did you mean 'equal'"):
        PortfolioPanel(universe, sizing="equals")
    with pytest.raises(ConfigError, match="DOGE/USDT"):
        PortfolioPanel(universe, symbols=["DOGE/USDT"])
