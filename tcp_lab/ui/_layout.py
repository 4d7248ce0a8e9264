"""Sizing shared by the panels: they fill the output area, and so do their charts."""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

__all__ = ["full_width", "figure_widget"]


def full_width() -> widgets.Layout:
    """A layout that takes the whole width of the output area (or the dashboard page)."""
    return widgets.Layout(width="100%")


def figure_widget(fig: go.Figure) -> go.FigureWidget:
    """``fig`` as a FigureWidget that follows its container's width (no fixed 700 px)."""
    fig.update_layout(autosize=True, width=None)
    return go.FigureWidget(fig)
