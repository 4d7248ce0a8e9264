"""A simple self-contained HTML report of one backtest (works offline)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.io as pio

from tcp_lab.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.backtest.result import BacktestResult

__all__ = ["Report", "backtest_report", "format_metric"]

_FRACTIONS = {
    "total_return", "cagr", "max_drawdown", "win_rate", "exposure", "avg_trade_return",
    "buy_and_hold_return",
}
_MAX_TRADE_ROWS = 500


def format_metric(name: str, value: object) -> str:
    """Display text of one metric: fractions as percentages, ratios with 3 decimals.

    Examples
    --------
    >>> format_metric("total_return", 0.1234), format_metric("sharpe", 1.5)
    ('12.34%', '1.500')
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "n/a"
    if name.split(" ")[0] in _FRACTIONS:  # "total_return (ohlc)" too
        return f"{value:.2%}"
    if name in ("fees_paid", "final_equity"):
        return f"{value:,.2f}"
    return f"{value:.3f}"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
    "th,td{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}"
    "h2{margin-top:1.5em}.muted{color:#666}"
)


class Report:
    """An HTML page built from sections; plotly.js is embedded once, so it opens offline.

    Examples
    --------
    >>> r = Report("demo")
    >>> r.heading("Data").paragraph("two symbols")  # doctest: +ELLIPSIS
    <tcp_lab.reports.html.Report object at ...>
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        self._plotlyjs_done = False

    def heading(self, text: str, level: int = 2) -> Report:
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, *, muted: bool = False) -> Report:
        cls = " class='muted'" if muted else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, frame: pd.DataFrame | pd.Series, **to_html: Any) -> Report:
        """Append a DataFrame (or a Series as a two-column table)."""
        if isinstance(frame, pd.Series):
            frame = frame.to_frame()
        to_html.setdefault("float_format", lambda v: f"{v:,.6g}")
        to_html.setdefault("na_rep", "")
        self._parts.append(frame.to_html(**to_html))
        return self

    def metrics(self, metrics: Mapping[str, object]) -> Report:
        """Append metrics formatted by :func:`format_metric`."""
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th>"
            f"<td>{html.escape(format_metric(str(k), v))}</td></tr>"
            for k, v in metrics.items()
        )
        self._parts.append(f"<table>{rows}</table>")
        return self

    def figure(self, fig: Any) -> Report:
        """Append a plotly figure (plotly.js is included with the first one)."""
        self._parts.append(
            pio.to_html(fig, full_html=False, include_plotlyjs=not self._plotlyjs_done)
        )
        self._plotlyjs_done = True
        return self

    def backtest(self, result: BacktestResult, *, max_trades: int = _MAX_TRADE_ROWS) -> Report:
        """Append one backtest: options, metrics, strategy and equity figures, trades."""
        opts = ", ".join(f"{k}={v}" for k, v in result.options.items())
        self.paragraph(
            f"{opts}; {len(result.equity)} candles "
            f"{result.equity.index[0]} – {result.equity.index[-1]}"
        )
        self.heading("Metrics", 3).metrics(result.summary())
        if result.candles is not None:
            self.figure(result.plot())
        self.figure(result.plot_equity())
        trades = result.trades
        more = f" (last {max_trades} of {len(trades)})" if len(trades) > max_trades else ""
        self.heading(f"Trades{more}", 3).table(trades.tail(max_trades))
        if result.trades_source is not None and result.strategy is not None:
            self.intrabar(result.intrabar_report(), max_rows=max_trades)
        return self

    def intrabar(self, report: Any, *, max_rows: int = _MAX_TRADE_ROWS) -> Report:
        """Append an :class:`~tcp_lab.backtest.intrabar.IntrabarReport`."""
        self.heading("Stops and targets: candles vs trades", 3)
        self.paragraph("The same run with its stops and targets resolved on candles (OHLC "
                       "rule: a bar that reaches both levels is assumed to hit the stop "
                       "first) and on the market trades.", muted=True)
        self.metrics(report.summary())
        for title, frame in (("Round trips whose exit changed", report.changed),
                             ("Candles where the rules disagree", report.disagreements)):
            if len(frame):
                more = f" (first {max_rows} of {len(frame)})" if len(frame) > max_rows else ""
                self.heading(title + more, 4).table(frame.head(max_rows))
        return self

    def body_html(self) -> str:
        """The sections without the page around them (for a notebook's rich display)."""
        return "\n".join(self._parts[1:])

    def to_html(self) -> str:
        return "\n".join([
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style>",
            "</head><body>", *self._parts, "</body></html>",
        ])

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (parents created) and return the path.

        Raises
        ------
        ConfigError
            ``path`` cannot be written.
        """
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(self.to_html(), encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write the report to {p}: {e.strerror}") from e
        return p


def backtest_report(result: BacktestResult, path: str | Path) -> Path:
    """Write metrics, the strategy and equity figures and the trades to ``path``.

    plotly.js is embedded, so the file opens without a network connection.

    Raises
    ------
    ConfigError
        ``path`` cannot be written.
    """
    return Report(result.label).backtest(result).write(path)
