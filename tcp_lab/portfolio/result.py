"""What a portfolio backtest returns: equity, cash, exposure, per-symbol contribution, trades."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.metrics import compute_metrics, grid_slots
from tcp_lab.backtest.result import TRADE_COLUMNS, trades_frame
from tcp_lab.execution.account import REASONS
from tcp_lab.execution.portfolio import SKIP_REASONS
from tcp_lab.execution.simulate import ORDER_FIELDS, TRIP_FIELDS
from tcp_lab.timeframes import Timeframe

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from tcp_lab.strategies import BaseStrategy, StrategyOutput

__all__ = ["PortfolioResult", "PORTFOLIO_TRADE_COLUMNS"]

#: Columns of :attr:`PortfolioResult.trades`: ``symbol`` then a backtest's trade columns.
PORTFOLIO_TRADE_COLUMNS = ("symbol", *TRADE_COLUMNS)
_YEAR = pd.Timedelta(days=365)
_TRIP = {name: k for k, name in enumerate(TRIP_FIELDS)}


def _trades_frame(trips: np.ndarray, trip_sym: np.ndarray, index: pd.DatetimeIndex,
                  symbols: list[str]) -> pd.DataFrame:
    """Round trips -> trades frame with a ``symbol`` column (as ``BacktestResult.trades``),
    ordered by entry time, then symbol."""
    df = trades_frame(trips, index)
    df.insert(0, "symbol", pd.array(np.array(symbols, dtype=object)[trip_sym.astype(np.int64)],
                                    dtype="str") if len(trips) else pd.Series([], dtype="str"))
    if not len(trips):
        return df
    order = np.lexsort((trip_sym, trips[:, _TRIP["exit_idx"]], trips[:, _TRIP["entry_idx"]]))
    return df.iloc[order].reset_index(drop=True).rename_axis("trade")


class PortfolioResult:
    """One portfolio backtest: one account, several symbols, shared cash.

    Attributes
    ----------
    symbols
        The symbols, sorted by name (the column order of the frames below).
    equity, cash
        Portfolio value and cash at each close time of the union of the
        symbols' candles: cash plus each position at its symbol's last close
        (a short is worth minus its size times the close; its sale proceeds
        are in the cash).
    exposure
        Gross exposure at each close time: the sum of the positions' absolute
        values over the equity (long-only: the share of the equity in positions).
    value
        Position value per symbol at each close time (DataFrame; negative for a short).
    contribution
        P&L so far per symbol (its fills' cash flows plus its position value,
        after fees) at each close time; the columns sum to ``equity - init_cash``.
    trades
        Round trips with their ``symbol`` (:data:`PORTFOLIO_TRADE_COLUMNS`),
        by entry time then symbol; an open one is marked at its symbol's last close.
    orders
        Every fill: ``symbol``, ``time``, ``side`` (+1 buy, -1 sell), ``size``,
        ``price``, ``fees``, ``reason``.
    skipped
        Entry signals of flat symbols that opened nothing: ``time``, ``symbol``,
        ``reason`` (``"max_positions"``, ``"no_cash"``, ``"no_stop"``, ``"no_volatility"``).
    metrics
        The project's metrics of the portfolio equity
        (:func:`tcp_lab.backtest.metrics.compute_metrics` on the timeframe's grid)
        plus ``n_open_trades``, ``fees_paid``, ``final_equity``,
        ``skipped_entries``, ``ambiguous_bars``.
    options, timeframe, exchange, strategy_name, parameters
        How it ran.
    candles, outputs
        Each symbol's validated candles and strategy output.
    """

    def __init__(self, *, strategy_name: str, parameters: Mapping[str, Any],
                 options: Mapping[str, Any], timeframe: Timeframe, symbols: list[str],
                 equity: pd.Series, cash: pd.Series, value: pd.DataFrame,
                 contribution: pd.DataFrame, n_open: pd.Series, trades: pd.DataFrame,
                 orders: pd.DataFrame, skipped: pd.DataFrame, metrics: Mapping[str, Any],
                 candles: Mapping[str, pd.DataFrame] | None = None,
                 outputs: Mapping[str, StrategyOutput] | None = None,
                 exchange: str | None = None) -> None:
        self.strategy_name = strategy_name
        self.parameters = dict(parameters)
        self.options = dict(options)
        self.timeframe = timeframe
        self.symbols = list(symbols)
        self.equity = equity
        self.cash = cash
        self.value = value
        self.contribution = contribution
        self.n_open = n_open
        self.trades = trades
        self.orders = orders
        self.skipped = skipped
        self.metrics = dict(metrics)
        self.candles = dict(candles or {})
        self.outputs = dict(outputs or {})
        self.exchange = exchange
        #: The strategy object that ran.
        self.strategy: BaseStrategy | None = None

    @classmethod
    def from_simulation(cls, sim: tuple[Any, ...], *, strategy: BaseStrategy,
                        index: pd.DatetimeIndex, symbols: list[str],
                        candles: Mapping[str, pd.DataFrame],
                        outputs: Mapping[str, StrategyOutput], timeframe: Timeframe,
                        options: Mapping[str, Any], exchange: str | None = None,
                        ) -> PortfolioResult:
        """Build a result from :func:`~tcp_lab.execution.portfolio.run_portfolio_nb`'s output."""
        (equity, cash, value, pnl, n_open, orders, order_sym, trips, trip_sym, skipped,
         _states, ambiguous, _book, _acct, _order_trip) = sim
        init_cash = float(options["init_cash"])
        closed = trips[trips[:, _TRIP["closed"]] == 1.0]
        ts = index.as_unit("us").asi8
        metrics: dict[str, Any] = compute_metrics(
            np.concatenate(([init_cash], equity)),
            closed[:, _TRIP["pnl"]], closed[:, _TRIP["return"]], n_open > 0,
            timeframe.per_year, (index[-1] - index[0]) / _YEAR,
            slots=grid_slots(ts, timeframe.us),
            risk_free_rate=float(options.get("risk_free_rate", 0.0)))
        o = {name: orders[:, k] for k, name in enumerate(ORDER_FIELDS)}
        metrics.update(
            n_open_trades=int(len(trips) - len(closed)),
            fees_paid=float(o["fees"].sum()),
            final_equity=float(equity[-1]),
            skipped_entries=int(len(skipped)),
            ambiguous_bars=int(ambiguous),
        )
        names = np.array(symbols, dtype=object)
        cols = pd.Index(symbols, name="symbol")
        result = cls(
            strategy_name=strategy.name or type(strategy).__qualname__,
            parameters=dict(strategy.params), options=options, timeframe=timeframe,
            symbols=symbols,
            equity=pd.Series(equity, index=index, name="equity"),
            cash=pd.Series(cash, index=index, name="cash"),
            # the kernel's (T, S) arrays as they are: pandas 3 would copy them (2 x 80 MB
            # at 100 symbols x 100k candles)
            value=pd.DataFrame(value, index=index, columns=cols, copy=False),
            contribution=pd.DataFrame(pnl, index=index, columns=cols, copy=False),
            n_open=pd.Series(n_open, index=index, name="n_open"),
            trades=_trades_frame(trips, trip_sym, index, symbols),
            orders=pd.DataFrame({
                "symbol": pd.array(names[order_sym], dtype="str"),
                "time": index[o["idx"].astype(np.int64)],
                "side": o["side"], "size": o["size"], "price": o["price"], "fees": o["fees"],
                "reason": pd.array(np.array(REASONS, dtype=object)[o["reason"].astype(np.int64)],
                                   dtype="str"),
            }),
            skipped=pd.DataFrame({
                "time": index[skipped[:, 0].astype(np.int64)],
                "symbol": pd.array(names[skipped[:, 1].astype(np.int64)], dtype="str"),
                "reason": pd.array(np.array(SKIP_REASONS, dtype=object)[
                    skipped[:, 2].astype(np.int64)], dtype="str"),
            }),
            metrics=metrics, candles=candles, outputs=outputs, exchange=exchange)
        result.strategy = strategy
        return result

    # -- derived series ---------------------------------------------------------------
    @cached_property
    def exposure(self) -> pd.Series:
        """Gross exposure at each close time: sum of the positions' absolute values / equity."""
        return (self.value.abs().sum(axis=1) / self.equity).rename("exposure")

    @cached_property
    def drawdown(self) -> pd.Series:
        """Fractional drawdown of the equity from its running peak (<= 0)."""
        peak = np.maximum(self.equity.cummax(), float(self.options["init_cash"]))
        return (self.equity / peak - 1.0).rename("drawdown")

    @cached_property
    def correlation(self) -> pd.DataFrame:
        """Correlation of the symbols' strategy returns (changes of their P&L per close time;
        NaN for a symbol that never traded)."""
        return self.contribution.diff().iloc[1:].corr()

    @cached_property
    def by_symbol(self) -> pd.DataFrame:
        """Per symbol: ``pnl`` (contribution at the end), ``n_trades`` (closed),
        ``win_rate``, ``fees`` and ``skipped_entries``."""
        t = self.trades
        closed = t[t["status"] == "closed"]
        g = closed.groupby("symbol")
        out = pd.DataFrame(index=pd.Index(self.symbols, name="symbol"))
        out["pnl"] = self.contribution.iloc[-1]
        out["n_trades"] = g.size().reindex(out.index, fill_value=0).astype(int)
        out["win_rate"] = (g["pnl"].apply(lambda p: float((p > 0).mean()))
                           .reindex(out.index).astype(float))
        out["fees"] = self.orders.groupby("symbol")["fees"].sum().reindex(
            out.index, fill_value=0.0).astype(float)
        out["skipped_entries"] = self.skipped.groupby("symbol").size().reindex(
            out.index, fill_value=0).astype(int)
        return out

    # -- views ------------------------------------------------------------------------
    def summary(self) -> pd.Series:
        """Setup and metrics as one Series (like ``BacktestResult.summary``)."""
        head = {"strategy": self.strategy_name, "symbols": ", ".join(self.symbols),
                "timeframe": self.timeframe.name, "sizing": self.options.get("sizing"),
                "max_positions": self.options.get("max_positions")}
        return pd.Series(head | self.metrics, dtype=object, name="portfolio")

    def plot(self, *, max_points: int = 5000) -> go.Figure:
        """Equity, drawdown and each symbol's contribution (plotly), thinned to ``max_points``."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        step = max(1, -(-len(self.equity) // max_points))
        eq, dd = self.equity.iloc[::step], self.drawdown.iloc[::step]
        contrib = self.contribution.iloc[::step]
        x = eq.index.tz_localize(None)  # plotly is quicker on naive UTC
        fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                            row_heights=[0.45, 0.2, 0.35],
                            subplot_titles=("Equity", "Drawdown", "Contribution by symbol"))
        fig.add_trace(go.Scatter(x=x, y=eq.to_numpy(), name="equity"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=dd.to_numpy(), name="drawdown", fill="tozeroy"),
                      row=2, col=1)
        for s in self.symbols:
            fig.add_trace(go.Scatter(x=x, y=contrib[s].to_numpy(), name=s), row=3, col=1)
        fig.update_layout(height=750, title=f"{self.strategy_name} portfolio "
                          f"({len(self.symbols)} symbols, {self.timeframe.name})")
        return fig

    def __repr__(self) -> str:
        m = self.metrics
        return (f"PortfolioResult({self.strategy_name}, {len(self.symbols)} symbols, "
                f"{self.timeframe.name}, total_return={m['total_return']:.4f}, "
                f"n_trades={m['n_trades']})")
