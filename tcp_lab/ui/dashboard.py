"""The dashboard: bots, market chart, backtest and portfolio panels, the newest sweep on one page.

``tcp-lab dashboard`` serves :data:`NOTEBOOK` with Voila on 127.0.0.1; the notebook
shows one :class:`Dashboard`. In a notebook, ``Dashboard()`` shows the same page.

On the embedded default (DuckDB + in-process bus) the dashboard's kernel runs a
:class:`~tcp_lab.bots.BotManager` itself, so the bots it starts run in that kernel
(and stop with the page; the manager restores them on the next visit). With
PostgreSQL + Redis it runs no bots: its buttons send requests to the manager of
``tcp-lab bots serve`` and it follows that manager's bots over the bus.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from tcp_lab.settings import Settings, load_settings
from tcp_lab.ui._layout import full_width

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.bots import BotManager

__all__ = ["Dashboard", "NOTEBOOK", "ROOT_ENV"]

#: The notebook ``tcp-lab dashboard`` serves.
NOTEBOOK = Path(__file__).with_name("dashboard.ipynb")
#: The project root the command was run from (Voila starts kernels in the notebook's folder).
ROOT_ENV = "TCP_LAB_DASHBOARD_ROOT"


def _section(title: str, body: widgets.Widget) -> widgets.VBox:
    return widgets.VBox([widgets.HTML(f"<h3 style='margin:1em 0 0.3em'>{html.escape(title)}</h3>"),
                         body], layout=full_width())


class Dashboard(widgets.VBox):
    """Every panel of the workbench, stacked on one page.

    Parameters
    ----------
    settings
        Where the data is (default :func:`~tcp_lab.settings.load_settings`).
    run_bots
        Run a bot manager in this process (default: on the embedded default only,
        where no other process can).
    strategy
        Strategy whose indicators the market chart draws.

    Attributes
    ----------
    market, backtest, portfolio, sweep, bots
        The :class:`MarketChartPanel`, :class:`BacktestPanel`, :class:`PortfolioPanel`,
        :class:`SweepPanel` and :class:`BotPanel` shown.
    manager
        The bot manager this dashboard runs, or ``None``.
    """

    def __init__(self, settings: Settings | None = None, *, run_bots: bool | None = None,
                 strategy: str = "sma_cross") -> None:
        from tcp_lab.bus import open_bus
        from tcp_lab.store import open_store
        from tcp_lab.ui.backtest_panel import BacktestPanel
        from tcp_lab.ui.bot_panel import BotPanel
        from tcp_lab.ui.market_chart import MarketChartPanel
        from tcp_lab.ui.portfolio_panel import PortfolioPanel
        from tcp_lab.ui.sweep_panel import SweepPanel

        self.settings = settings or load_settings()
        self.store = open_store(self.settings.database_url)
        self.bus = open_bus(self.settings.redis_url)
        embedded = self.settings.is_embedded
        self.manager: BotManager | None = None
        if run_bots if run_bots is not None else embedded:
            from tcp_lab.bots import BotManager

            self.manager = BotManager(self.store, self.bus, runner="thread").start()
        self.market = MarketChartPanel(self.store, bus=self.bus, strategy=strategy)
        self.backtest = BacktestPanel(store=self.store, strategy=strategy)
        self.portfolio = PortfolioPanel(store=self.store, strategy=strategy)
        self.sweep = SweepPanel(self.settings.home)
        self.bots = BotPanel(self.manager) if self.manager is not None else \
            BotPanel(store=self.store, bus=self.bus)
        urls = self.settings.redacted()
        who = ("the bots run in this page's kernel (they stop with the page and resume on "
               "the next visit)" if self.manager is not None else
               "the bots run under `tcp-lab bots serve`; this page sends it start and stop "
               "requests")
        header = widgets.HTML(
            "<h2 style='margin:0.2em 0'>tcp_lab</h2>"
            f"<span style='color:#555'>store {html.escape(str(urls['database_url']))} · bus "
            f"{html.escape(str(urls['redis_url']))} · {html.escape(who)}</span>")
        super().__init__(children=[
            header,
            _section("Bots", self.bots),
            _section("Market", self.market),
            _section("Backtest", self.backtest),
            _section("Portfolio (several symbols, one account)", self.portfolio),
            _section("Sweep (saved sweeps, newest first)", self.sweep),
        ], layout=full_width())

    @classmethod
    def for_voila(cls, **kwargs: Any) -> Dashboard:
        """The dashboard of ``tcp-lab dashboard``: settings resolved from the command's root."""
        root = os.environ.get(ROOT_ENV)
        if root:
            os.chdir(root)
        return cls(**kwargs)

    def close(self) -> None:
        """Stop the panels' subscriptions and the manager, then close the store and the bus."""
        for panel in (self.bots, self.market, self.sweep, self.backtest, self.portfolio):
            panel.close()
        if self.manager is not None:
            self.manager.stop()
        self.bus.close()
        self.store.close()
        super().close()
