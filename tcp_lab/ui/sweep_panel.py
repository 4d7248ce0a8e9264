"""The sweep panel: a heatmap of a saved sweep (the newest by default), two parameters at a time."""

from __future__ import annotations

import os
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tcp_lab.ui._html import error_html, note_html
from tcp_lab.ui._layout import figure_widget, full_width

__all__ = ["SweepPanel"]


def _parameters(df: pd.DataFrame) -> list[str]:
    """The strategy's parameters that are columns of the sweep and take several values."""
    from tcp_lab.strategies import get_strategy

    try:
        names = [p.name for p in type(get_strategy(df.attrs["strategy"])).parameters]
    except Exception:  # noqa: BLE001 - a strategy no longer registered: guess from the columns
        names = [c for c in df.columns if df[c].dtype.kind in "iu"]
    return [n for n in names if n in df.columns and df[n].nunique() > 1]


def _metrics(df: pd.DataFrame, params: list[str]) -> list[str]:
    numeric = [c for c in df.columns if c not in params and df[c].dtype.kind == "f"]
    first = df.attrs.get("sort_by")
    return sorted(numeric, key=lambda c: (c != first, c))


class SweepPanel(widgets.VBox):
    """Pick a saved sweep and two of its parameters; see one metric as a heatmap.

    Parameters
    ----------
    home
        tcp_lab home whose ``sweeps/`` folder is listed (default: the settings').

    Attributes
    ----------
    df
        The sweep shown (``None`` when there is none).
    figure
        The heatmap (a plotly ``FigureWidget``), or ``None``.

    Examples
    --------
    >>> from tcp_lab.backtest import save_sweep        # doctest: +SKIP
    >>> save_sweep(df)                                  # doctest: +SKIP
    >>> SweepPanel()                                    # doctest: +SKIP
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self._home = home
        self.df: pd.DataFrame | None = None
        self.figure: go.FigureWidget | None = None
        self.sweep_picker = widgets.Dropdown(description="sweep")
        self.x_picker = widgets.Dropdown(description="x")
        self.y_picker = widgets.Dropdown(description="y")
        self.metric_picker = widgets.Dropdown(description="metric")
        self.reload_button = widgets.Button(description="reload", icon="refresh")
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        self._chart = widgets.VBox(layout=full_width())
        super().__init__(children=[
            widgets.HBox([self.sweep_picker, self.reload_button]),
            widgets.HBox([self.x_picker, self.y_picker, self.metric_picker]),
            self.status, self.error, self._chart,
        ], layout=full_width())
        self.sweep_picker.observe(lambda _: self._load(), names="value")
        for picker in (self.x_picker, self.y_picker, self.metric_picker):
            picker.observe(lambda _: self._draw(), names="value")
        self.reload_button.on_click(lambda _: self.reload())
        self.reload()

    def reload(self) -> None:
        """List the saved sweeps again (newest first) and show the newest."""
        from tcp_lab.backtest.sweep_store import list_sweeps, sweeps_dir

        self.error.value = ""
        try:
            saved = list_sweeps(self._home)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            return
        if saved.empty:
            self.status.value = note_html(
                f"no saved sweeps in {sweeps_dir(self._home)} yet: run notebook 03, or "
                "save_sweep(df) after a sweep")
            self.sweep_picker.options = []
            self._chart.children = []
            return
        labels = [(f"{r.created_at[:19]} {r.strategy} · {r.series or 'candles'} · "
                   f"{r.n_combos} combinations", r.sweep_id) for r in saved.itertuples()]
        newest = labels[0][1]
        self.sweep_picker.options = labels
        if self.sweep_picker.value == newest:
            self._load()
        else:
            self.sweep_picker.value = newest  # observed: loads it

    def _load(self) -> None:
        from tcp_lab.backtest.sweep_store import load_sweep

        if not self.sweep_picker.value:
            return
        self.error.value = ""
        try:
            df = load_sweep(self.sweep_picker.value, home=self._home)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            return
        params = _parameters(df)
        metrics = _metrics(df, params)
        self.df = None  # no redraw while the pickers change
        self.x_picker.options = self.y_picker.options = params
        self.metric_picker.options = metrics
        self.x_picker.value = params[0] if params else None
        self.y_picker.value = params[1] if len(params) > 1 else None
        self.metric_picker.value = metrics[0] if metrics else None
        self.df = df
        self._draw()

    def _draw(self) -> None:
        from tcp_lab.reports.sweep_figures import sweep_heatmap

        df, x, y, metric = self.df, self.x_picker.value, self.y_picker.value, \
            self.metric_picker.value
        if df is None or not metric:
            return
        if not x or not y or x == y:
            self.status.value = note_html("pick two different parameters for the axes")
            self._chart.children = []
            return
        try:
            fig = sweep_heatmap(df, x, y, metric)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            return
        best = df[metric].astype(float).replace([np.inf, -np.inf], np.nan)
        self.figure = figure_widget(fig)
        self._chart.children = [self.figure]
        self.status.value = note_html(
            f"{df.attrs.get('strategy')}: {len(df)} combinations on "
            f"{df.attrs.get('series') or 'candles'}; best {metric} {best.max():.4g}")

    def summary(self) -> dict[str, Any]:
        """What is shown: sweep id, axes and metric."""
        return {"sweep_id": self.sweep_picker.value, "x": self.x_picker.value,
                "y": self.y_picker.value, "metric": self.metric_picker.value}
