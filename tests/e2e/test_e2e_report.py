"""Reports in the browser: a wide table does not widen the page at 1366 px; figures draw offline."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from tcp_lab.reports.figures import strategy_figure
from tcp_lab.reports.html import Report
from tcp_lab.reports.notebook_html import PLOTLY_MIME, export_notebook_html
from tcp_lab.testing import make_candles

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LAPTOP = {"width": 1366, "height": 768}
DRAWN = "() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no request lines on stderr
        pass


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (the page may fetch only from there)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_report_with_a_wide_table_fits_a_laptop_screen(browser_page, tmp_path):
    page, log = browser_page
    wide = pd.DataFrame({f"parameter_or_metric_{i}": np.linspace(0, 1e6, 5) for i in range(60)})
    report = (Report("wide").key("the key outcome")
              .heading("Table").table(wide, index=False)
              .heading("Chart").figure(strategy_figure(make_candles(300), title="chart")))
    report.write(tmp_path / "site" / "report.html")
    with _serve(tmp_path / "site") as url:
        page.set_viewport_size(LAPTOP)
        page.goto(url + "report.html")
        page.wait_for_function(DRAWN.format(n=1))
        page_width, view = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]")
        box, box_view = page.evaluate("() => { const b = document.querySelector('.table-wrap');"
                                      " return [b.scrollWidth, b.clientWidth]; }")
    assert page_width <= view, f"the page scrolls sideways: {page_width} px in {view} px"
    assert box > box_view  # the table scrolls inside its own box instead
    assert not log.errors and not log.blocked, str(log)


def test_an_exported_notebook_draws_its_figures_offline(browser_page, tmp_path):
    page, log = browser_page
    fig = strategy_figure(make_candles(200), title="from the notebook")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("result.plot()")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={PLOTLY_MIME: json.loads(fig.to_json()), "text/plain": "Figure"})]
    nb.cells = [cell]
    site = tmp_path / "batch"
    (site / "run-000").mkdir(parents=True)
    nbformat.write(nb, site / "run-000" / "nb.ipynb")
    export_notebook_html(site / "run-000" / "nb.ipynb", assets_dir=site)
    with _serve(site) as url:
        page.goto(url + "run-000/nb.html")
        page.wait_for_function(DRAWN.format(n=1))
    # nbconvert's page asks CDNs for require.js and MathJax; offline they fail, harmlessly
    assert not log.errors, str(log)
    assert all("plotly" not in u for u in log.blocked), str(log)
