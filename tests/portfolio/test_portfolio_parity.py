"""Parity: one symbol equals run_backtest exactly; N symbols with ample cash equal N backtests
(long-only and long/short)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab import run_backtest, run_portfolio
from tcp_lab.backtest.metrics import METRIC_NAMES
from tcp_lab.strategies import get_strategy
from tcp_lab.testing import make_candles
from tests.portfolio.portfolio_support import Coded, coded_candles

STRATEGIES = [
    ("sma_cross", {"fast": 5, "slow": 20}),
    ("rsi_reversion", None),
    ("bollinger_breakout", None),
]
OPTIONS = [
    {},
    {"stop_loss": 0.004, "take_profit": 0.006},
    {"trailing_stop": 0.003, "price": "next_open", "fees": 0.0},
    {"slippage": 0.0005, "fees": 0.002, "stop_loss": 0.003},
]


@pytest.fixture(scope="module")
def candles():
    return make_candles(3000, seed=7)


def _same_metrics(a, b):
    for k in METRIC_NAMES:
        assert a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])), k


@pytest.mark.parametrize("direction", ["long", "longshort"])
@pytest.mark.parametrize("name,params", STRATEGIES)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_one_symbol_is_run_backtest(candles, name, params, opts, direction):
    strategy = get_strategy(name, params)
    b = run_backtest(strategy, candles, direction=direction, **opts)
    p = run_portfolio(strategy, {"BTC/USDT": candles}, direction=direction, **opts)
    assert np.array_equal(p.equity.to_numpy(), b.equity.to_numpy())
    pd.testing.assert_index_equal(p.equity.index, b.equity.index)
    pd.testing.assert_frame_equal(p.trades.drop(columns="symbol"), b.trades)
    assert (p.trades["symbol"] == "BTC/USDT").all()
    _same_metrics(p.metrics, b.metrics)
    for k in ("n_open_trades", "fees_paid", "final_equity", "ambiguous_bars"):
        assert p.metrics[k] == b.metrics[k], k
    assert p.skipped.empty
    if direction == "longshort":
        assert set(b.trades["direction"]) == {"long", "short"}


@pytest.mark.parametrize("direction", ["long", "longshort"])
@pytest.mark.parametrize("sizing,size,bt", [("fixed_value", 2_500.0, {"size": 2_500.0,
                                                                       "size_type": "value"}),
                                            ("all_in", None, {})])
def test_one_symbol_sizings_are_run_backtest(candles, sizing, size, bt, direction):
    s = get_strategy("sma_cross", {"fast": 5, "slow": 20})
    b = run_backtest(s, candles, stop_loss=0.004, direction=direction, **bt)
    p = run_portfolio(s, {"X": candles}, sizing=sizing, size=size, stop_loss=0.004,
                      direction=direction)
    assert np.array_equal(p.equity.to_numpy(), b.equity.to_numpy())
    pd.testing.assert_frame_equal(p.trades.drop(columns="symbol"), b.trades)


def _universe(n_symbols: int, n: int = 1500):
    """Candles of different lengths, starts and gaps (some rows missing)."""
    rng = np.random.default_rng(3)
    out = {}
    for k in range(n_symbols):
        c = make_candles(n, seed=10 + k, start=f"2024-01-01 0{k}:00",
                         start_price=100.0 * (k + 1))
        keep = rng.random(len(c)) > 0.05
        keep[:2] = True
        out[f"S{k}/USDT"] = c[keep]
    return out


@pytest.mark.parametrize("direction", ["long", "longshort"])
@pytest.mark.parametrize("opts", [{}, {"stop_loss": 0.004, "take_profit": 0.008},
                                  {"price": "next_open", "trailing_stop": 0.004}],
                         ids=["signals", "levels", "next_open"])
def test_ample_cash_is_the_sum_of_backtests(opts, direction):
    universe = _universe(4)
    s = get_strategy("sma_cross", {"fast": 5, "slow": 20})
    value, init = 1_000.0, 100_000.0
    opts = {**opts, "direction": direction}
    p = run_portfolio(s, universe, sizing="fixed_value", size=value, init_cash=init, **opts)
    assert p.skipped.empty
    assert (p.cash > 0).all()
    index = p.equity.index
    total = np.full(len(index), init)
    trades = []
    for sym, c in universe.items():
        b = run_backtest(s, c, size=value, size_type="value", init_cash=init, **opts)
        carried = b.equity.reindex(index).ffill().fillna(init)
        total += carried.to_numpy() - init
        pd.testing.assert_series_equal(p.contribution[sym], carried - init, check_names=False,
                                       rtol=1e-12, atol=1e-9)
        trades.append(b.trades.assign(symbol=sym))
    np.testing.assert_allclose(p.equity.to_numpy(), total, rtol=1e-12)
    expected = pd.concat(trades)[list(p.trades.columns)]
    expected = expected.sort_values(["entry_time", "exit_time", "symbol"]).reset_index(
        drop=True).rename_axis("trade")
    pd.testing.assert_frame_equal(p.trades, expected)


def test_contribution_sums_to_equity_and_order_of_entries():
    # two symbols, both enter at the same close with all the cash: the confident one wins
    close = [100.0, 101.0, 102.0, 103.0]
    a = coded_candles(close, [0, 1, 0, 2], [0.0, 0.2, 0.0, 0.0])
    b = coded_candles(close, [0, 1, 0, 2], [0.0, 0.9, 0.0, 0.0])
    p = run_portfolio(Coded(), {"A": a, "B": b}, fees=0.0)
    assert list(p.trades["symbol"]) == ["B"]
    assert list(zip(p.skipped["symbol"], p.skipped["reason"], strict=True)) == [("A", "no_cash")]
    np.testing.assert_allclose(p.contribution.sum(axis=1), p.equity - 10_000.0, atol=1e-9)
    # without confidence: by symbol name
    p = run_portfolio(Coded({"confident": False}), {"B": b, "A": a}, fees=0.0)
    assert list(p.trades["symbol"]) == ["A"]


def test_informative_symbols_of_the_universe_are_run_backtest():
    """A strategy reading ETH/USDT's hourly close trades ETH/USDT too: there it reads its own
    candles (under the name it asked for), elsewhere ETH's, as run_backtest gives them."""
    from tests.fixtures.informative_strategies import HourTrend

    universe = {"BTC/USDT": make_candles(3000, seed=1),
                "ETH/USDT": make_candles(3000, seed=2, start_price=2000.0)}
    value, init = 1_000.0, 100_000.0
    p = run_portfolio(HourTrend(), universe, sizing="fixed_value", size=value, init_cash=init)
    assert p.skipped.empty and (p.cash > 0).all()
    for sym, c in universe.items():
        b = run_backtest(HourTrend(), c, size=value, size_type="value", init_cash=init,
                         symbol=sym, informative={"ETH/USDT": universe["ETH/USDT"]})
        assert len(b.trades) > 0
        pd.testing.assert_series_equal(p.contribution[sym], b.equity - init, check_names=False,
                                       rtol=1e-12, atol=1e-9)
