"""HTML exports of executed notebooks that open offline and stay small.

Notebooks store their plotly figures as plotly JSON (``renderer = "plotly_mimetype"``:
JupyterLab, VS Code and Voila draw it; no plotly.js in the ``.ipynb``). nbconvert cannot
draw that JSON, so :func:`export_notebook_html` turns each figure into a ``<div>`` drawn by
one local ``plotly.min.js`` (written once per folder, loaded with a relative ``src``), and
replaces ipywidgets (they need a live kernel) with a note.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from tcp_lab.reports.assets import plotlyjs_tags, relative_src, write_plotlyjs

__all__ = ["export_notebook_html"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = ("<p style='color:#666'><em>An interactive panel (ipywidgets): it works in "
                "a running notebook (JupyterLab, Voila), not in this export.</em></p>")


def _figure_html(fig: dict[str, Any]) -> str:
    import plotly.io as pio

    return pio.to_html(fig, config=fig.get("config"), include_plotlyjs=False,
                       full_html=False, validate=False, default_height=525)


def _convert_outputs(nb: Any) -> int:
    """Plotly JSON outputs become HTML, widget views a note; returns the number of figures."""
    figures = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                data["text/html"] = _figure_html(dict(data.pop(PLOTLY_MIME)))
                figures += 1
            if WIDGET_MIME in data:
                data.pop(WIDGET_MIME)
                data["text/html"] = _WIDGET_NOTE
    return figures


def export_notebook_html(
    notebook: str | os.PathLike[str],
    target: str | os.PathLike[str] | None = None,
    *,
    assets_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Export an executed notebook to HTML whose plotly figures work offline.

    Parameters
    ----------
    notebook
        The executed ``.ipynb``.
    target
        The HTML file (default: the notebook's path with ``.html``).
    assets_dir
        Folder of the shared ``plotly.min.js`` (default: the target's folder), e.g.
        a batch folder whose runs' pages all load ``../plotly.min.js``.

    Returns
    -------
    Path
        The HTML file.

    Examples
    --------
    >>> export_notebook_html("batch/run-000/02_backtest.ipynb",
    ...                      assets_dir="batch")              # doctest: +SKIP
    PosixPath('batch/run-000/02_backtest.html')
    """
    import nbformat
    from nbconvert import HTMLExporter

    src = Path(notebook)
    page = Path(target) if target is not None else src.with_suffix(".html")
    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("widgets", None)  # state of widgets we do not draw
    figures = _convert_outputs(nb)
    with warnings.catch_warnings():
        # nbconvert warns once per output of a mimetype it cannot draw (e.g. vega)
        warnings.filterwarnings("ignore", message="Your element with mimetype",
                                category=UserWarning)
        body, _ = HTMLExporter().from_notebook_node(nb)
    if figures:
        js = write_plotlyjs(assets_dir if assets_dir is not None else page.parent)
        # in <head>, before nbconvert's require.js: plotly.js then defines window.Plotly
        # (loaded after require.js, it would register as an anonymous AMD module instead)
        tags = plotlyjs_tags(relative_src(js, page))
        at = [i for i in (body.find("<script"), body.find("</head>")) if i >= 0]
        pos = min(at) if at else 0
        body = body[:pos] + tags + "\n" + body[pos:]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(body, encoding="utf-8")
    return page
