"""A simple self-contained HTML report of one backtest (works offline)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.io as pio

from tcp_lab.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.backtest.result import BacktestResult

__all__ = ["backtest_report", "format_metric"]

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
    if name in _FRACTIONS:
        return f"{value:.2%}"
    if name in ("fees_paid", "final_equity"):
        return f"{value:,.2f}"
    return f"{value:.3f}"


def backtest_report(result: BacktestResult, path: str | Path) -> Path:
    """Write metrics, the strategy and equity figures and the trades to ``path``.

    plotly.js is embedded, so the file opens without a network connection.

    Raises
    ------
    ConfigError
        ``path`` cannot be written.
    """
    p = Path(path)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(format_metric(k, v))}</td></tr>"
        for k, v in result.summary().items()
    )
    opts = ", ".join(f"{k}={v}" for k, v in result.options.items())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(result.label)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}</style>",
        "</head><body>",
        f"<h1>{html.escape(result.label)}</h1>",
        f"<p>{html.escape(opts)}; {len(result.equity)} candles "
        f"{result.equity.index[0]} – {result.equity.index[-1]}</p>",
        f"<h2>Metrics</h2><table>{rows}</table>",
    ]
    first = True
    figures = [result.plot_equity()]
    if result.candles is not None:
        figures.insert(0, result.plot())
    for fig in figures:
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=first))
        first = False
    trades = result.trades
    shown = trades.tail(_MAX_TRADE_ROWS)
    more = f" (last {_MAX_TRADE_ROWS} of {len(trades)})" if len(trades) > _MAX_TRADE_ROWS else ""
    parts.append(f"<h2>Trades{more}</h2>")
    parts.append(shown.to_html(float_format=lambda v: f"{v:,.6g}", na_rep=""))
    parts.append("</body></html>")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(parts), encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write the report to {p}: {e.strerror}") from e
    return p
