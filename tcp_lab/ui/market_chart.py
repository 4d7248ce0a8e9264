"""The market chart panel: stored candles with volume and indicators, updated live from the bus.

Pickers list the series the store holds (``Store.list_series``); the chart
is a plotly ``FigureWidget`` (:func:`tcp_lab.reports.figures.strategy_figure`)
with the chosen strategy's indicators as overlays. With *live* on, the panel
subscribes to the symbol's market channel; :meth:`MarketChartPanel.on_candle`
(the subscription's handler, callable directly in tests) appends the new
candle — or replaces it, for a corrected one — and updates the traces in
place. After a lost connection it reloads from the store to catch up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tcp_lab.strategies import get_strategy, list_strategies
from tcp_lab.timeframes import CANDLE_COLUMNS, empty_candles
from tcp_lab.ui._html import error_html, note_html
from tcp_lab.ui._layout import figure_widget, full_width
from tcp_lab.ui.sources import list_series, store_candles

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.bus import Bus, Subscription
    from tcp_lab.store import Store

__all__ = ["MarketChartPanel"]

_NO_STRATEGY = "(no indicators)"


def _naive_utc(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_convert("UTC").tz_localize(None).to_numpy()


class MarketChartPanel(widgets.VBox):
    """Candlesticks + volume of a stored series, indicator overlays, live updates.

    Parameters
    ----------
    store
        Store or database URL (default: the ``database_url`` setting).
    bus
        Bus or bus URL for live updates (default: the ``redis_url`` setting,
        opened when *live* is switched on).
    exchange, symbol, timeframe
        Series selected at the start (default: the first the store lists).
    strategy
        Strategy whose indicators are drawn (``None``: none).
    parameters
        Its parameters (default: its defaults).
    max_candles
        Show at most this many of the newest candles.
    live
        Follow the bus from the start.

    Attributes
    ----------
    exchange_picker, symbol_picker, timeframe_picker, strategy_picker
        Dropdowns.
    start_picker, end_picker
        ``DatePicker`` (UTC days, inclusive; empty: unbounded).
    max_candles
        How many of the newest candles to show.
    live_toggle, reload_button
        Follow the bus; reload from the store.
    status, error
        What is shown; the last error (empty when none).
    figure
        The plotly ``FigureWidget``.
    candles
        The candles on the chart.
    n_updates
        Candles received from the bus so far.

    Examples
    --------
    >>> panel = MarketChartPanel(strategy="sma_cross")   # doctest: +SKIP
    >>> panel.live_toggle.value = True                   # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        bus: Bus | str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        timeframe: str | None = None,
        strategy: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        max_candles: int = 1000,
        live: bool = False,
    ) -> None:
        self._store = store
        self._bus_arg = bus
        self._bus: Bus | None = None
        self._subscription: Subscription | None = None
        self._lock = threading.RLock()
        self._quiet_depth = 0
        self._parameters = {strategy: dict(parameters or {})} if strategy else {}
        self.candles = empty_candles()
        self.n_updates = 0
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        try:
            self.series = list_series(store)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.series = pd.DataFrame(columns=["exchange", "symbol", "timeframe"])
            self.error.value = error_html(e)

        self.exchange_picker = widgets.Dropdown(description="exchange")
        self.symbol_picker = widgets.Dropdown(description="symbol")
        self.timeframe_picker = widgets.Dropdown(description="timeframe")
        self.start_picker = widgets.DatePicker(description="from")
        self.end_picker = widgets.DatePicker(description="to")
        self.max_candles = widgets.BoundedIntText(value=max_candles, min=2, max=1_000_000,
                                                  description="last")
        self.strategy_picker = widgets.Dropdown(
            options=[_NO_STRATEGY, *list_strategies()], value=strategy or _NO_STRATEGY,
            description="indicators")
        self.live_toggle = widgets.ToggleButton(value=False, description="live", icon="bolt")
        self.reload_button = widgets.Button(description="reload", icon="refresh")
        # The figure is made once there is something to draw: a placeholder replaced at
        # once would be a widget the page starts to build and loses.
        self.figure: go.FigureWidget | None = None
        self._figure_box = widgets.VBox(layout=full_width())
        super().__init__(children=[
            widgets.HBox([self.exchange_picker, self.symbol_picker, self.timeframe_picker]),
            widgets.HBox([self.start_picker, self.end_picker, self.max_candles]),
            widgets.HBox([self.strategy_picker, self.live_toggle, self.reload_button]),
            self.status, self.error, self._figure_box,
        ], layout=full_width())
        with self._quiet():
            self.exchange_picker.options = self._values("exchange")
            self._select(self.exchange_picker, exchange)
            self._fill("symbol", self.symbol_picker, symbol, exchange=self.exchange_picker.value)
            self._fill("timeframe", self.timeframe_picker, timeframe,
                       exchange=self.exchange_picker.value, symbol=self.symbol_picker.value)
        for picker in (self.exchange_picker, self.symbol_picker, self.timeframe_picker):
            picker.observe(self._on_series, names="value")
        for w in (self.start_picker, self.end_picker, self.max_candles, self.strategy_picker):
            w.observe(lambda _: self.reload(), names="value")
        self.live_toggle.observe(self._on_live, names="value")
        self.reload_button.on_click(lambda _: self.reload())
        self.reload()
        if self.figure is None:
            self.figure = figure_widget(go.Figure())
            self._figure_box.children = [self.figure]
        if live:
            self.live_toggle.value = True

    # -- selection -------------------------------------------------------------------
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change pickers without each change reloading."""
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def _values(self, column: str, **where: Any) -> list[str]:
        df = self.series
        for key, value in where.items():
            df = df[df[key] == value]
        return list(dict.fromkeys(str(v) for v in df[column]))

    @staticmethod
    def _select(picker: widgets.Dropdown, wanted: Any) -> None:
        options = list(picker.options)
        if wanted in options:
            picker.value = wanted
        elif picker.value not in options:
            picker.value = options[0] if options else None

    def _fill(self, column: str, picker: widgets.Dropdown, wanted: Any, **where: Any) -> None:
        wanted = wanted if wanted is not None else picker.value
        picker.options = self._values(column, **where)
        self._select(picker, wanted)

    def _on_series(self, change: Mapping[str, Any]) -> None:
        if self._quiet_depth:
            return
        with self._quiet():
            if change["owner"] is self.exchange_picker:
                self._fill("symbol", self.symbol_picker, None,
                           exchange=self.exchange_picker.value)
            if change["owner"] is not self.timeframe_picker:
                self._fill("timeframe", self.timeframe_picker, None,
                           exchange=self.exchange_picker.value, symbol=self.symbol_picker.value)
        if self._subscription is not None:  # follow the new symbol
            self.stop_live()
            self.start_live()
        self.reload()

    @property
    def selection(self) -> tuple[str, str, str] | None:
        """``(exchange, symbol, timeframe)`` shown, or ``None`` when the store has no series."""
        sel = (self.exchange_picker.value, self.symbol_picker.value, self.timeframe_picker.value)
        return None if None in sel else sel  # type: ignore[return-value]

    def _bounds(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        def day(d: dt.date | None, plus: int) -> pd.Timestamp | None:
            return None if d is None else pd.Timestamp(d, tz="UTC") + pd.Timedelta(days=plus)

        # a day's last candle closes at the next midnight (candles are stamped at close)
        return day(self.start_picker.value, 0), day(self.end_picker.value, 1)

    # -- drawing ---------------------------------------------------------------------
    def _indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        name = self.strategy_picker.value
        if name == _NO_STRATEGY or len(candles) == 0:
            return {}
        return get_strategy(name, self._parameters.get(name)).get_indicators(candles)

    def reload(self) -> None:
        """Load the selected series from the store and redraw the chart."""
        self.error.value = ""
        sel = self.selection
        if sel is None:
            self.status.value = note_html(
                "the store has no candles yet: collect some, or save_candles() a frame")
            return
        try:
            start, end = self._bounds()
            candles, _ = store_candles(self._store, *sel, start, end)
            with self._lock:
                self.candles = candles.tail(self.max_candles.value)[list(CANDLE_COLUMNS)] \
                    if len(candles) else empty_candles()
                self._redraw()
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)

    def _redraw(self) -> None:
        """Build a new figure for :attr:`candles` (selection or strategy changed)."""
        from tcp_lab.reports.figures import strategy_figure

        sel = self.selection
        title = " ".join(sel) if sel else ""
        fig = strategy_figure(self.candles, self._indicators(self.candles), title=title,
                              max_points=max(len(self.candles), 1))
        self.figure = figure_widget(fig)
        self._figure_box.children = [self.figure]
        self._show_status()

    def _update_traces(self) -> None:
        """Put :attr:`candles` into the existing traces (a live update)."""
        indicators = self._indicators(self.candles)
        traces = {t.name: t for t in self.figure.data} if self.figure is not None else {}
        if not {"price", "volume", *indicators} <= traces.keys():
            self._redraw()
            return
        c = self.candles
        x = _naive_utc(c.index)
        with self.figure.batch_update():
            price = traces["price"]
            price.x, price.open, price.high = x, c["open"].to_numpy(), c["high"].to_numpy()
            price.low, price.close = c["low"].to_numpy(), c["close"].to_numpy()
            traces["volume"].x, traces["volume"].y = x, c["volume"].to_numpy()
            for name, series in indicators.items():
                traces[name].x, traces[name].y = x, np.asarray(series, dtype=np.float64)
        self._show_status()

    def _show_status(self) -> None:
        sel = self.selection
        if sel is None:
            return
        c = self.candles
        span = (f"{len(c)} candles, last closed {c.index[-1]:%Y-%m-%d %H:%M} UTC" if len(c)
                else "no candles in this range")
        live = f"; live ({self.n_updates} received)" if self._subscription is not None else ""
        self.status.value = note_html(f"{' '.join(sel)}: {span}{live}")

    # -- live ------------------------------------------------------------------------
    def on_candle(self, message: Any) -> bool:
        """Add a candle message to the chart if it belongs to the shown series.

        A candle with a time already shown replaces it (a ``corrected``
        candle); a new one is appended and the oldest dropped beyond
        :attr:`max_candles`. The bus subscription calls this in its thread.

        Returns
        -------
        bool
            Whether the chart changed.
        """
        from tcp_lab.bus import CandleMessage, candles_from_messages

        if not isinstance(message, CandleMessage):
            return False
        sel = self.selection
        if sel is None or (message.exchange, message.symbol, message.timeframe) != sel:
            return False
        start, end = self._bounds()
        if (start is not None and message.ts < start) or (end is not None and message.ts > end):
            return False
        row = candles_from_messages([message])[list(CANDLE_COLUMNS)]
        try:
            with self._lock:
                frame = self.candles
                if message.ts in frame.index:  # a corrected candle replaces the shown one
                    frame = frame.drop(index=message.ts)
                frame = pd.concat([frame, row]).sort_index() if len(frame) else row
                self.candles = frame.tail(self.max_candles.value)
                self.n_updates += 1
                self._update_traces()
        except Exception as e:  # noqa: BLE001 - shown in the panel; the listener goes on
            self.error.value = error_html(e)
            return False
        return True

    def _get_bus(self) -> Bus:
        from tcp_lab.bus import open_bus

        if self._bus is None:
            arg = self._bus_arg
            self._bus = open_bus(arg) if arg is None or isinstance(arg, str) else arg
        return self._bus

    def start_live(self) -> None:
        """Subscribe to the shown symbol's market channel (see :meth:`on_candle`)."""
        from tcp_lab.bus import market_channel

        if self._subscription is not None:
            return
        sel = self.selection
        if sel is None:
            self.error.value = error_html("no series is shown, so there is nothing to follow")
            with self._quiet():
                self.live_toggle.value = False
            return
        try:
            self._subscription = self._get_bus().subscribe(
                market_channel(sel[1]), handler=self.on_candle, on_reconnect=self.reload)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            with self._quiet():
                self.live_toggle.value = False
            return
        with self._quiet():
            self.live_toggle.value = True
        self._show_status()

    def stop_live(self) -> None:
        """Stop following the bus."""
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.close()
        with self._quiet():
            self.live_toggle.value = False
        self._show_status()

    def _on_live(self, change: Mapping[str, Any]) -> None:
        if self._quiet_depth:
            return
        if change["new"]:
            self.start_live()
        else:
            self.stop_live()

    def close(self) -> None:
        """Stop following the bus, close a bus the panel opened, and close the widgets.

        Also runs when the widget is garbage-collected, so it touches no other widget.
        """
        sub, self._subscription = getattr(self, "_subscription", None), None
        if sub is not None:
            sub.close()
        bus, self._bus = getattr(self, "_bus", None), None
        if bus is not None and bus is not self._bus_arg:
            bus.close()
        super().close()
