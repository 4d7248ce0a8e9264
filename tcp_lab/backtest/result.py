"""What a backtest returns: metrics, trades, equity, signals, figures."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.metrics import METRIC_NAMES, compute_metrics, grid_slots
from tcp_lab.backtest.run_metrics import RUN_METRIC_NAMES, run_metrics
from tcp_lab.errors import DataError
from tcp_lab.execution.account import REASONS, STATE_FIELDS
from tcp_lab.execution.simulate import ORDER_FIELDS, TRIP_FIELDS
from tcp_lab.strategies import StrategyOutput
from tcp_lab.timeframes import Timeframe, parse_timeframe

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from tcp_lab.strategies import BaseStrategy

__all__ = ["BacktestResult", "TRADE_COLUMNS", "empty_trades"]

#: Columns of :attr:`BacktestResult.trades` (one round trip: an entry with its exit).
TRADE_COLUMNS = (
    "entry_time", "exit_time", "entry_price", "exit_price", "size", "entry_fees",
    "exit_fees", "fees", "pnl", "return", "direction", "status", "exit_reason",
)
_YEAR = pd.Timedelta(days=365)
_STR_COLUMNS = ("direction", "status", "exit_reason")


def empty_trades() -> pd.DataFrame:
    """A trades frame with no rows and the right dtypes."""
    ts = pd.Series([], dtype="datetime64[us, UTC]")
    f = pd.Series([], dtype="float64")
    return pd.DataFrame(
        {c: ts if c.endswith("_time") else f for c in TRADE_COLUMNS[:10]}
        | {c: pd.Series([], dtype="str") for c in _STR_COLUMNS}
    ).rename_axis("trade")


def trades_frame(trips: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The engine's round trips -> our trades frame (open trips: no exit time/price/reason)."""
    if len(trips) == 0:
        return empty_trades()
    f = dict(zip(TRIP_FIELDS, trips.T, strict=True))
    is_open = f["closed"] == 0
    reasons = np.array(REASONS + ("",), dtype=object)[np.where(is_open, -1,
                                                               f["reason"].astype(np.int64))]
    df = pd.DataFrame(
        {
            "entry_time": index[f["entry_idx"].astype(np.int64)],
            "exit_time": index[f["exit_idx"].astype(np.int64)].where(~is_open),
            "entry_price": f["entry_price"],
            "exit_price": np.where(is_open, np.nan, f["exit_price"]),
            "size": f["size"],
            "entry_fees": f["entry_fees"],
            "exit_fees": f["exit_fees"],
            "fees": f["entry_fees"] + f["exit_fees"],
            "pnl": f["pnl"],
            "return": f["return"],
            "direction": np.where(f["is_long"] == 1.0, "long", "short"),
            "status": np.where(is_open, "open", "closed"),
            "exit_reason": pd.array(np.where(is_open, None, reasons), dtype="str"),
        }
    )
    return df.rename_axis("trade")


