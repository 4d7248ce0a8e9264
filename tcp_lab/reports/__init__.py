"""Figures and HTML reports shared by notebooks, the CLI and batch runs (plotly only)."""

from __future__ import annotations

__all__ = ["strategy_figure", "equity_figure", "backtest_report", "Report",
           "export_notebook_html"]


def __getattr__(name: str):
    import importlib

    modules = {"strategy_figure": "figures", "equity_figure": "figures", "backtest_report": "html",
               "Report": "html", "export_notebook_html": "notebook_html"}
    if name not in modules:
        raise AttributeError(f"module 'tcp_lab.reports' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tcp_lab.reports.{modules[name]}"), name)
