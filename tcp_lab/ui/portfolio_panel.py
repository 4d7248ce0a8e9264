"""The portfolio panel: pick symbols, a strategy and a sizing; run one account over them.

A thin view over :func:`tcp_lab.portfolio.run_portfolio`: the symbols of one
(exchange, timeframe) group of the store are loaded in one read
(:meth:`~tcp_lab.store.Store.load_candles_many`), the parameter controls are
generated from the strategy's declaration (:mod:`tcp_lab.ui.controls`), and
errors appear in the panel as a message instead of a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from tcp_lab.errors import ConfigError
from tcp_lab.execution.sizing import SIZINGS, VOL_WINDOW, parse_sizing
from tcp_lab.ui._html import error_html, metrics_html, note_html, table_html
from tcp_lab.ui._layout import figure_widget, full_width
from tcp_lab.ui._run_controls import STYLE, simulation_controls, strategy_picker
from tcp_lab.ui.controls import control_values, parameter_controls
from tcp_lab.ui.sources import list_series, store_candles_many

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.portfolio import PortfolioResult
    from tcp_lab.store import Store

__all__ = ["PortfolioPanel", "DEFAULT_SYMBOLS", "takes_size"]

#: Symbols selected at the start (and after switching series): the first this many.
DEFAULT_SYMBOLS = 5
_GIVEN = "given"
_OWNER = "PortfolioPanel"


def takes_size(sizing: str) -> bool:
    """Whether ``sizing`` needs ``size=`` (asked of :func:`~tcp_lab.execution.sizing.parse_sizing`,
    so a sizing added to :data:`~tcp_lab.portfolio.SIZINGS` needs no change here)."""
    try:
        parse_sizing(sizing, None, None, 1)
    except ConfigError:
        return True
    return False


class PortfolioPanel(widgets.VBox):
    """Symbol picker, strategy and parameters, sizing, a run button, metrics and charts.

    Parameters
    ----------
    candles_by_symbol
        ``{symbol: candles}`` to pick from. Without it the series picker lists
        the store's (exchange, timeframe) groups and the symbol picker their symbols.
    strategy
        Strategy selected at the start.
    parameters
        Starting parameter values (default: the strategy's defaults).
    store
        Store or database URL for the pickers (default: the setting).
    symbols
        Symbols selected at the start (default: the first :data:`DEFAULT_SYMBOLS`, by name).
    timeframe
        Timeframe of ``candles_by_symbol`` (inferred when omitted).
    sizing, size, max_positions
        Starting sizing (one of :data:`~tcp_lab.portfolio.SIZINGS`, the
        dropdown's options), its size (e.g. ``fixed_value``: quote per entry;
        ``fixed_fraction``: share of the equity; ignored by sizings that take
        none) and the cap on open positions (None: no cap).
    stop_loss
        Starting stop distance below each entry, e.g. 0.02 (None: no stop);
        ``"risk_percent"`` sizing needs a stop.
    vol_window
        Candles of the volatility estimate of ``"volatility_target"`` sizing (default 30).
    direction, leverage, maintenance_margin
        ``"long"`` or ``"longshort"``; leverage 1 or more (above 1: borrowing, and
        liquidation below the maintenance margin of the positions, see ``run_portfolio``).
    fees, slippage, init_cash
        Starting values of the simulation controls.

    Attributes
    ----------
    strategy_picker, series_picker, sizing_picker
        Dropdowns.
    symbol_picker
        ``SelectMultiple`` of the series' symbols (sorted by name).
    controls
        Parameter name -> control, regenerated when the strategy changes.
    size
        Size of the sizings that take one (:func:`takes_size`); disabled for the others.
    max_positions
        Cap on open positions; 0 means no cap.
    stop_loss
        Stop distance below each entry (a fraction); 0 means no stop.
    vol_window
        Volatility window of ``"volatility_target"``; disabled for the other sizings.
    direction, leverage, maintenance_margin
        Long only or long/short; how many times the equity the account may hold; the
        maintenance margin rate (enabled with leverage above 1).
    fees, slippage, init_cash
        Simulation controls.
    run_button
        Runs the portfolio (also :meth:`run`).
    status, error, metrics, by_symbol
        HTML widgets: what ran on what data; the error of the last run (empty
        when it worked); the metrics; each symbol's contribution, trades and fees.
    figures
        The charts of the last run (equity, drawdown and contribution by symbol).
    result
        The last :class:`~tcp_lab.portfolio.PortfolioResult` (``None`` after an error).

    Raises
    ------
    StrategyError
        An unknown strategy (with a did-you-mean).
    ConfigError
        An unknown sizing, or ``symbols`` the data does not have.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> universe = {"BTC/USDT": make_candles(500, seed=1), "ETH/USDT": make_candles(500, seed=2)}
    >>> panel = PortfolioPanel(universe, parameters={"fast": 5, "slow": 20})
    >>> panel.max_positions.value = 1
    >>> panel.run_button.click()
    >>> panel.result.symbols, panel.error.value
    (['BTC/USDT', 'ETH/USDT'], '')
    """

    def __init__(
        self,
        candles_by_symbol: Mapping[str, pd.DataFrame] | None = None,
        *,
        strategy: str = "sma_cross",
        parameters: Mapping[str, Any] | None = None,
        store: Store | str | None = None,
        symbols: Sequence[str] | None = None,
        timeframe: str | None = None,
        sizing: str = "equal",
        size: float | None = None,
        max_positions: int | None = None,
        stop_loss: float | None = None,
        vol_window: int | None = None,
        direction: str = "long",
        leverage: float = 1.0,
        maintenance_margin: float = 0.005,
        fees: float = 0.001,
        slippage: float = 0.0,
        init_cash: float = 10_000.0,
    ) -> None:
        self._candles = dict(candles_by_symbol) if candles_by_symbol is not None else None
        self._store = store
        self._timeframe = timeframe
        self._store_problem: str | None = None
        self.result: PortfolioResult | None = None
        self.figures: list[go.FigureWidget] = []
        self.controls: dict[str, widgets.ValueWidget] = {}
        if sizing not in SIZINGS:
            close = difflib.get_close_matches(str(sizing), SIZINGS, n=1)
            raise ConfigError(f"{_OWNER}: unknown sizing={sizing!r}, expected one of {SIZINGS}",
                              hint=f"did you mean {close[0]!r}?" if close else "e.g. 'equal'")

        self.strategy_picker = strategy_picker(strategy, _OWNER)
        self._groups = self._series_groups()
        self.series_picker = widgets.Dropdown(
            options=[(label, key) for key, (label, _) in self._groups.items()],
            description="series")
        self.symbol_picker = widgets.SelectMultiple(description="symbols", style=STYLE)
        self.sizing_picker = widgets.Dropdown(options=list(SIZINGS), value=sizing,
                                              description="sizing")
        self.size = widgets.BoundedFloatText(
            value=size or 0.0, min=0.0, max=1e15, description="size", style=STYLE,
            tooltip="the sizing's size: quote per entry (fixed_value), a share of the equity "
                    "(fixed_fraction); see tcp_lab.execution.sizing")
        self.max_positions = widgets.BoundedIntText(
            value=max_positions or 0, min=0, max=100_000, description="max positions",
            style=STYLE, tooltip="at most this many open positions; 0: no cap")
        self.stop_loss = widgets.BoundedFloatText(
            value=stop_loss or 0.0, min=0.0, max=0.999, step=0.005, description="stop loss",
            style=STYLE, tooltip="stop this fraction below each entry, e.g. 0.02; 0: no stop")
        self.vol_window = widgets.BoundedIntText(
            value=vol_window or VOL_WINDOW, min=2, max=100_000, description="vol window",
            style=STYLE, tooltip="candles of each symbol's volatility estimate "
                                 "(volatility_target sizing)")
        self.direction = widgets.Dropdown(options=["long", "longshort"], value=direction,
                                          description="direction")
        self.leverage = widgets.BoundedFloatText(
            value=leverage, min=1.0, max=125.0, step=0.5, description="leverage", style=STYLE,
            tooltip="hold up to this many times the equity; above 1 the account is liquidated "
                    "below the maintenance margin")
        self.maintenance_margin = widgets.BoundedFloatText(
            value=maintenance_margin, min=0.0, max=0.999, step=0.005,
            description="maintenance margin", style=STYLE,
            tooltip="liquidated when the equity falls below this share of the positions' "
                    "value (with leverage above 1)")
        self.fees, self.slippage, self.init_cash = simulation_controls(fees, slippage, init_cash)
        self.run_button = widgets.Button(description="Run portfolio", button_style="primary",
                                         icon="play")
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        self.metrics = widgets.HTML()
        self.by_symbol = widgets.HTML()
        self._params_box = widgets.VBox()
        self._charts = widgets.VBox(layout=full_width())
        super().__init__(children=[
            widgets.HBox([self.strategy_picker, self.series_picker]),
            self.symbol_picker,
            self._params_box,
            widgets.HBox([self.sizing_picker, self.size, self.vol_window, self.max_positions,
                          self.stop_loss]),
            widgets.HBox([self.direction, self.leverage, self.maintenance_margin]),
            widgets.HBox([self.fees, self.slippage, self.init_cash]),
            self.run_button, self.status, self.error,
            widgets.HBox([self.metrics, self.by_symbol]), self._charts,
        ], layout=full_width())
        self._build_controls(parameters)
        self._list_symbols(symbols)
        self._enable_size()
        if not self._groups:
            why = f" ({self._store_problem})" if self._store_problem else ""
            self.status.value = note_html(
                f"the store has no candle series{why}: collect some (`tcp-lab collect`) or "
                "pass candles_by_symbol")
        self.strategy_picker.observe(lambda _: self._build_controls(None), names="value")
        self.series_picker.observe(lambda _: self._list_symbols(None), names="value")
        self.sizing_picker.observe(lambda _: self._enable_size(), names="value")
        self.leverage.observe(lambda _: self._enable_size(), names="value")
        self.run_button.on_click(lambda _: self.run())

    # -- data ------------------------------------------------------------------------
    def _series_groups(self) -> dict[Any, tuple[str, list[str]]]:
        """Series key -> (label, symbols sorted by name)."""
        if self._candles is not None:
            names = sorted(self._candles)
            return {_GIVEN: (f"given candles ({len(names)} symbols)", names)}
        try:
            series = list_series(self._store)
        except Exception as e:  # noqa: BLE001 - shown as a note; the panel still opens
            self._store_problem = str(e)
            return {}
        groups: dict[Any, tuple[str, list[str]]] = {}
        for (exchange, timeframe), rows in series.groupby(["exchange", "timeframe"], sort=True):
            names = sorted(rows["symbol"])
            groups[(exchange, timeframe)] = (f"{exchange} {timeframe} ({len(names)} symbols)",
                                             names)
        return groups

    def _list_symbols(self, wanted: Sequence[str] | None) -> None:
        """Offer the selected series' symbols; keep those still offered, else the first few."""
        group = self._groups.get(self.series_picker.value)
        names = group[1] if group else []
        if wanted is not None:
            unknown = [s for s in wanted if s not in names]
            if unknown:
                raise ConfigError(f"{_OWNER}: symbols {unknown} are not in the data",
                                  hint=f"it has {', '.join(names) or 'no symbols'}")
        else:
            wanted = [s for s in self.symbol_picker.value if s in names] or \
                names[:DEFAULT_SYMBOLS]
        self.symbol_picker.options = names
        self.symbol_picker.rows = max(2, min(len(names), 8))
        self.symbol_picker.value = tuple(wanted)

    def _load(self) -> tuple[Any, str, dict[str, Any]]:
        """Candles of the picked symbols, a description and labels for ``run_portfolio``."""
        picked = list(self.symbol_picker.value)
        if not picked:
            raise ConfigError(f"{_OWNER}: no symbol picked",
                              hint="pick at least one symbol in the list (ctrl/shift-click "
                                   "for several)")
        key = self.series_picker.value
        if key == _GIVEN:
            return ({s: self._candles[s] for s in picked},
                    f"given candles, {len(picked)} symbols", {"timeframe": self._timeframe})
        if key is None:
            raise ConfigError(f"{_OWNER}: no series to pick from",
                              hint="collect candles (`tcp-lab collect`) or pass candles_by_symbol")
        exchange, timeframe = key
        wide, url = store_candles_many(self._store, exchange, picked, timeframe)
        return (wide, f"store {url}: {exchange} {timeframe}, {len(picked)} symbols",
                {"timeframe": timeframe, "exchange": exchange})

    # -- controls --------------------------------------------------------------------
    def _build_controls(self, values: Mapping[str, Any] | None) -> None:
        self.controls = parameter_controls(self.strategy_picker.value, values)
        self._params_box.children = list(self.controls.values())

    def _enable_size(self) -> None:
        """Enable the boxes the current sizing and leverage use."""
        self.size.disabled = not takes_size(self.sizing_picker.value)
        self.vol_window.disabled = self.sizing_picker.value != "volatility_target"
        self.maintenance_margin.disabled = self.leverage.value <= 1.0

    def options(self) -> dict[str, Any]:
        """The controls' values as ``run_portfolio`` keyword arguments (without the data)."""
        sizing = self.sizing_picker.value
        return dict(parameters=control_values(self.controls), sizing=sizing,
                    size=self.size.value if takes_size(sizing) else None,
                    max_positions=self.max_positions.value or None,
                    stop_loss=self.stop_loss.value or None,
                    vol_window=None if self.vol_window.disabled else self.vol_window.value,
                    direction=self.direction.value, leverage=self.leverage.value,
                    maintenance_margin=self.maintenance_margin.value,
                    init_cash=self.init_cash.value, fees=self.fees.value,
                    slippage=self.slippage.value)

    # -- running ---------------------------------------------------------------------
    def run(self) -> PortfolioResult | None:
        """Run the strategy on the picked symbols with the controls' values; show the outcome.

        Returns
        -------
        PortfolioResult or None
            ``None`` when it failed; the message is in :attr:`error`.
        """
        from tcp_lab.portfolio import run_portfolio

        self.error.value = ""
        self.status.value = note_html("running…")
        try:
            universe, described, labels = self._load()
            result = run_portfolio(self.strategy_picker.value, universe, **self.options(),
                                   **labels)
            figures = [figure_widget(result.plot())]
        except Exception as e:  # noqa: BLE001 - shown in the panel, never as a traceback
            self._show(None, [], "", e)
            return None
        params = ", ".join(f"{k}={v}" for k, v in result.parameters.items())
        self._show(result, figures, f"{result.strategy_name}({params}) on "
                   f"{', '.join(result.symbols)} — {described}")
        return result

    def _show(self, result: PortfolioResult | None, figures: list[go.FigureWidget],
              status: str, error: BaseException | None = None) -> None:
        self.result = result
        self.figures = figures
        self._charts.children = figures
        self.status.value = note_html(status) if status else ""
        self.error.value = error_html(error) if error is not None else ""
        self.metrics.value = "" if result is None else metrics_html(result.summary(), "metrics")
        self.by_symbol.value = "" if result is None else table_html(
            result.by_symbol, "contribution by symbol")
