"""Plotly figures of a backtest: candles with indicators and fills, equity and drawdown.

Large frames are downsampled for display to at most ``max_points`` buckets
(OHLC aggregated per bucket, so no high or low is lost; drawdown keeps each
bucket's worst value), and many markers use WebGL (``Scattergl``). Times are
shown in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["strategy_figure", "equity_figure", "downsample_candles"]

_GL_THRESHOLD = 2000  # points above which a scatter trace uses WebGL


def _x(index: pd.DatetimeIndex) -> np.ndarray:
    """Naive UTC datetime64 values (plotly serialises them fast and unambiguously)."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy()


def _buckets(n: int, max_points: int) -> np.ndarray | None:
    """Start position of each display bucket, or None when no downsampling is needed."""
    if n <= max_points:
        return None
    step = int(np.ceil(n / max_points))
    return np.arange(0, n, step)


def downsample_candles(candles: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """Merge consecutive candles into at most ``max_points`` OHLCV buckets.

    Each bucket is stamped with its last candle's close time.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> c = make_candles(1000)
    >>> d = downsample_candles(c, 100)
    >>> len(d), bool(d["high"].max() == c["high"].max())
    (100, True)
    """
    starts = _buckets(len(candles), max_points)
    if starts is None:
        return candles
    ends = np.append(starts[1:], len(candles)) - 1
    cols = {
        "open": candles["open"].to_numpy()[starts],
        "high": np.maximum.reduceat(candles["high"].to_numpy(), starts),
        "low": np.minimum.reduceat(candles["low"].to_numpy(), starts),
        "close": candles["close"].to_numpy()[ends],
        "volume": np.add.reduceat(candles["volume"].to_numpy(), starts),
    }
    return pd.DataFrame(cols, index=candles.index[ends])


def _scatter(n: int) -> type[go.Scatter] | type[go.Scattergl]:
    return go.Scattergl if n > _GL_THRESHOLD else go.Scatter


def strategy_figure(
    candles: pd.DataFrame,
    indicators: Mapping[str, pd.Series] | None = None,
    trades: pd.DataFrame | None = None,
    *,
    title: str = "",
    max_points: int = 5000,
    volume: bool = True,
) -> go.Figure:
    """Candlesticks, indicator lines, entry/exit markers and a volume panel.

    Parameters
    ----------
    candles
        Candle frame (tz-aware index of close times).
    indicators
        Series aligned to ``candles`` to draw over the price (an indicator far
        from the price scale, e.g. RSI, goes on its own panel).
    trades
        A :attr:`BacktestResult.trades` frame: entries are drawn as up
        triangles, exits as down triangles, at their fill prices.
    title
        Figure title.
    max_points
        Candles beyond this are merged into buckets for display.
    volume
        Add the volume panel.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> fig = strategy_figure(make_candles(300), title="demo")
    >>> [t.type for t in fig.data]
    ['candlestick', 'bar']
    """
    indicators = dict(indicators or {})
    shown = downsample_candles(candles, max_points)
    pos = None if shown is candles else candles.index.get_indexer(shown.index)
    lo, hi = float(candles["low"].min()), float(candles["high"].max())
    overlay, panel = {}, {}
    for name, s in indicators.items():
        vals = np.asarray(s, dtype=np.float64)
        vals = vals if pos is None else vals[pos]
        finite = vals[np.isfinite(vals)]
        near = finite.size == 0 or (finite.min() > lo * 0.5 and finite.max() < hi * 1.5)
        (overlay if near else panel)[name] = vals
    rows = 1 + bool(panel) + bool(volume)
    heights = [0.6] + [0.2] * (rows - 1)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[h / sum(heights) for h in heights])
    x = _x(shown.index)
    fig.add_trace(
        go.Candlestick(x=x, open=shown["open"], high=shown["high"], low=shown["low"],
                       close=shown["close"], name="price"),
        row=1, col=1,
    )
    for name, vals in overlay.items():
        fig.add_trace(_scatter(len(x))(x=x, y=vals, mode="lines", name=name, line={"width": 1}),
                      row=1, col=1)
    row = 2
    if panel:
        for name, vals in panel.items():
            fig.add_trace(_scatter(len(x))(x=x, y=vals, mode="lines", name=name,
                                           line={"width": 1}), row=row, col=1)
        row += 1
    if trades is not None and len(trades):
        _add_fills(fig, trades)
    if volume:
        fig.add_trace(go.Bar(x=x, y=shown["volume"], name="volume", marker_color="#9aa5b1"),
                      row=row, col=1)
    # The merge note goes on a line of its own (a narrow chart cuts one long title) and the
    # legend above the plot (below it, it covers the time axis title).
    note = "" if pos is None else \
        f"<br><sup>display: {len(shown)} of {len(candles)} candles merged</sup>"
    fig.update_layout(title=title + note, xaxis_rangeslider_visible=False, height=650,
                      hovermode="x unified", margin={"t": 110},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.01,
                              "xanchor": "left", "x": 0})
    fig.update_xaxes(title_text="UTC", row=rows, col=1)
    fig.update_yaxes(title_text="price", row=1, col=1)
    if panel:
        fig.update_yaxes(title_text=", ".join(panel), row=2, col=1)
    if volume:
        fig.update_yaxes(title_text="volume", row=rows, col=1)
    return fig


def _add_fills(fig: go.Figure, trades: pd.DataFrame) -> None:
    closed = trades[trades["exit_time"].notna()]
    kind = _scatter(len(trades))
    for label, tcol, pcol, symbol, color, frame in (
        ("entry", "entry_time", "entry_price", "triangle-up", "#2ca02c", trades),
        ("exit", "exit_time", "exit_price", "triangle-down", "#d62728", closed),
    ):
        fig.add_trace(
            kind(
                x=_x(pd.DatetimeIndex(frame[tcol])),
                y=frame[pcol].to_numpy(),
                mode="markers",
                name=label,
                marker={"symbol": symbol, "size": 9, "color": color},
                text=frame["direction"].to_numpy(),
            ),
            row=1, col=1,
        )


def equity_figure(
    equity: pd.Series,
    drawdown: pd.Series | None = None,
    *,
    title: str = "",
    max_points: int = 5000,
) -> go.Figure:
    """Equity curve over a drawdown panel (drawdown as a percentage below the peak).

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1min", tz="UTC")
    >>> fig = equity_figure(pd.Series([100.0, 110.0, 99.0, 120.0], index=idx))
    >>> len(fig.data)
    2
    """
    if drawdown is None:
        e = equity.to_numpy()
        drawdown = pd.Series(1.0 - e / np.maximum.accumulate(e), index=equity.index)
    starts = _buckets(len(equity), max_points)
    if starts is None:
        x, eq, dd = _x(equity.index), equity.to_numpy(), drawdown.to_numpy()
    else:
        ends = np.append(starts[1:], len(equity)) - 1
        x = _x(equity.index[ends])
        eq = equity.to_numpy()[ends]
        dd = np.maximum.reduceat(np.nan_to_num(drawdown.to_numpy()), starts)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        row_heights=[0.7, 0.3])
    kind = _scatter(len(x))
    fig.add_trace(kind(x=x, y=eq, mode="lines", name="equity"), row=1, col=1)
    fig.add_trace(
        kind(x=x, y=-100.0 * dd, mode="lines", name="drawdown %", fill="tozeroy",
             line={"color": "#d62728"}),
        row=2, col=1,
    )
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_xaxes(title_text="UTC", row=2, col=1)
    fig.update_layout(title=title, height=500, hovermode="x unified", showlegend=False)
    return fig
