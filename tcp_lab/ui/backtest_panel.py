"""The backtest panel: pick a strategy and its parameters, run, see metrics and charts.

A thin view over :func:`tcp_lab.backtest.run_backtest`: the parameter
controls are generated from the strategy's declaration
(:mod:`tcp_lab.ui.controls`), and errors (bad parameters, missing data)
appear in the panel as a message instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from tcp_lab.strategies import get_strategy
from tcp_lab.ui._html import error_html, metrics_html, note_html
from tcp_lab.ui._layout import figure_widget, full_width
from tcp_lab.ui._run_controls import simulation_controls, strategy_picker
from tcp_lab.ui.controls import control_values, parameter_controls
from tcp_lab.ui.sources import list_series, resolve_candles

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.backtest import BacktestResult
    from tcp_lab.store import Store

__all__ = ["BacktestPanel"]

_SYNTHETIC = "synthetic"
_GIVEN = "given"


class BacktestPanel(widgets.VBox):
    """Strategy picker, generated parameter controls, a run button, metrics and charts.

    Parameters
    ----------
    candles
        Candles to backtest on. Without them the data picker lists the
        store's series and synthetic candles.
    strategy
        Strategy selected at the start.
    parameters
        Starting parameter values (default: the strategy's defaults).
    store
        Store or database URL for the data picker (default: the setting).
    timeframe
        Timeframe of ``candles`` (inferred when omitted) and of synthetic candles.
    n_synthetic
        Size of the synthetic series.
    fees, slippage, init_cash
        Starting values of the simulation controls.

    Attributes
    ----------
    strategy_picker, source_picker
        Dropdowns.
    controls
        Parameter name -> control, regenerated when the strategy changes.
    fees, slippage, init_cash
        Simulation controls.
    run_button
        Runs the backtest (also :meth:`run`).
    status, error, metrics
        HTML widgets: what ran on what data; the error of the last run
        (empty when it worked); the metrics table.
    figures
        The charts of the last run (plotly ``FigureWidget``: price with
        trade markers, equity with drawdown).
    result
        The last :class:`~tcp_lab.backtest.BacktestResult` (``None`` after an error).

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> panel = BacktestPanel(make_candles(500), strategy="sma_cross")
    >>> panel.controls["fast"].value = 5
    >>> panel.run_button.click()
    >>> panel.result.parameters["fast"], panel.error.value
    (5, '')
    """

    def __init__(
        self,
        candles: pd.DataFrame | None = None,
        *,
        strategy: str = "sma_cross",
        parameters: Mapping[str, Any] | None = None,
        store: Store | str | None = None,
        timeframe: str | None = None,
        n_synthetic: int = 3000,
        fees: float = 0.001,
        slippage: float = 0.0,
        init_cash: float = 10_000.0,
    ) -> None:
        self._candles = candles
        self._store = store
        self._timeframe = timeframe
        self._n_synthetic = n_synthetic
        self.result: BacktestResult | None = None
        self.figures: list[go.FigureWidget] = []
        self.controls: dict[str, widgets.ValueWidget] = {}
        self._store_problem: str | None = None

        self.strategy_picker = strategy_picker(strategy, "BacktestPanel")
        self.source_picker = widgets.Dropdown(options=self._source_options(),
                                              description="data")
        self.fees, self.slippage, self.init_cash = simulation_controls(fees, slippage, init_cash)
        self.run_button = widgets.Button(description="Run backtest", button_style="primary",
                                         icon="play")
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        self.metrics = widgets.HTML()
        self._params_box = widgets.VBox()
        self._charts = widgets.VBox(layout=full_width())
        super().__init__(children=[
            widgets.HBox([self.strategy_picker, self.source_picker]),
            self._params_box,
            widgets.HBox([self.fees, self.slippage, self.init_cash]),
            self.run_button, self.status, self.error,
            self.metrics, self._charts,
        ], layout=full_width())
        self._build_controls(parameters)
        if self._store_problem:
            self.status.value = note_html(
                f"the store is not available ({self._store_problem}); synthetic candles only")
        self.strategy_picker.observe(lambda _: self._build_controls(None), names="value")
        self.run_button.on_click(lambda _: self.run())

    # -- data ------------------------------------------------------------------------
    def _source_options(self) -> list[tuple[str, Any]]:
        if self._candles is not None:
            return [(f"given candles ({len(self._candles)})", _GIVEN)]
        options: list[tuple[str, Any]] = []
        try:
            series = list_series(self._store)
        except Exception as e:  # noqa: BLE001 - no store is no reason to refuse synthetic data
            self._store_problem = str(e)
            series = pd.DataFrame()
        for row in series.itertuples(index=False):
            key = (row.exchange, row.symbol, row.timeframe)
            options.append((f"{row.exchange} {row.symbol} {row.timeframe} ({row.candles})", key))
        options.append((f"synthetic ({self._n_synthetic} × {self._timeframe or '1m'})",
                        _SYNTHETIC))
        return options

    def _load(self) -> tuple[pd.DataFrame, str, dict[str, Any]]:
        """Candles of the selected source, a description and labels for the result."""
        choice = self.source_picker.value
        if choice == _GIVEN:
            return self._candles, f"given candles ({len(self._candles)})", \
                {"timeframe": self._timeframe}
        if choice == _SYNTHETIC:
            src = resolve_candles(timeframe=self._timeframe or "1m", source="synthetic",
                                  n_synthetic=self._n_synthetic)
            return src.candles, src.description, {"timeframe": src.timeframe}
        exchange, symbol, timeframe = choice
        src = resolve_candles(exchange, symbol, timeframe, source="store", store=self._store)
        return src.candles, src.description, {"timeframe": timeframe, "symbol": symbol,
                                              "exchange": exchange}

    # -- controls --------------------------------------------------------------------
    def _build_controls(self, values: Mapping[str, Any] | None) -> None:
        self.controls = parameter_controls(self.strategy_picker.value, values)
        self._params_box.children = list(self.controls.values())

    # -- running ---------------------------------------------------------------------
    def run(self) -> BacktestResult | None:
        """Backtest the selected strategy with the controls' values; show the outcome.

        Returns
        -------
        BacktestResult or None
            ``None`` when it failed; the message is in :attr:`error`.
        """
        from tcp_lab.backtest import run_backtest

        self.error.value = ""
        self.status.value = note_html("running…")
        try:
            candles, described, labels = self._load()
            strategy = get_strategy(self.strategy_picker.value, control_values(self.controls))
            result = run_backtest(strategy, candles, fees=self.fees.value,
                                  slippage=self.slippage.value, init_cash=self.init_cash.value,
                                  **labels)
            figures = [figure_widget(result.plot()), figure_widget(result.plot_equity())]
        except Exception as e:  # noqa: BLE001 - shown in the panel, never as a traceback
            self.result = None
            self.figures = []
            self.status.value = ""
            self.metrics.value = ""
            self._charts.children = []
            self.error.value = error_html(e)
            return None
        self.result = result
        self.figures = figures
        self.status.value = note_html(f"{result.label} — {described}")
        self.metrics.value = metrics_html(result.summary(), "metrics")
        self._charts.children = figures
        return result
