"""Display text of numbers by kind (percent, money, quantity, count, ratio): one set of rules.

The kind comes from the column or metric name, so a metrics table, a report's tables,
a batch summary and the CLI show the same number the same way.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import timedelta

import numpy as np
import pandas as pd

__all__ = ["format_metric", "format_cell", "number_kind"]

_FRACTIONS = {
    "total_return", "cagr", "max_drawdown", "win_rate", "exposure", "avg_trade_return",
    "buy_and_hold_return", "return", "alpha",
}
_MONEY = {
    "fees_paid", "final_equity", "init_cash", "equity", "cash", "pnl", "realized_pnl",
    "unrealized_pnl", "fee", "fees", "entry_fees", "exit_fees", "price", "entry_price",
    "exit_price", "open", "high", "low", "close",
}
_QUANTITIES = {"size", "amount", "volume", "position"}
_COUNTS = {
    "candles", "missing", "confirmed", "holes", "duplicates", "suspicious", "trades", "fills",
    "seq", "ambiguous_bars", "combinations",
}
_RATIOS = {"sharpe", "sortino", "calmar", "profit_factor", "psr", "dsr", "rank_corr",
           "efficiency", "beta"}
_MULTIPLES = {"turnover"}


def number_kind(name: str) -> str | None:
    """The kind of number a metric or column holds, from its name.

    ``"fraction"`` (shown in %), ``"money"``, ``"quantity"``, ``"count"``,
    ``"ratio"``, ``"multiple"`` (``2.50x``), ``"seconds"`` or ``None`` (unknown).
    ``total_return (ohlc)``, ``is_sharpe``/``oos_sharpe`` (sweeps) and
    ``parameters.fast`` (batches) are read as ``total_return``, ``sharpe`` and ``fast``.

    Examples
    --------
    >>> number_kind("oos_total_return"), number_kind("entry_price"), number_kind("n_trades")
    ('fraction', 'money', 'count')
    """
    key = str(name).split(" ")[0].rsplit(".", 1)[-1]
    for prefix in ("is_", "oos_"):
        if key.startswith(prefix) and key[len(prefix):]:
            key = key[len(prefix):]
            break
    if key in _FRACTIONS:
        return "fraction"
    if key in _MONEY:
        return "money"
    if key in _QUANTITIES:
        return "quantity"
    if key in _COUNTS or key.startswith("n_"):
        return "count"
    if key in _RATIOS:
        return "ratio"
    if key in _MULTIPLES:
        return "multiple"
    if key == "seconds":
        return "seconds"
    return None


def _number(kind: str | None, value: float, default: str) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "fraction":
        return f"{value:.2%}"
    if kind == "money":  # cents; a coin priced below 1 keeps its significant digits
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.6g}"
    if kind == "quantity":
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"
    if kind == "count" and value.is_integer():
        return f"{int(value):,}"
    if kind == "seconds":
        return f"{value:.1f}"
    if kind == "multiple":
        return f"{value:,.2f}x"
    if kind == "ratio" or default == "ratio":
        return f"{value:,.3f}"
    return f"{value:.6g}"


def _duration(value: pd.Timedelta) -> str:
    secs = round(value.total_seconds())
    sign, secs = ("-" if secs < 0 else ""), abs(secs)
    days, rest = divmod(secs, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    return sign + (" ".join(parts) if parts else f"{seconds}s")


def format_metric(name: str, value: object) -> str:
    """Display text of one metric: fractions as percentages, ratios with 3 decimals.

    Money with cents, counts with thousands separators, turnover as a multiple,
    durations as ``1h 30m``; NaN and NaT are ``"n/a"``.

    Examples
    --------
    >>> format_metric("total_return", 0.1234), format_metric("sharpe", 1.5)
    ('12.34%', '1.500')
    >>> format_metric("final_equity", 10287.514), format_metric("n_trades", 1234)
    ('10,287.51', '1,234')
    >>> format_metric("avg_trade_duration", pd.Timedelta(minutes=90))
    '1h 30m'
    """
    if value is pd.NaT or (isinstance(value, np.timedelta64) and np.isnat(value)):
        return "n/a"
    if isinstance(value, np.timedelta64 | timedelta):
        return _duration(pd.Timedelta(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    kind = number_kind(name)
    if isinstance(value, int):
        return f"{value:,}" if kind == "count" else str(value)
    if math.isnan(value):
        return "n/a"
    return _number(kind, value, "ratio")


def format_cell(column: str, value: object, *, raw: Collection[str] = ()) -> str:
    """Display text of one table cell: :func:`format_metric`'s rules, blanks for missing values.

    Parameters
    ----------
    column
        The column's name (it picks the kind of number).
    value
        The cell.
    raw
        Columns shown as given (e.g. a batch's parameter columns: ``fees`` there
        is a rate, not money).

    Examples
    --------
    >>> format_cell("return", 0.0035237), format_cell("pnl", 35.2018), format_cell("note", None)
    ('0.35%', '35.20', '')
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return ""
    if isinstance(value, np.timedelta64 | timedelta):
        return "" if pd.isna(value) else _duration(pd.Timedelta(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            value = value.tz_convert("UTC")
        return value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")
    if isinstance(value, int | float):
        if column in raw:
            return str(value) if isinstance(value, int) else f"{value:.10g}"
        if isinstance(value, int):
            return format_metric(column, value)
        return _number(number_kind(column), value, "general")
    return str(value)
