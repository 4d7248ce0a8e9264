"""Plotly figure of a :class:`tcp_lab.stats.pbo.PBOResult` (loaded by ``PBOResult.plot``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.stats.pbo import PBOResult

__all__ = ["pbo_figure"]


def pbo_figure(result: PBOResult) -> go.Figure:
    """Left: histogram of the logits (PBO = the mass at or left of 0). Right: the chosen
    trial's in-sample vs out-of-sample metric per combination, with the fitted line."""
    d = result.degradation
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"Logits of the out-of-sample rank (PBO = {result.probability:.1%})",
        f"Performance degradation (slope {d.slope:.3g})"))
    fig.add_trace(go.Histogram(x=result.logits, name="logit", nbinsx=50,
                               marker_color="#636efa", showlegend=False), row=1, col=1)
    fig.add_vline(x=0.0, line_dash="dash", line_color="#ef553b", row=1, col=1)
    ok = np.isfinite(d.in_sample) & np.isfinite(d.out_of_sample)
    x, y = d.in_sample[ok], d.out_of_sample[ok]
    fig.add_trace(go.Scattergl(x=x, y=y, mode="markers", name="combination",
                               marker={"size": 4, "opacity": 0.4, "color": "#00cc96"},
                               showlegend=False), row=1, col=2)
    if x.size and np.isfinite(d.slope):
        xs = np.array([x.min(), x.max()])
        fig.add_trace(go.Scatter(x=xs, y=d.intercept + d.slope * xs, mode="lines",
                                 name="least squares", line={"color": "#ef553b"},
                                 showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="λ = ln(ω / (1 − ω))", row=1, col=1)
    fig.update_yaxes(title_text="combinations", row=1, col=1)
    fig.update_xaxes(title_text=f"in-sample {result.metric}", row=1, col=2)
    fig.update_yaxes(title_text=f"out-of-sample {result.metric}", row=1, col=2)
    fig.update_layout(title=f"Probability of backtest overfitting: {result.n_trials:,} trials, "
                            f"{result.n_splits} splits, {result.n_combinations:,} combinations",
                      height=420, template="plotly_white")
    return fig
