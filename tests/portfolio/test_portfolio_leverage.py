"""Leverage, the maintenance margin and liquidation on hand-computed paths."""

from __future__ import annotations

import numpy as np
import pytest

from tcp_lab import run_portfolio
from tests.portfolio.portfolio_support import ENTRY, EXIT, NONE, Coded, coded_candles

LONG = Coded()


def _one(closes, codes):
    return {"A": coded_candles(closes, codes, [0.5] * len(closes))}


def test_all_in_holds_leverage_times_the_equity():
    p = run_portfolio(LONG, _one([100, 100, 110, 110], [NONE, ENTRY, NONE, NONE]),
                      leverage=3, fees=0.0, init_cash=10_000.0)
    # 300 units bought with 10,000 of cash and 20,000 borrowed; +10 each
    np.testing.assert_allclose(p.equity.to_numpy(), [10_000, 10_000, 13_000, 13_000])
    np.testing.assert_allclose(p.cash.to_numpy(), [10_000, -20_000, -20_000, -20_000])
    assert (p.trades["status"] == "open").all()


@pytest.mark.parametrize("low,liquidated", [(83.0, True), (85.0, False)])
def test_liquidation_at_the_close_below_the_maintenance_margin(low, liquidated):
    # 5x: 500 units, 40,000 borrowed. At 83 the equity is 1,500 < 5 % of 41,500 (2,075);
    # at 85 it is 2,500 > 2,125.
    p = run_portfolio(LONG, _one([100, 100, low, 90], [NONE, ENTRY, NONE, NONE]),
                      leverage=5, maintenance_margin=0.05, fees=0.0, init_cash=10_000.0)
    if liquidated:
        trade = p.trades.iloc[0]
        assert trade["exit_reason"] == "liquidation" and trade["exit_price"] == low
        np.testing.assert_allclose(p.equity.to_numpy(), [10_000, 10_000, 1_500, 1_500])
        assert p.cash.iloc[-1] == pytest.approx(1_500)
    else:
        assert (p.trades["status"] == "open").all()
        np.testing.assert_allclose(p.equity.to_numpy(), [10_000, 10_000, 2_500, 5_000])


def test_an_account_liquidated_to_nothing_opens_nothing_more():
    p = run_portfolio(LONG, _one([100, 100, 75, 80, 80], [NONE, ENTRY, NONE, EXIT, ENTRY]),
                      leverage=5, maintenance_margin=0.05, fees=0.0, init_cash=10_000.0)
    assert p.trades["exit_reason"].tolist() == ["liquidation"]
    assert p.equity.iloc[2] == pytest.approx(-2_500)  # gapped through: 500 * 75 - 40,000
    assert p.skipped["reason"].tolist() == ["no_cash"]
    assert p.equity.iloc[-1] == pytest.approx(-2_500)


def test_a_short_is_liquidated_when_the_price_rises():
    shorts = Coded()
    universe = _one([100, 100, 118, 100], [NONE, EXIT, NONE, NONE])  # an exit reverses: short
    p = run_portfolio(shorts, universe, direction="longshort", leverage=3,
                      maintenance_margin=0.1, fees=0.0, init_cash=10_000.0,
                      sizing="fixed_fraction", size=3.0)
    # short 300 units at 100; at 118 the equity is 10,000 - 5,400 = 4,600, above 10 % of
    # 35,400 (3,540): it holds
    assert (p.trades["status"] == "open").all()
    universe = _one([100, 100, 128, 100], [NONE, EXIT, NONE, NONE])
    p = run_portfolio(shorts, universe, direction="longshort", leverage=3,
                      maintenance_margin=0.1, fees=0.0, init_cash=10_000.0,
                      sizing="fixed_fraction", size=3.0)
    # at 128: equity 10,000 - 8,400 = 1,600 < 10 % of 38,400 = 3,840: bought back at 128
    trade = p.trades.iloc[0]
    assert trade["direction"] == "short" and trade["exit_reason"] == "liquidation"
    assert trade["exit_price"] == 128 and p.equity.iloc[-1] == pytest.approx(1_600)


def test_leverage_one_changes_nothing():
    universe = {"A": coded_candles([100, 101, 99, 104, 103], [ENTRY, NONE, EXIT, ENTRY, NONE],
                                   [0.5] * 5)}
    a = run_portfolio(LONG, universe, fees=0.001)
    b = run_portfolio(LONG, universe, fees=0.001, leverage=1.0, maintenance_margin=0.5)
    np.testing.assert_array_equal(a.equity.to_numpy(), b.equity.to_numpy())
