"""The HTML report: numbers by kind, empty cells, cut tables said so, links, one plotly.js."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tcp_lab.reports.assets import PLOTLYJS
from tcp_lab.reports.figures import strategy_figure
from tcp_lab.reports.formatting import format_cell, format_metric
from tcp_lab.reports.html import Report
from tcp_lab.testing import make_candles


@pytest.mark.parametrize(("name", "value", "text"), [
    ("total_return", 0.1234, "12.34%"),
    ("oos_total_return", -0.05, "-5.00%"),
    ("total_return (ohlc)", 0.5, "50.00%"),
    ("sharpe", 1.5, "1.500"),
    ("calmar", 1234.5, "1,234.500"),
    ("final_equity", 10287.514, "10,287.51"),
    ("n_trades", 1234, "1,234"),
    ("n_trades", 3.0, "3"),
    ("profit_factor", math.inf, "inf"),
    ("sharpe", math.nan, "n/a"),
    ("sharpe", np.float64(2.0), "2.000"),
    ("fast", 10, "10"),
])
def test_format_metric_by_kind(name, value, text):
    assert format_metric(name, value) == text


@pytest.mark.parametrize(("column", "value", "text"), [
    ("return", 0.0035237, "0.35%"),
    ("pnl", 35.2018, "35.20"),
    ("entry_price", 41287.9, "41,287.90"),
    ("price", 0.000012345, "1.2345e-05"),
    ("size", 0.24196, "0.24196"),
    ("candles", np.int64(1440), "1,440"),
    ("seconds", 19.897, "19.9"),
    ("error", None, ""),
    ("pnl", math.nan, ""),
    ("exit_time", pd.NaT, ""),
    ("ok", True, "yes"),
    ("exit_time", pd.Timestamp("2024-03-01 14:55", tz="UTC"), "2024-03-01 14:55"),
    ("whatever", 0.000123456789, "0.000123457"),
])
def test_format_cell(column, value, text):
    assert format_cell(column, value) == text


def test_raw_columns_are_shown_as_given():
    assert format_cell("fees", 2.5) == "2.50"  # money by name…
    assert format_cell("fees", 2.5, raw={"fees"}) == "2.5"  # …as given for a batch parameter


def _wide_frame(rows: int = 3, cols: int = 40) -> pd.DataFrame:
    df = pd.DataFrame({f"metric_{i}": np.linspace(0, 1e6, rows) for i in range(cols)})
    df["total_return"] = 0.1
    df["error"] = [None] * rows
    return df


def test_tables_scroll_in_their_box_with_formatted_numbers_and_empty_cells():
    page = Report("t").table(_wide_frame(), index=False).to_html()
    assert "<div class='table-wrap'><table>" in page
    assert ">10.00%<" in page and "None" not in page and "nan" not in page.lower()


def test_a_cut_table_says_so():
    fills = pd.DataFrame({"price": np.arange(34.0)})
    page = Report("t").table(fills, last=20).table(fills, first=5).to_html()
    assert "showing the last 20 of 34 rows" in page and "showing the first 5 of 34" in page
    assert page.count("<tr>") == 2 + 20 + 5
    assert "showing" not in Report("t").table(fills, last=50).to_html()


def test_paths_become_links_relative_to_the_page(tmp_path):
    batch = tmp_path / "home" / "batches" / "demo"
    df = pd.DataFrame({"run": ["run-000"], "notebook": ["run-000/02_backtest.ipynb"],
                       "html": ["run-000/02 backtest.html"]})
    df.attrs["root"] = str(batch)
    page = Report("t").table(df, index=False).write(tmp_path / "reports" / "r.html").read_text()
    assert "href='../home/batches/demo/run-000/02_backtest.ipynb'>02_backtest.ipynb</a>" in page
    assert "href='../home/batches/demo/run-000/02%20backtest.html'" in page


def test_key_lines_come_first_and_sections_are_listed():
    r = Report("demo").heading("Data").paragraph("x").heading("Batch").key("4 of 4 runs ok")
    page = r.to_html()
    assert page.index("4 of 4 runs ok") < page.index("<h2 id='data'>")
    assert "<a href='#batch'>Batch</a>" in page


def test_one_plotly_js_beside_the_page(tmp_path):
    fig = strategy_figure(make_candles(100), title="x")
    path = Report("t").figure(fig).figure(fig).write(tmp_path / "r.html")
    page = path.read_text()
    assert (tmp_path / PLOTLYJS).is_file()
    assert page.count(f"src='{PLOTLYJS}'") == 1 and len(page) < 200_000
    assert page.count('class="plotly-graph-div"') == 2
    inline = Report("t").figure(fig).to_html()  # a page with no folder stands alone
    assert "<script src=" not in inline and len(inline) > 1_000_000
    assert not list(tmp_path.glob(".*.tmp"))


def test_price_and_volume_axes_have_titles():
    fig = strategy_figure(make_candles(300))
    assert fig.layout.yaxis.title.text == "price"
    assert fig.layout.yaxis2.title.text == "volume"


def test_constant_columns_fold_into_one_line():
    df = pd.DataFrame({"run": ["run-000", "run-001"], "strategy": ["sma_cross"] * 2,
                       "fast": [5, 10], "fees": [0.001, 0.001], "error": [None, None],
                       "sharpe": [1.0, 2.0]})
    df.attrs["parameter_columns"] = ["strategy", "fast", "fees"]
    page = Report("t").table(df, index=False, fold_constant=True).to_html()
    assert "in every row: strategy sma_cross, fees 0.001; empty: error" in page
    head = page.split("<thead>")[1].split("</thead>")[0]
    assert "strategy" not in head and "error" not in head and "fast" in head
    one_row = Report("t").table(df.head(1), index=False, fold_constant=True).to_html()
    assert "in every row" not in one_row