class BacktestResult:
    """One backtest: its metrics, trades, equity curve, signals and figures.

    Attributes
    ----------
    strategy_name, parameters
        Registry name and parameter values of the strategy.
    options
        ``fees``, ``slippage``, ``init_cash``, ``size``, ``size_type``,
        ``direction``, ``price``.
    timeframe, symbol, exchange
        What the candles were (symbol/exchange may be ``None``).
    metrics
        Our metrics (:mod:`tcp_lab.backtest.metrics`, on the timeframe's full
        grid: a missing candle is a slot with a zero return), the run's own
        (:mod:`tcp_lab.backtest.run_metrics`: ``alpha``, ``beta``,
        ``avg_trade_duration``, ``max_trade_duration``, ``turnover``) plus
        ``n_open_trades``, ``fees_paid``, ``final_equity``,
        ``buy_and_hold_return``, ``ambiguous_bars``.
    trades
        One row per trade: :data:`TRADE_COLUMNS`. ``pnl``/``return`` are after
        fees; an open trade has no exit time/price and its PnL is marked at
        the last close.
    equity
        Portfolio value at each candle's close (tz-aware UTC index).
    position
        Units of the base asset held at each close (negative when short).
    candles, output
        The candles and the strategy output (``None`` for a loaded run).
    run_id
        Set once the run is stored (:func:`tcp_lab.backtest.runs.save_run`).
    """

    def __init__(
        self,
        *,
        strategy_name: str,
        parameters: Mapping[str, Any],
        options: Mapping[str, Any],
        timeframe: Timeframe | str,
        metrics: Mapping[str, Any],
        trades: pd.DataFrame,
        equity: pd.Series,
        position: pd.Series | None = None,
        candles: pd.DataFrame | None = None,
        output: StrategyOutput | None = None,
        symbol: str | None = None,
        exchange: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.strategy_name = strategy_name
        self.parameters = dict(parameters)
        self.options = dict(options)
        self.timeframe = parse_timeframe(timeframe)
        self.metrics = dict(metrics)
        self.trades = trades
        self.equity = equity
        self.position = position
        self.candles = candles
        self.output = output
        self.symbol = symbol
        self.exchange = exchange
        self.run_id = run_id
        #: The engine's fills (``ORDER_FIELDS`` columns; None for a loaded run).
        self.orders: np.ndarray | None = None
        #: The trades a trades-resolved run used (``"store"`` or a frame).
        self.trades_source: Any = None
        #: Those trades by chunk of candles (:class:`~tcp_lab.backtest.trade_source.TradeChunks`).
        self.bar_trades: Any = None
        #: The strategy object that ran (None for a loaded run).
        self.strategy: BaseStrategy | None = None

    @classmethod
    def from_simulation(
        cls,
        sim: tuple[np.ndarray, ...],
        *,
        strategy: BaseStrategy,
        candles: pd.DataFrame,
        output: StrategyOutput,
        timeframe: Timeframe,
        options: Mapping[str, Any],
        symbol: str | None = None,
        exchange: str | None = None,
        trades_source: Any = None,
    ) -> BacktestResult:
        """Build a result from :func:`~tcp_lab.execution.simulate.simulate_nb`'s output."""
        value, position, orders, trips, state = sim
        index = candles.index
        close = candles["close"].to_numpy()
        init_cash = float(options["init_cash"])
        risk_free = float(options.get("risk_free_rate", 0.0))
        closed = trips[trips[:, TRIP_FIELDS.index("closed")] == 1.0]
        years = (index[-1] - index[0]) / _YEAR
        ts = index.as_unit("us").asi8
        slots = grid_slots(ts, timeframe.us)  # missing candles: slots without a trade
        equity = np.concatenate(([init_cash], value))
        metrics: dict[str, Any] = compute_metrics(
            equity,
            closed[:, TRIP_FIELDS.index("pnl")],
            closed[:, TRIP_FIELDS.index("return")],
            position != 0.0,
            timeframe.per_year,
            years,
            slots=slots,
            risk_free_rate=risk_free,
        )
        o = dict(zip(ORDER_FIELDS, orders.T, strict=True))
        metrics.update(run_metrics(
            equity, close, slots, timeframe.per_year,
            entry_us=ts[closed[:, TRIP_FIELDS.index("entry_idx")].astype(np.int64)],
            exit_us=ts[closed[:, TRIP_FIELDS.index("exit_idx")].astype(np.int64)],
            traded_value=float(np.abs(o["size"] * o["price"]).sum()),
            risk_free_rate=risk_free,
        ))
        metrics.update(
            n_open_trades=int(len(trips) - len(closed)),
            fees_paid=float(orders[:, ORDER_FIELDS.index("fees")].sum()),
            final_equity=float(value[-1]),
            buy_and_hold_return=float(close[-1] / close[0] - 1.0),
            ambiguous_bars=int(state[STATE_FIELDS.index("ambiguous_bars")]),
        )
        result = cls(
            strategy_name=strategy.name or type(strategy).__qualname__,
            parameters=dict(strategy.params),
            options=options,
            timeframe=timeframe,
            metrics=metrics,
            trades=trades_frame(trips, index),
            equity=pd.Series(value, index=index, name="equity", copy=False),
            position=pd.Series(position, index=index, name="position", copy=False),
            candles=candles,
            output=output,
            symbol=symbol,
            exchange=exchange,
        )
        result.orders = orders
        result.trades_source = trades_source
        return result

    def intrabar_report(self, trades: pd.DataFrame | str | None = None) -> Any:
        """This run resolved on candles (OHLC rule) and on market trades, side by side.

        Parameters
        ----------
        trades
            Market trades (a frame of ``ts, price, amount``, or ``"store"``);
            default: the ones this run was resolved on.

        Returns
        -------
        IntrabarReport
            Ambiguous bars, round trips whose exit changed, candles where the
            rules disagree, and the difference in total return
            (:mod:`tcp_lab.backtest.intrabar`).
        """
        from tcp_lab.backtest.engine import intrabar_report

        return intrabar_report(self, trades)

    # -- vectorbt ---------------------------------------------------------------------
    def to_vectorbt(self) -> Any:
        """A vectorbt ``Portfolio`` built from this run's fills (its stats and plots).

        The orders are the engine's; vectorbt recomputes cash, value and its
        trades from them, so ``pf.total_return()`` equals
        ``metrics["total_return"]``.
        """
        import vectorbt as vbt

        if self.candles is None or self.orders is None:
            self._require_output("fills")
        rec = np.zeros(len(self.orders), dtype=vbt.portfolio.enums.order_dt)
        o = dict(zip(ORDER_FIELDS, self.orders.T, strict=True))
        rec["id"] = np.arange(len(rec))
        rec["idx"] = o["idx"].astype(np.int64)
        rec["size"], rec["price"], rec["fees"] = o["size"], o["price"], o["fees"]
        rec["side"] = np.where(o["side"] > 0, 0, 1)
        index = self.candles.index.tz_convert(None)  # vectorbt is fastest on naive UTC
        close = pd.Series(self.candles["close"].to_numpy(), index=index, name="close")
        wrapper = vbt.base.array_wrapper.ArrayWrapper.from_obj(close, freq=self.timeframe.delta)
        return vbt.Portfolio(wrapper, close, rec, np.zeros(0, dtype=vbt.portfolio.enums.log_dt),
                             float(self.options["init_cash"]), cash_sharing=False)

    # -- derived series ---------------------------------------------------------------
    @cached_property
    def drawdown(self) -> pd.Series:
        """Fraction below the running peak of :attr:`equity` at each close (>= 0)."""
        e = self.equity.to_numpy()
        peak = np.maximum.accumulate(np.concatenate(([self.options["init_cash"]], e)))[1:]
        return pd.Series(1.0 - e / peak, index=self.equity.index, name="drawdown")

    @cached_property
    def signals(self) -> pd.DataFrame:
        """Per candle: the strategy's signal columns and the bot's ``action`` (buy/sell/hold)."""
        out = self._require_output("signals")
        cols = {k: v.to_numpy() for k, v in out.signal_columns().items()}
        buy = cols["entries"] | cols.get("short_exits", False)
        sell = cols["exits"] | cols.get("short_entries", False)
        codes = np.where(buy & ~sell, 0, np.where(sell & ~buy, 1, 2)).astype(np.int8)
        action = pd.Categorical.from_codes(codes, categories=["buy", "sell", "hold"])
        return pd.DataFrame(cols | {"action": action}, index=self.equity.index)

    @property
    def indicators(self) -> dict[str, pd.Series]:
        """The strategy's indicator series (empty for a loaded run)."""
        return {} if self.output is None else dict(self.output.indicators)

    def _require_output(self, what: str) -> StrategyOutput:
        if self.output is None:
            raise DataError(
                f"backtest run {self.run_id}: {what} are not stored with a run",
                hint="re-run it with run_backtest(...) on the same candles",
            )
        return self.output

    # -- presentation -----------------------------------------------------------------
    @property
    def label(self) -> str:
        """``sma_cross(fast=10, slow=30) on BTC/USDT 1m``."""
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        where = " ".join(x for x in (self.exchange, self.symbol, self.timeframe.name) if x)
        return f"{self.strategy_name}({params}) on {where}"

    def summary(self) -> pd.Series:
        """Metrics in display order as a Series (fractions, ratios, counts and durations)."""
        first = (*METRIC_NAMES, *RUN_METRIC_NAMES)
        keys = [*first, *[k for k in self.metrics if k not in first]]
        data = {k: self.metrics[k] for k in keys if k in self.metrics}
        return pd.Series(data, name=self.label, dtype=object)

    def plot(self, *, max_points: int = 5000) -> go.Figure:
        """Candlesticks with the indicators, entry/exit markers and volume (plotly)."""
        from tcp_lab.reports.figures import strategy_figure

        if self.candles is None:
            self._require_output("candles")
        return strategy_figure(
            self.candles, self.indicators, self.trades, title=self.label, max_points=max_points
        )

    def plot_equity(self, *, max_points: int = 5000) -> go.Figure:
        """Equity curve and drawdown (plotly)."""
        from tcp_lab.reports.figures import equity_figure

        return equity_figure(self.equity, self.drawdown, title=self.label, max_points=max_points)

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (metrics, figures, trades) and return its path."""
        from tcp_lab.reports.html import backtest_report

        return backtest_report(self, path)

    def save(self, **kwargs: Any) -> str:
        """Store the run (:func:`tcp_lab.backtest.runs.save_run`) and return its id."""
        from tcp_lab.backtest.runs import save_run

        return save_run(self, **kwargs)

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"<BacktestResult {self.label}: total_return={m.get('total_return', np.nan):.2%} "
            f"sharpe={m.get('sharpe', np.nan):.2f} "
            f"max_drawdown={m.get('max_drawdown', np.nan):.2%} "
            f"trades={m.get('n_trades')}>"
        )
