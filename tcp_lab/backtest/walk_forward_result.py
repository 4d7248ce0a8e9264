"""What a walk-forward returns: the folds, the stitched out-of-sample account, its figures."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.metrics import METRIC_NAMES, compute_metrics, grid_slots
from tcp_lab.backtest.param_sweep import LOWER_IS_BETTER
from tcp_lab.timeframes import Timeframe, parse_timeframe

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = ["WalkForwardResult", "efficiency_ratio", "fold_table", "label_trades",
           "efficiency_series"]

_MAX_TRADE_ROWS = 500
_YEAR_US = 365 * 86400 * 1_000_000


def efficiency_ratio(oos: float, in_sample: float, metric: str = "sharpe") -> float:
    """How much of the in-sample ``metric`` held up out of sample; 1 = all of it.

    * in-sample > 0: ``oos / in_sample`` (0.5: half of it);
    * in-sample < 0: ``2 - oos / in_sample``, the same ratio continued so that
      it still rises with the out-of-sample value and equals 1 when both are
      equal (in-sample -1, out-of-sample -0.5 gives 1.5: better than the
      train window; -2 gives 0);
    * ``max_drawdown`` (smaller is better): ``in_sample / oos``;
    * NaN when either value is not finite or the denominator is 0.

    Examples
    --------
    >>> efficiency_ratio(1.0, 2.0), efficiency_ratio(-0.5, -1.0), efficiency_ratio(0.2, 0.1,
    ...                                                                            "max_drawdown")
    (0.5, 1.5, 0.5)
    """
    oos, ins = float(oos), float(in_sample)
    if not (math.isfinite(oos) and math.isfinite(ins)):
        return math.nan
    if metric in LOWER_IS_BETTER:
        return ins / oos if oos != 0 else math.nan
    if ins > 0:
        return oos / ins
    if ins < 0:
        return 2.0 - oos / ins
    return math.nan


# -- the pieces every walk-forward assembles (one symbol or a portfolio) ---------------------
def fold_table(windows: Sequence[tuple[int, int, int, int]], selections: Sequence[Any],
               swept: Sequence[str], metric: str, index: pd.DatetimeIndex, equity: np.ndarray,
               in_market: np.ndarray, trade_pnl: np.ndarray, trade_return: np.ndarray,
               trade_exit: np.ndarray, init_cash: float, tf: Timeframe,
               risk_free_rate: float = 0.0) -> pd.DataFrame:
    """The folds table of :class:`WalkForwardResult` (one row per fold, index from 1).

    Parameters
    ----------
    windows
        :func:`~tcp_lab.backtest.walk_forward_folds.fold_windows` over ``index``.
    selections
        Per fold, the train window's choice
        (:class:`~tcp_lab.backtest.walk_forward_analysis.Selection`).
    swept, metric
        The swept parameter names; the selection metric.
    index
        Close times the window positions refer to.
    equity, in_market
        The stitched account at each test candle (the windows' candles in order).
    trade_pnl, trade_return, trade_exit
        The **closed** round trips: P&L, return and exit position in ``index``.
    init_cash, tf, risk_free_rate
        The account's starting cash, the timeframe, the annual risk-free rate.

    Returns
    -------
    DataFrame
        Columns as documented on :attr:`WalkForwardResult.folds`; each fold's
        ``oos_<metric>`` is its slice of the one account, from the equity it
        started with.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles  # doctest: +SKIP
    >>> fold_table(windows, selections, ["fast"], "sharpe", candles.index, equity,
    ...            position != 0, pnl, ret, exit_idx, 10_000.0, tf)  # doctest: +SKIP
    """
    ts = index.as_unit("us").asi8
    table, at = [], 0
    for k, ((ta, tb, sa, sb), sel) in enumerate(zip(windows, selections, strict=True)):
        m = sb - sa
        start_equity = init_cash if k == 0 else equity[at - 1]
        in_window = (trade_exit >= sa) & (trade_exit < sb)
        oos = compute_metrics(np.concatenate(([start_equity], equity[at:at + m])),
                              trade_pnl[in_window], trade_return[in_window],
                              in_market[at:at + m], tf.per_year,
                              (ts[sb - 1] - ts[sa]) / _YEAR_US,
                              slots=grid_slots(ts[sa:sb], tf.us), risk_free_rate=risk_free_rate)
        at += m
        table.append({
            "fold": k + 1, "train_start": index[ta], "train_end": index[tb - 1],
            "test_start": index[sa], "test_end": index[sb - 1],
            "n_train": tb - ta, "n_test": m,
            **{p: sel.params.get(p) for p in swept},
            f"is_{metric}": sel.in_sample, f"oos_{metric}": oos[metric],
            "efficiency": efficiency_ratio(oos[metric], sel.in_sample, metric),
            "oos_n_trades": oos["n_trades"], "n_combos": sel.n_combos,
            "n_too_few_trades": sel.n_too_few_trades, "n_not_finite": sel.n_not_finite,
            "note": sel.note,
        })
    folds = pd.DataFrame(table).set_index("fold")
    for p in swept:
        folds[p] = folds[p].convert_dtypes()
    return folds


def label_trades(trades: pd.DataFrame, entry_idx: np.ndarray,
                 windows: Sequence[tuple[int, int, int, int]], folds: pd.DataFrame,
                 swept: Sequence[str], at_open: bool) -> pd.DataFrame:
    """``trades`` with the ``fold`` whose signal made each entry and that fold's parameters
    in front (``entry_idx``: entry positions; with ``at_open`` the signal is the bar before).

    Examples
    --------
    >>> t = pd.DataFrame({"pnl": [1.0, 2.0]})
    >>> f = pd.DataFrame({"fast": [5, 10]}, index=pd.Index([1, 2], name="fold"))
    >>> label_trades(t, np.array([3, 7]), [(0, 3, 3, 6), (3, 6, 6, 9)], f, ["fast"], False)
       fold  fast  pnl
    0     1     5  1.0
    1     2    10  2.0
    """
    decided = np.asarray(entry_idx) - (1 if at_open else 0)
    fold_of = np.searchsorted([c for _, _, c, _ in windows], decided, side="right")
    trades.insert(0, "fold", fold_of.astype(np.int64))
    for i, p in enumerate(swept):
        trades.insert(1 + i, p, folds[p].reindex(trades["fold"]).to_numpy())
    return trades


def efficiency_series(folds: pd.DataFrame, metric: str) -> pd.Series:
    """Per fold and ``"overall"``: :func:`efficiency_ratio` of the out-of-sample over the
    in-sample metric; overall, of their means over the folds that traded.

    Examples
    --------
    >>> f = pd.DataFrame({"is_sharpe": [2.0, 1.0], "oos_sharpe": [1.0, 1.0],
    ...                   "efficiency": [0.5, 1.0], "note": ["", ""]}, index=[1, 2])
    >>> efficiency_series(f, "sharpe")["overall"]
    np.float64(0.6666666666666666)
    """
    traded = folds[folds["note"] == ""]
    overall = efficiency_ratio(float(traded[f"oos_{metric}"].mean()),
                               float(traded[f"is_{metric}"].mean()), metric) \
        if len(traded) else float("nan")
    return pd.Series([*folds["efficiency"], overall],
                     index=pd.Index([*folds.index, "overall"], dtype=object),
                     name=f"efficiency ({metric})")


class WalkForwardResult:
    """A walk-forward: per-fold choices and the out-of-sample account they traded.

    Attributes
    ----------
    folds
        One row per fold (index ``fold``, from 1): ``train_start``,
        ``train_end``, ``test_start``, ``test_end`` (close times of the first
        and last candle of each window), ``n_train``, ``n_test`` (candles),
        the chosen value of each swept parameter, ``is_<metric>`` (the choice's
        metric on its train window, an account of its own), ``oos_<metric>``
        (the test window's slice of the stitched account, from the equity it
        started with), ``efficiency``, ``oos_n_trades`` (round trips closed in
        the window), ``n_combos``, ``n_too_few_trades`` (rejected by
        ``min_trades``), ``n_not_finite`` (enough trades, metric NaN or
        infinite) and ``note`` (why a fold is flat; empty when it traded).
    equity, position
        The stitched out-of-sample account at each test candle's close.
    trades
        Its round trips (columns of :attr:`BacktestResult.trades`), with the
        ``fold`` whose signal made the entry (a trip may close in a later fold)
        and that fold's parameters.
    metrics
        :func:`~tcp_lab.backtest.metrics.compute_metrics` of the stitched
        curve, plus ``n_open_trades``, ``fees_paid``, ``final_equity``,
        ``buy_and_hold_return`` (over the test span), ``ambiguous_bars``,
        ``n_folds`` and ``n_flat_folds``.
    efficiency
        Per fold (index 1..k) and ``"overall"``:
        :func:`efficiency_ratio` of the out-of-sample over the in-sample
        metric; overall, of their means over the folds that traded.
    parameters
        The swept parameter names.
    options, timeframe, metric, strategy_name
        What was run.
    settings
        ``train``, ``test``, ``step``, ``anchored``, ``min_trades``,
        ``warmup`` (candles before each train window that feed its
        indicators), ``scheduler`` (Dask address or None), ``sweep_s`` (time in
        the train sweeps) and ``elapsed_s`` (all of it).
    """

    def __init__(self, *, strategy_name: str, metric: str, options: Mapping[str, Any],
                 timeframe: Timeframe | str, parameters: Sequence[str], folds: pd.DataFrame,
                 equity: pd.Series, position: pd.Series, trades: pd.DataFrame,
                 metrics: Mapping[str, Any], efficiency: pd.Series,
                 settings: Mapping[str, Any]) -> None:
        self.strategy_name = strategy_name
        self.metric = metric
        self.options = dict(options)
        self.timeframe = parse_timeframe(timeframe)
        self.parameters = list(parameters)
        self.folds = folds
        self.equity = equity
        self.position = position
        self.trades = trades
        self.metrics = dict(metrics)
        self.efficiency = efficiency
        self.settings = dict(settings)

    # -- presentation -----------------------------------------------------------------
    @property
    def label(self) -> str:
        """``walk-forward sma_cross (fast, slow) by sharpe: 10 folds, train=90D test=30D``."""
        s = self.settings
        kind = "anchored" if s.get("anchored") else "rolling"
        return (f"walk-forward {self.strategy_name} ({', '.join(self.parameters)}) by "
                f"{self.metric}: {len(self.folds)} {kind} folds, train={s.get('train')} "
                f"test={s.get('test')} step={s.get('step')}")

    def summary(self) -> pd.Series:
        """Metrics of the stitched curve in display order, with the overall efficiency."""
        keys = [*METRIC_NAMES, *[k for k in self.metrics if k not in METRIC_NAMES]]
        data = {k: self.metrics[k] for k in keys if k in self.metrics}
        data[f"efficiency ({self.metric})"] = float(self.efficiency.get("overall", math.nan))
        return pd.Series(data, name=self.label, dtype=object)

    def _hover(self) -> np.ndarray:
        """Per fold: ``fold 3: fast=10, slow=40`` (or why it is flat)."""
        out = []
        for k, row in self.folds.iterrows():
            if row["note"]:
                out.append(f"fold {k}: flat")
            else:
                out.append(f"fold {k}: " + ", ".join(f"{p}={row[p]}" for p in self.parameters))
        return np.array(out, dtype=object)

    def plot(self, *, max_points: int = 5000) -> go.Figure:
        """Stitched equity with the test windows shaded (hover: the fold's parameters) over
        the in-sample and out-of-sample metric of each fold (plotly)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from tcp_lab.reports.figures import _buckets, _x

        eq = self.equity
        ends = np.arange(len(eq))
        starts = _buckets(len(eq), max_points)
        if starts is not None:
            ends = np.append(starts[1:], len(eq)) - 1
        hover = self._hover()
        bounds = self.folds["test_start"].to_numpy()
        fold_at = np.searchsorted(bounds, eq.index[ends].to_numpy(), side="right") - 1
        x = _x(eq.index[ends])
        fig = make_subplots(rows=2, cols=1, vertical_spacing=0.12, row_heights=[0.68, 0.32],
                            subplot_titles=("out-of-sample equity (one account)",
                                            f"{self.metric} per fold"))
        kind = go.Scattergl if len(x) > 2000 else go.Scatter
        fig.add_trace(kind(x=x, y=eq.to_numpy()[ends], mode="lines", name="equity",
                           customdata=hover[fold_at],
                           hovertemplate="%{x}<br>equity %{y:,.2f}<br>%{customdata}"
                                         "<extra></extra>"), row=1, col=1)
        for i, (k, row) in enumerate(self.folds.iterrows()):
            flat = bool(row["note"])
            fig.add_vrect(x0=_x(pd.DatetimeIndex([row["test_start"]]))[0],
                          x1=_x(pd.DatetimeIndex([row["test_end"]]))[0],
                          fillcolor="#d62728" if flat else ("#1f77b4" if i % 2 else "#9aa5b1"),
                          opacity=0.12, line_width=0, layer="below", row=1, col=1,
                          annotation_text=str(k), annotation_position="top left")
        folds = [str(k) for k in self.folds.index]
        for label, col, color in (("in-sample", f"is_{self.metric}", "#9aa5b1"),
                                  ("out-of-sample", f"oos_{self.metric}", "#1f77b4")):
            fig.add_trace(go.Bar(x=folds, y=self.folds[col].to_numpy(dtype=float), name=label,
                                 marker_color=color, customdata=hover,
                                 hovertemplate="%{customdata}<br>" + label
                                               + " %{y:.3f}<extra></extra>"), row=2, col=1)
        fig.update_xaxes(title_text="UTC", row=1, col=1)
        fig.update_xaxes(title_text="fold", type="category", row=2, col=1)
        fig.update_yaxes(title_text="equity", row=1, col=1)
        fig.update_yaxes(title_text=self.metric, row=2, col=1)
        fig.update_layout(title=self.label, height=700, barmode="group",
                          legend={"orientation": "h"})
        return fig

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (metrics, folds, figure, trades); return its path.

        Raises
        ------
        ConfigError
            ``path`` cannot be written.
        """
        from tcp_lab.reports.html import Report

        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        eq = self.equity
        report = Report(self.label).paragraph(
            f"{opts}; {len(eq)} out-of-sample candles {eq.index[0]} – {eq.index[-1]}, traded as "
            "one account (cash and positions carry from one test window to the next)")
        report.heading("Metrics", 3).metrics(self.summary())
        report.heading("Folds", 3).table(self.folds)
        report.figure(self.plot())
        trades, cap = self.trades, _MAX_TRADE_ROWS
        more = f" (last {cap} of {len(trades)})" if len(trades) > cap else ""
        report.heading(f"Trades{more}", 3).table(trades.tail(cap))
        return report.write(path)

    def __repr__(self) -> str:
        m = self.metrics
        return (f"<{type(self).__name__} {self.label}: total_return="
                f"{m.get('total_return', np.nan):.2%} sharpe={m.get('sharpe', np.nan):.2f} "
                f"efficiency={float(self.efficiency.get('overall', np.nan)):.2f} "
                f"trades={m.get('n_trades')}>")
