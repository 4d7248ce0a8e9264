"""What the intrabar assumption is worth: one run resolved on candles and on trades, side by side.

On candles, a bar that reaches both the stop and the target is ambiguous and
the stop is assumed first; on market trades nothing is ambiguous. The
:class:`IntrabarReport` of :meth:`BacktestResult.intrabar_report` runs the
same strategy output with the same options both ways and lists the
difference: ambiguous bars, round trips whose exit changed, candles where the
two rules filled differently, and the difference in total return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tcp_lab.execution import REASONS
from tcp_lab.execution.simulate import ORDER_FIELDS

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.backtest.result import BacktestResult

__all__ = ["IntrabarReport", "compare_intrabar"]

_EXIT_COLUMNS = ("exit_time", "exit_price", "exit_reason", "pnl")


@dataclass(frozen=True)
class IntrabarReport:
    """The same run resolved on candles (OHLC rule) and on market trades.

    Attributes
    ----------
    ohlc, trades
        The two :class:`~tcp_lab.backtest.result.BacktestResult` runs.
    ambiguous_bars
        Bars the OHLC rule found ambiguous (stop assumed first).
    changed
        Round trips (matched by entry time) whose exit differs: time, price,
        reason and P&L under each rule.
    disagreements
        Candles where the two rules filled a stop or target differently
        (``ohlc``/``trades``: what each filled there, empty for nothing).
    """

    ohlc: BacktestResult
    trades: BacktestResult
    ambiguous_bars: int
    changed: pd.DataFrame
    disagreements: pd.DataFrame

    @property
    def return_difference(self) -> float:
        """Total return on trades minus total return on candles."""
        return self.trades.metrics["total_return"] - self.ohlc.metrics["total_return"]

    def summary(self) -> pd.Series:
        """One line per figure: both total returns, their difference, the counts."""
        return pd.Series({
            "total_return (ohlc)": self.ohlc.metrics["total_return"],
            "total_return (trades)": self.trades.metrics["total_return"],
            "total_return difference": self.return_difference,
            "ambiguous_bars (ohlc)": self.ambiguous_bars,
            "round trips whose exit changed": len(self.changed),
            "candles where the rules disagree": len(self.disagreements),
        }, name="intrabar", dtype=object)

    def _repr_html_(self) -> str:
        from tcp_lab.reports.html import Report

        return Report("intrabar").intrabar(self).body_html()

    def __repr__(self) -> str:
        return (f"<IntrabarReport: total return {self.ohlc.metrics['total_return']:.2%} "
                f"(ohlc) vs {self.trades.metrics['total_return']:.2%} (trades), "
                f"{self.ambiguous_bars} ambiguous bar(s), {len(self.changed)} exit(s) changed>")


def _level_fills(result: BacktestResult) -> pd.Series:
    """Stop and target fills per candle, as text (``sell 101.5 stop_loss``)."""
    o = dict(zip(ORDER_FIELDS, result.orders.T, strict=True))
    keep = o["reason"] != REASONS.index("signal")
    keep &= o["reason"] != REASONS.index("reversal")
    idx = o["idx"][keep].astype(np.int64)
    text = [f"{'buy' if side > 0 else 'sell'} {price:.10g} {REASONS[int(reason)]}"
            for side, price, reason in zip(o["side"][keep], o["price"][keep], o["reason"][keep],
                                           strict=True)]
    return pd.Series(text, index=result.candles.index[idx], dtype="str")


def compare_intrabar(ohlc: BacktestResult, trades: BacktestResult) -> IntrabarReport:
    """Compare two runs of one strategy output that differ only in their resolution."""
    a = ohlc.trades.set_index("entry_time")
    b = trades.trades.set_index("entry_time")
    both = a.index.intersection(b.index)
    left, right = a.loc[both, list(_EXIT_COLUMNS)], b.loc[both, list(_EXIT_COLUMNS)]
    same = ((left["exit_time"] == right["exit_time"]) | (left["exit_time"].isna()
                                                         & right["exit_time"].isna()))
    same &= np.isclose(left["exit_price"], right["exit_price"], rtol=1e-12, equal_nan=True)
    same &= (left["exit_reason"] == right["exit_reason"]).fillna(False) | (
        left["exit_reason"].isna() & right["exit_reason"].isna())
    changed = left[~same].join(right[~same], suffixes=("_ohlc", "_trades"))
    only = a.index.symmetric_difference(b.index)
    if len(only):  # a round trip that exists under one rule only (re-entries moved)
        extra = pd.concat([a.loc[a.index.isin(only), list(_EXIT_COLUMNS)].add_suffix("_ohlc"),
                           b.loc[b.index.isin(only), list(_EXIT_COLUMNS)].add_suffix("_trades")])
        changed = pd.concat([changed, extra]).sort_index()
    fa, fb = _level_fills(ohlc), _level_fills(trades)
    disagree = pd.concat([fa.rename("ohlc"), fb.rename("trades")], axis=1, sort=True).fillna("")
    disagree = disagree[disagree["ohlc"] != disagree["trades"]].sort_index()
    return IntrabarReport(ohlc=ohlc, trades=trades,
                          ambiguous_bars=int(ohlc.metrics["ambiguous_bars"]),
                          changed=changed.rename_axis("entry_time"),
                          disagreements=disagree.rename_axis("ts"))
