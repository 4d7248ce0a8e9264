"""The portfolio result: series, per-symbol views, figure, summary, the public export."""

from __future__ import annotations

import numpy as np
import pytest

import tcp_lab
from tcp_lab.portfolio import PORTFOLIO_TRADE_COLUMNS, PortfolioResult
from tcp_lab.testing import make_candles


@pytest.fixture(scope="module")
def result() -> PortfolioResult:
    u = {"ETH/USDT": make_candles(800, seed=2, start_price=2000.0),
         "BTC/USDT": make_candles(800, seed=1),
         "SOL/USDT": make_candles(600, seed=3, start="2024-01-01 03:00", start_price=100.0)}
    return tcp_lab.run_portfolio("sma_cross", u, parameters={"fast": 5, "slow": 20},
                                 sizing="equal", max_positions=2, stop_loss=0.003)


def test_shapes_and_identities(result):
    assert result.symbols == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    n = len(result.equity)
    assert result.cash.shape == (n,) and result.value.shape == (n, 3)
    np.testing.assert_allclose(result.cash + result.value.sum(axis=1), result.equity)
    np.testing.assert_allclose(result.contribution.sum(axis=1), result.equity - 10_000.0,
                               atol=1e-8)
    assert ((result.exposure >= 0) & (result.exposure <= 1 + 1e-12)).all()
    assert result.n_open.max() <= 2
    assert tuple(result.trades.columns) == PORTFOLIO_TRADE_COLUMNS
    assert set(result.trades["symbol"]) <= set(result.symbols)
    assert result.metrics["skipped_entries"] == len(result.skipped) > 0
    np.testing.assert_allclose(result.by_symbol["pnl"].sum(), result.equity.iloc[-1] - 10_000.0)
    assert result.by_symbol["n_trades"].sum() == result.metrics["n_trades"]


def test_correlation_is_symmetric(result):
    c = result.correlation
    assert list(c.columns) == result.symbols
    np.testing.assert_allclose(c.to_numpy(), c.to_numpy().T)
    np.testing.assert_allclose(np.diag(c.to_numpy()), 1.0)


def test_plot_and_summary(result):
    fig = result.plot(max_points=200)
    assert len(fig.data) == 2 + 3
    assert len(fig.data[0].x) <= 200
    s = result.summary()
    assert s["symbols"] == "BTC/USDT, ETH/USDT, SOL/USDT" and s["sizing"] == "equal"
    assert "sharpe" in s.index
    assert "3 symbols" in repr(result)


def test_wide_universe_frame_is_accepted():
    import pandas as pd

    a, b = make_candles(300, seed=1), make_candles(300, seed=2)
    wide = pd.concat({"A/USDT": a.assign(vwap=np.nan), "B/USDT": b.assign(vwap=np.nan)},
                     axis=1)
    r = tcp_lab.run_portfolio("sma_cross", wide, parameters={"fast": 5, "slow": 20})
    r2 = tcp_lab.run_portfolio("sma_cross", {"A/USDT": a, "B/USDT": b},
                               parameters={"fast": 5, "slow": 20})
    np.testing.assert_array_equal(r.equity.to_numpy(), r2.equity.to_numpy())
