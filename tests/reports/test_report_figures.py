"""Plotly figures and the HTML report build, and large frames are downsampled."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from tcp_lab.backtest import run_backtest
from tcp_lab.reports.figures import downsample_candles, equity_figure, strategy_figure
from tcp_lab.testing import make_candles


@pytest.fixture(scope="module")
def result():
    return run_backtest("sma_cross", make_candles(3000, seed=2), parameters={"fast": 5, "slow": 20})


def test_strategy_figure(result):
    fig = result.plot()
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names[:3] == ["price", "sma_fast", "sma_slow"]
    assert {"entry", "exit", "volume"} <= set(names)
    entries = next(t for t in fig.data if t.name == "entry")
    assert len(entries.x) == len(result.trades)


def test_indicator_off_the_price_scale_gets_its_own_panel():
    r = run_backtest("rsi_reversion", make_candles(800))
    fig = r.plot()
    rsi = next(t for t in fig.data if t.name == "rsi")
    assert rsi.yaxis == "y2"  # below the price, above the volume


def test_equity_figure(result):
    fig = result.plot_equity()
    assert [t.name for t in fig.data] == ["equity", "drawdown %"]
    dd = np.asarray(fig.data[1].y)
    assert dd.min() == pytest.approx(-100 * result.metrics["max_drawdown"])


def test_large_frames_are_downsampled_without_losing_extremes():
    c = make_candles(50_000, seed=8)
    d = downsample_candles(c, 1000)
    assert len(d) <= 1000
    assert d["high"].max() == c["high"].max() and d["low"].min() == c["low"].min()
    assert d["volume"].sum() == pytest.approx(c["volume"].sum())
    assert d.index[-1] == c.index[-1]
    fig = strategy_figure(c, {"close": c["close"]}, max_points=1000)
    assert len(fig.data[0].x) <= 1000 and "merged" in fig.layout.title.text
    eq = c["close"] / c["close"].iat[0]
    efig = equity_figure(eq, max_points=500)
    assert len(efig.data[0].x) <= 500 and isinstance(efig.data[0], go.Scatter)
    dd = 1 - eq / eq.cummax()
    assert np.asarray(efig.data[1].y).min() == pytest.approx(-100 * dd.max())
    assert isinstance(equity_figure(eq, max_points=5000).data[0], go.Scattergl)


def test_html_report(result, tmp_path):
    path = result.to_html(tmp_path / "sub" / "report.html")
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "sma_cross(fast=5, slow=20)" in text
    assert "max_drawdown" in text and "plotly" in text.lower()
    assert text.count('class="plotly-graph-div"') == 2
