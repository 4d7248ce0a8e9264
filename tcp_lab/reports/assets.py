"""One local copy of plotly.js per report or batch folder, shared by every page in it.

A page that draws plotly figures loads ``plotly.min.js`` from beside itself (or from a
parent folder) through a relative ``src``: it opens offline, and ten pages or figures
cost one copy of plotly.js (~5 MB) instead of ten.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["PLOTLYJS", "write_plotlyjs", "plotlyjs_tags", "relative_src"]

#: File name of the local plotly.js copy.
PLOTLYJS = "plotly.min.js"
# What plotly's own include_plotlyjs=True writes first: MathJax (if the page has it) stays local.
_CONFIG = "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"


def write_plotlyjs(folder: str | os.PathLike[str]) -> Path:
    """Write the installed plotly's ``plotly.min.js`` into ``folder`` unless it is there already.

    Safe when several runs of a batch call it at once (written to a temporary name, then
    renamed); a copy of another plotly version is replaced.

    Returns
    -------
    Path
        The file.
    """
    from plotly.offline import get_plotlyjs

    target = Path(folder) / PLOTLYJS
    js = get_plotlyjs().encode("utf-8")
    try:
        same = target.stat().st_size == len(js) and target.read_bytes()[:200] == js[:200]
    except OSError:
        same = False
    if not same:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{PLOTLYJS}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(js)
        tmp.replace(target)
    return target


def relative_src(script: Path, page: Path) -> str:
    """The ``src`` of ``script`` as seen from the HTML file ``page`` (POSIX separators)."""
    return Path(os.path.relpath(script.resolve(), page.resolve().parent)).as_posix()


def plotlyjs_tags(src: str | None) -> str:
    """``<script>`` tags that define ``Plotly``: from ``src``, or inlined when ``src`` is None."""
    if src is None:
        from plotly.offline import get_plotlyjs

        return f"{_CONFIG}<script>{get_plotlyjs()}</script>"
    from html import escape

    return f"{_CONFIG}<script src='{escape(src, quote=True)}'></script>"
