"""Plotly figures of a parameter sweep (:func:`tcp_lab.backtest.param_sweep.sweep`)."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tcp_lab.errors import ConfigError

__all__ = ["sweep_heatmap"]


def _column(df: pd.DataFrame, name: str, what: str) -> None:
    if name not in df.columns:
        guess = difflib.get_close_matches(name, [str(c) for c in df.columns], n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise ConfigError(f"sweep_heatmap: {what} {name!r} is not a column of the sweep{dym}",
                          hint="columns: " + ", ".join(map(str, df.columns)))


def sweep_heatmap(
    df: pd.DataFrame, x: str, y: str, metric: str | None = None, *, agg: str = "max",
    title: str | None = None,
) -> go.Figure:
    """A heatmap of one metric over two parameters of a sweep.

    Parameters
    ----------
    df
        A sweep frame (one row per combination).
    x, y
        Parameter columns for the axes.
    metric
        Metric column for the colour (default: the sweep's sort column,
        ``df.attrs["sort_by"]``).
    agg
        How to combine rows that share ``(x, y)`` when other parameters vary
        (``"max"``, ``"mean"``, ``"min"``, ``"median"``).
    title
        Figure title (default names the strategy and metric).

    Returns
    -------
    plotly.graph_objects.Figure
        Cells without a combination (e.g. ``fast >= slow``) are blank.

    Raises
    ------
    ConfigError
        A column that is not in ``df`` (with a did-you-mean) or an unknown ``agg``.

    Examples
    --------
    >>> from tcp_lab.backtest import sweep
    >>> from tcp_lab.testing import make_candles
    >>> df = sweep("sma_cross", make_candles(3000), {"fast": [5, 10], "slow": [20, 40]},
    ...            progress=False)
    >>> fig = sweep_heatmap(df, "fast", "slow", "sharpe")
    >>> fig.data[0].type
    'heatmap'
    """
    metric = metric or df.attrs.get("sort_by") or "sharpe"
    for name, what in ((x, "x"), (y, "y"), (metric, "metric")):
        _column(df, name, what)
    if agg not in ("max", "mean", "min", "median"):
        raise ConfigError(f"sweep_heatmap: agg={agg!r}, expected max, mean, min or median")
    values = df[metric].astype(float).replace([np.inf, -np.inf], np.nan)
    table = values.groupby([df[y], df[x]]).agg(agg).unstack(x).sort_index().sort_index(axis=1)
    strategy = df.attrs.get("strategy", "sweep")
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=[str(v) for v in table.columns],
            y=[str(v) for v in table.index],
            colorscale="RdYlGn_r" if metric.endswith("max_drawdown") else "RdYlGn",
            colorbar={"title": {"text": metric}},
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"{strategy}: {metric} by {x} and {y}"
        + (f" ({agg} over other parameters)" if len(df.columns) and _others(df, x, y) else ""),
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def _others(df: pd.DataFrame, x: str, y: str) -> bool:
    """Whether rows repeat an ``(x, y)`` pair (other parameters vary)."""
    return bool(df.duplicated([x, y]).any())
