"""Small HTML fragments the panels show: errors in place, metric tables, notes."""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tcp_lab.errors import TcpLabError

__all__ = ["error_html", "note_html", "metrics_html", "table_html"]

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("tcp_lab.ui")


def error_html(error: BaseException | str) -> str:
    """An error as a red box: the class and the message (with its hint), no traceback.

    A :class:`~tcp_lab.errors.TcpLabError` is the user's to fix and shows as
    it is; anything else is a bug and is also logged with its traceback.
    """
    if isinstance(error, BaseException):
        kind = type(error).__name__
        text = str(error)
        if not isinstance(error, TcpLabError):
            log.error("unexpected error in a panel", exc_info=error)
            kind = f"unexpected {kind}"
    else:
        kind, text = "error", error
    return ("<div class='tcp-lab-error' style='color:#b00020;border:1px solid #b00020;"
            "padding:4px 8px;white-space:pre-wrap'>"
            f"<b>{html.escape(kind)}</b>: {html.escape(text)}</div>")


def note_html(text: str) -> str:
    """A grey one-line note (what data is shown, what is running)."""
    return f"<span style='color:#555'>{html.escape(text)}</span>"


def metrics_html(metrics: Mapping[str, Any], title: str = "") -> str:
    """A two-column table of metrics, formatted like the HTML report."""
    from tcp_lab.reports.html import format_metric

    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
        f"<td style='text-align:right'>{html.escape(format_metric(str(k), v))}</td></tr>"
        for k, v in metrics.items()
    )
    head = f"<b>{html.escape(title)}</b>" if title else ""
    return f"{head}<table class='tcp-lab-metrics'>{rows}</table>"


def table_html(frame: pd.DataFrame, title: str = "") -> str:
    """A table with a title, cells formatted by column name like the HTML report's."""
    from tcp_lab.reports.html import Report

    head = f"<b>{html.escape(title)}</b>" if title else ""
    return head + Report(title).table(frame).body_html()
