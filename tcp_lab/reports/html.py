"""HTML reports that read on a laptop screen and open offline.

A :class:`Report` is a page of sections: key outcome lines at the top, headings,
paragraphs, tables (each scrolls inside its own box, numbers formatted by kind,
empty cells for missing values, file paths as relative links) and plotly figures
(one local ``plotly.min.js`` beside the page, see :mod:`tcp_lab.reports.assets`).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd
import plotly.io as pio

from tcp_lab.errors import ConfigError
from tcp_lab.reports.assets import PLOTLYJS, plotlyjs_tags, write_plotlyjs
from tcp_lab.reports.formatting import format_cell, format_metric

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.backtest.result import BacktestResult

__all__ = ["Report", "backtest_report", "format_metric"]

_MAX_TRADE_ROWS = 500
#: Columns whose values are file paths (shown as links).
LINK_COLUMNS = frozenset({"notebook", "html", "report", "path", "file"})

_STYLE = (
    "*{box-sizing:border-box}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;"
    "padding:1em 2em;max-width:1200px;color:#222;line-height:1.4}"
    "p{overflow-wrap:anywhere}h2{margin-top:1.6em;border-bottom:1px solid #e3e3e3}"
    ".muted{color:#666}.caption{color:#666;font-size:.9em;margin:.2em 0}"
    ".table-wrap{overflow-x:auto;max-width:100%;margin:.4em 0 1em}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "th,td{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd;white-space:nowrap}"
    "thead th{background:#f5f5f5}th.text,td.text{text-align:left}"
    "tr.failed td{background:#fde8e8}"
    ".figure{max-width:100%;overflow:hidden}"
    ".summary{border:1px solid #cfd8e3;background:#f6f8fb;border-radius:4px;"
    "padding:.4em 1.2em;margin:1em 0}.summary ul{margin:.3em 0;padding-left:1.2em}"
)

# A part of the page: fixed text, or text that depends on where the page is written
# (relative links); the argument is the page's folder, None for a page without one.
_Part = str | Callable[[Path | None], str]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


class Report:
    """An HTML page built from sections; opens offline and fits a laptop screen.

    Tables scroll inside their own box, so a wide one never widens the page;
    :meth:`key` lines collect in a summary at the top.

    Examples
    --------
    >>> r = Report("demo")
    >>> r.heading("Data").paragraph("two symbols")  # doctest: +ELLIPSIS
    <tcp_lab.reports.html.Report object at ...>
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[_Part] = []
        self._keys: list[str] = []
        self._sections: list[tuple[str, str]] = []
        self._figures = 0

    # -- sections --------------------------------------------------------------------
    def key(self, text: str) -> Report:
        """Add one key outcome line to the summary at the top of the page."""
        self._keys.append(text)
        return self

    def heading(self, text: str, level: int = 2) -> Report:
        anchor = ""
        if level == 2:
            slug = _slug(text)
            ids = {s for s, _ in self._sections}
            base, n = slug, 1
            while slug in ids:
                n += 1
                slug = f"{base}-{n}"
            self._sections.append((slug, text))
            anchor = f" id='{slug}'"
        self._parts.append(f"<h{level}{anchor}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, *, muted: bool = False) -> Report:
        cls = " class='muted'" if muted else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(
        self,
        frame: pd.DataFrame | pd.Series,
        *,
        index: bool = True,
        first: int | None = None,
        last: int | None = None,
        links: str | os.PathLike[str] | None = None,
        failed: Sequence[bool] | pd.Series | None = None,
        fold_constant: bool = False,
    ) -> Report:
        """Append a table (a Series as a two-column one) that scrolls inside its own box.

        Parameters
        ----------
        frame
            The rows. Numbers are formatted by column name (see
            :func:`~tcp_lab.reports.formatting.format_cell`); ``None``/NaN show
            as empty cells. ``frame.attrs["parameter_columns"]`` are shown as given.
        index
            Show the index (a default 0..n-1 index never is).
        first, last
            Show only the first or last rows; the caption then says
            "showing the last 20 of 34".
        links
            Folder that relative paths in the ``notebook``/``html``/``path``…
            columns are relative to (default ``frame.attrs["root"]``); they become
            links relative to where the page is written.
        failed
            One boolean per row: rows to highlight as failed (e.g. batch runs).
        fold_constant
            Columns with one value in every row (or none at all) leave the table; a
            line above it gives their value. For a batch summary: the parameters
            that vary and the metrics come into view.
        """
        if isinstance(frame, pd.Series):
            frame = frame.to_frame()
        root = links if links is not None else frame.attrs.get("root")
        raw = set(frame.attrs.get("parameter_columns") or ())
        total = len(frame)
        flags = None if failed is None else [bool(f) for f in failed]
        caption = ""
        if first is not None and total > first:
            frame, caption = frame.head(first), f"showing the first {first} of {total} rows"
            flags = None if flags is None else flags[:first]
        elif last is not None and total > last:
            frame, caption = frame.tail(last), f"showing the last {last} of {total} rows"
            flags = None if flags is None else flags[-last:]
        default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
        if index and not default_index:
            frame = frame.reset_index(allow_duplicates=True)
        if fold_constant:
            frame, same = _fold_constant(frame, raw)
            caption = "; ".join(filter(None, [same, caption]))
        self._parts.append(lambda where: _table_html(frame, caption, flags, raw,
                                                     Path(root) if root else None, where))
        return self

    def metrics(self, metrics: Mapping[str, object]) -> Report:
        """Append metrics formatted by :func:`format_metric`."""
        rows = "".join(
            f"<tr><th class='text'>{html.escape(str(k))}</th>"
            f"<td>{html.escape(format_metric(str(k), v))}</td></tr>"
            for k, v in metrics.items()
        )
        self._parts.append(f"<div class='table-wrap'><table>{rows}</table></div>")
        return self

    def figure(self, fig: Any) -> Report:
        """Append a plotly figure (plotly.js is loaded once per page, see :meth:`write`)."""
        self._parts.append("<div class='figure'>" + pio.to_html(
            fig, full_html=False, include_plotlyjs=False) + "</div>")
        self._figures += 1
        return self

    def backtest(self, result: BacktestResult, *, max_trades: int = _MAX_TRADE_ROWS) -> Report:
        """Append one backtest: options, metrics, strategy and equity figures, trades.

        Its key numbers also go to the summary at the top (:meth:`key`).
        """
        m = result.metrics
        self.key(f"Backtest {result.label}: total return "
                 f"{format_metric('total_return', m.get('total_return'))}, Sharpe "
                 f"{format_metric('sharpe', m.get('sharpe'))}, max drawdown "
                 f"{format_metric('max_drawdown', m.get('max_drawdown'))}, "
                 f"{len(result.trades)} round trips, final equity "
                 f"{format_metric('final_equity', m.get('final_equity'))}")
        opts = ", ".join(f"{k}={v}" for k, v in result.options.items() if v is not None)
        self.paragraph(
            f"{opts}; {len(result.equity)} candles "
            f"{format_cell('first', result.equity.index[0])} – "
            f"{format_cell('last', result.equity.index[-1])} UTC"
        )
        self.heading("Metrics", 3).metrics(result.summary())
        if result.candles is not None:
            self.figure(result.plot())
        self.figure(result.plot_equity())
        self.heading("Trades", 3).table(result.trades, last=max_trades)
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
                self.heading(title, 4).table(frame, first=max_rows)
        return self

    # -- output ----------------------------------------------------------------------
    def _summary_html(self) -> str:
        if not self._keys and len(self._sections) < 2:
            return ""
        items = "".join(f"<li>{html.escape(k)}</li>" for k in self._keys)
        toc = " · ".join(f"<a href='#{s}'>{html.escape(t)}</a>" for s, t in self._sections)
        parts = ["<section class='summary'>"]
        if items:
            parts.append(f"<ul>{items}</ul>")
        if toc:
            parts.append(f"<p class='muted'>Sections: {toc}. Times are UTC.</p>")
        parts.append("</section>")
        return "".join(parts)

    def _render(self, where: Path | None) -> list[str]:
        return [p if isinstance(p, str) else p(where) for p in self._parts]

    def body_html(self) -> str:
        """The sections without the page around them (for a notebook's rich display).

        plotly.js is inlined when there are figures.
        """
        js = plotlyjs_tags(None) if self._figures else ""
        return "\n".join([js, self._summary_html(), *self._render(None)]).strip()

    def to_html(self, *, plotlyjs: str | None = None, where: Path | None = None) -> str:
        """The whole page.

        Parameters
        ----------
        plotlyjs
            ``src`` of plotly.js (e.g. ``"plotly.min.js"``); ``None`` inlines it, so
            the page stands alone (~5 MB with figures).
        where
            Folder the page will be in (links are made relative to it).
        """
        head = plotlyjs_tags(plotlyjs) if self._figures else ""
        return "\n".join([
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style>{head}",
            "</head><body>", f"<h1>{html.escape(self.title)}</h1>", self._summary_html(),
            *self._render(where), "</body></html>",
        ])

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page to ``path`` (parents created) and return the path.

        With figures, ``plotly.min.js`` is written beside it once (pages in one folder
        share it), so the page opens offline and stays small.

        Raises
        ------
        ConfigError
            ``path`` cannot be written.
        """
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if self._figures:
                write_plotlyjs(p.parent)
            p.write_text(self.to_html(plotlyjs=PLOTLYJS if self._figures else None,
                                      where=p.parent), encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write the report to {p}: {e.strerror}") from e
        return p


def _href(value: str, root: Path | None, where: Path | None) -> str:
    target = Path(value)
    if not target.is_absolute():
        if root is None:
            return quote(target.as_posix())  # already relative to the page
        target = root / target
    if where is None:  # a page without a folder: absolute file URLs
        return Path(os.path.abspath(target)).as_uri()
    return quote(Path(os.path.relpath(os.path.abspath(target), os.path.abspath(where)))
                 .as_posix())


def _fold_constant(frame: pd.DataFrame, raw: set[str]) -> tuple[pd.DataFrame, str]:
    """``frame`` without its constant columns, and a line naming them with their value."""
    if len(frame) < 2:
        return frame, ""
    same, empty, drop = [], [], []
    for col in frame.columns:
        values = frame[col]
        if str(col) in LINK_COLUMNS:
            continue
        if values.isna().all():
            empty.append(str(col))
        else:
            try:
                if values.nunique(dropna=False) != 1:
                    continue
            except TypeError:  # unhashable cells (lists, dicts)
                continue
            same.append(f"{col} {format_cell(str(col), values.iloc[0], raw=raw)}")
        drop.append(col)
    parts = []
    if same:
        parts.append("in every row: " + ", ".join(same))
    if empty:
        parts.append("empty: " + ", ".join(empty))
    return frame.drop(columns=drop), "; ".join(parts)


def _table_html(frame: pd.DataFrame, caption: str, flags: list[bool] | None, raw: set[str],
                root: Path | None, where: Path | None) -> str:
    columns = [str(c) for c in frame.columns]
    text_cls = ["" if pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
                else " class='text'" for t in frame.dtypes]
    head = "".join(f"<th{cls}>{html.escape(c)}</th>"
                   for c, cls in zip(columns, text_cls, strict=True))
    rows = []
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        cells = []
        for c, v, cls in zip(columns, row, text_cls, strict=True):
            if c in LINK_COLUMNS and isinstance(v, str) and v:
                ref = html.escape(_href(v, root, where), quote=True)
                text = f"<a href='{ref}'>{html.escape(Path(v).name)}</a>"
            else:
                text = html.escape(format_cell(c, v, raw=raw))
            cells.append(f"<td{cls}>{text}</td>")
        row_cls = " class='failed'" if flags is not None and flags[i] else ""
        rows.append(f"<tr{row_cls}>{''.join(cells)}</tr>")
    cap = f"<p class='caption'>{html.escape(caption)}</p>" if caption else ""
    return (f"{cap}<div class='table-wrap'><table><thead><tr>{head}</tr></thead><tbody>"
            + "\n".join(rows) + "</tbody></table></div>")


def backtest_report(result: BacktestResult, path: str | Path) -> Path:
    """Write metrics, the strategy and equity figures and the trades to ``path``.

    ``plotly.min.js`` is written beside it (once per folder), so the page opens
    without a network connection.

    Raises
    ------
    ConfigError
        ``path`` cannot be written.
    """
    return Report(result.label).backtest(result).write(path)
