"""The backtest: one strategy, one candle frame, one run of the execution engine.

A signal computed on the candle that closes at ``T`` fills at that candle's
close by default (``price="close"``): exactly what a live bot sees when it
acts on a closed candle. ``price="next_open"`` fills at the next candle's
open instead. Stops, targets and trailing stops are resolved on the candles
(the OHLC rule) or, given ``trades=``, on the market trades; the rules are
in :mod:`tcp_lab.execution.kernel`. The simulation is
:func:`tcp_lab.execution.simulate.simulate_nb`, the kernel the sweep and the
paper bot drive too; vectorbt is the reference the tests compare with and
an export (:meth:`BacktestResult.to_vectorbt`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.result import BacktestResult
from tcp_lab.backtest.trade_source import TradeArrays, TradeChunks
from tcp_lab.errors import ConfigError, DataError, StrategyError
from tcp_lab.execution import DIRECTIONS, PRICES, SIZE_TYPES, TradingOptions, route_signals
from tcp_lab.execution.account import N_STATE, open_account_nb
from tcp_lab.execution.simulate import open_trip_nb, run_bars_nb
from tcp_lab.strategies import BaseStrategy, StrategyOutput, check_output, get_strategy
from tcp_lab.strategies.informative import keep_informative, with_informative
from tcp_lab.timeframes import Timeframe, parse_timeframe, validate_candles

__all__ = ["run_backtest", "infer_timeframe", "candle_timeframe", "simulate_output",
           "intrabar_report", "engine_signals", "simulate_window",
           "DIRECTIONS", "PRICES", "SIZE_TYPES", "INTRABAR"]

log = logging.getLogger(__name__)

INTRABAR = ("ohlc", "trades")
#: Keys of ``result.options`` that are not trading options.
_RESULT_ONLY = ("intrabar", "risk_free_rate")
_NONE_F = np.zeros(0)
_NONE_I = np.zeros(0, dtype=np.int64)


def infer_timeframe(index: pd.DatetimeIndex) -> Timeframe:
    """The timeframe of a candle index: its smallest spacing (gaps only widen spacings).

    Raises
    ------
    DataError
        Fewer than two candles, or a spacing that is not a timeframe.
    """
    if len(index) < 2:
        raise DataError(
            f"cannot infer the timeframe from {len(index)} candle(s)",
            hint="pass timeframe='1m' (or the right one)",
        )
    return _timeframe_of_step(int(np.diff(index.asi8).min()), index.unit)


def candle_timeframe(index: pd.DatetimeIndex, timeframe: str | Timeframe | None = None,
                     label: str = "candles") -> Timeframe:
    """The timeframe of validated candles: ``timeframe`` (their grid was checked when they
    were validated with it), or the one inferred from the index, whose close grid it checks.

    Raises
    ------
    DataError
        A spacing that is not a timeframe, or stamps off the inferred close grid.
    """
    if timeframe is not None:
        return parse_timeframe(timeframe)
    a = index.asi8
    if len(a) < 2:
        return infer_timeframe(index)  # raises: too few candles
    steps = np.diff(a)
    tf = _timeframe_of_step(int(steps.min()), index.unit)
    gaps = steps[steps != tf.us]  # usually few: only these need the (slow) modulo
    if a[0] % tf.us or (gaps % tf.us).any():
        raise DataError(
            f"{label}: spaced {tf.name} apart but not on the {tf.name} close grid",
            hint="stamp candles with their close time, or pass timeframe=",
        )
    return tf


def _timeframe_of_step(step: int, unit: str) -> Timeframe:
    seconds = pd.Timedelta(step, unit=unit).total_seconds()
    if seconds % 60:
        raise DataError(
            f"candles are {seconds:g} s apart, not a whole number of minutes",
            hint="pass timeframe= explicitly",
        )
    return parse_timeframe(f"{int(seconds // 60)}m")  # canonicalised: 60m -> 1h


def _levels(values: pd.Series | None, shift: bool) -> np.ndarray | None:
    if values is None:
        return None
    a = np.asarray(values, dtype=np.float64)
    if shift:
        a = np.concatenate(([np.nan], a[:-1]))
    return a


def engine_signals(output: StrategyOutput, opts: TradingOptions, shift: bool,
                   ) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """A checked strategy output as the engine reads it.

    Returns the four routed signals (long entry, long exit, short entry, short
    exit; bool, contiguous) and the stop and target levels (float64, NaN
    where the options rule; both empty when the strategy sets none), each
    moved one bar later when ``shift`` (``price="next_open"``: a bar acts on
    the signal of the bar before).
    """
    flags = route_signals(
        opts.direction, *(None if s is None else np.asarray(s, dtype=bool) for s in (
            output.entries, output.exits, output.short_entries, output.short_exits)))
    if shift:
        flags = tuple(np.concatenate(([False], f[:-1])) for f in flags)
    flags = tuple(np.ascontiguousarray(f) for f in flags)
    n = len(flags[0])
    stop = _levels(output.stop_price, shift)
    target = _levels(output.target_price, shift)
    if stop is not None or target is not None:
        stop = np.full(n, np.nan) if stop is None else stop
        target = np.full(n, np.nan) if target is None else target
    else:
        stop = target = _NONE_F
    return flags, stop, target


def simulate_window(
    state: np.ndarray, start: int, bars: Sequence[np.ndarray], flags: Sequence[np.ndarray],
    stop: np.ndarray, target: np.ndarray, opts: TradingOptions, *, entry_idx: int = -1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Carry an account over one window of bars with the engine (OHLC rule); resumable.

    What :func:`simulate_output` does for a whole series, for a window of it
    that starts from a given account: consecutive windows carried through
    the same ``state`` give exactly the run over their union.

    Parameters
    ----------
    state
        The account (:data:`~tcp_lab.execution.account.STATE_FIELDS`; a new one
        from :func:`~tcp_lab.execution.account.open_account_nb`); updated in place.
    start
        Position of the window's first bar in the series (the records carry
        series positions).
    bars
        float64 open, high, low, close of the window's bars.
    flags
        The four signals to act on in each bar of the window, as
        :func:`engine_signals` gives them (already moved one bar for
        ``price="next_open"``).
    stop, target
        Levels per bar of the window, or both empty.
    opts
        The trading options of the window.
    entry_idx
        Series position of the entry of the round trip open in ``state`` (-1: flat).

    Returns
    -------
    equity, position : ndarray
        At each close of the window.
    orders, trips : ndarray
        The window's fills and the round trips it closed (series positions).
    entry_idx : int
        Entry position of the round trip open at the window's end (-1: none);
        pass it to the next window, or to :func:`~tcp_lab.execution.simulate.open_trip_nb`.
    """
    n = len(bars[3])
    equity, position = np.empty(n), np.empty(n)
    arrays = [np.ascontiguousarray(x, dtype=np.float64) for x in bars]
    signals = [np.ascontiguousarray(f, dtype=np.bool_) for f in flags]
    levels = [np.ascontiguousarray(x, dtype=np.float64) for x in (stop, target)]
    orders, trips, entry_idx = run_bars_nb(
        state, int(entry_idx), int(start), *arrays, *signals, *levels,
        opts.price == "next_open", opts.kernel_options(),
        (_NONE_F, _NONE_F, _NONE_F, _NONE_I, _NONE_I, _NONE_F, _NONE_F), equity, position)
    return equity, position, orders, trips, int(entry_idx)


def simulate_output(
    candles: pd.DataFrame, output: StrategyOutput, opts: TradingOptions,
    trades: TradeChunks | None = None,
) -> tuple[np.ndarray, ...]:
    """Run the engine on validated candles and a checked strategy output.

    With ``trades``, stops and targets are resolved on them, one chunk of
    candles (and their trades) at a time, the account carried across chunks.
    Returns :func:`~tcp_lab.execution.simulate.simulate_nb`'s ``(equity,
    position, orders, trips, state)``.
    """
    shift = opts.price == "next_open"
    flags, stop, target = engine_signals(output, opts, shift)
    n = len(candles)
    bars = [np.ascontiguousarray(candles[c].to_numpy(), dtype=np.float64)
            for c in ("open", "high", "low", "close")]
    chunks = trades if trades is not None else [
        (0, n, TradeArrays(_NONE_F, _NONE_F, _NONE_F, _NONE_I, _NONE_I, _NONE_F, _NONE_F))]
    state = np.empty(N_STATE)
    open_account_nb(state, float(opts.init_cash))
    kernel_opts = opts.kernel_options()
    equity, position = np.empty(n), np.empty(n)
    orders, trips, entry_idx = [], [], -1
    for a, b, t in chunks:
        levels = (stop[a:b], target[a:b]) if len(stop) else (stop, target)
        o, r, entry_idx = run_bars_nb(
            state, entry_idx, a, *(x[a:b] for x in bars), *(f[a:b] for f in flags), *levels,
            shift, kernel_opts, tuple(t), equity[a:b], position[a:b])
        orders.append(o)
        trips.append(r)
    trips.append(open_trip_nb(state, entry_idx, n - 1, bars[3][-1]))
    return equity, position, np.concatenate(orders), np.concatenate(trips), state


def run_backtest(
    strategy: BaseStrategy | str,
    candles: pd.DataFrame,
    *,
    parameters: Mapping[str, Any] | None = None,
    fees: float = 0.001,
    slippage: float = 0.0,
    init_cash: float = 10_000.0,
    size: float = 1.0,
    size_type: str = "percent",
    direction: str = "long",
    price: str = "close",
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    latency_ms: float | None = None,
    max_volume_share: float | None = None,
    trades: pd.DataFrame | str | None = None,
    intrabar: str | None = None,
    timeframe: str | Timeframe | None = None,
    symbol: str | None = None,
    exchange: str | None = None,
    risk_free_rate: float = 0.0,
    informative: Mapping[str, pd.DataFrame] | None = None,
) -> BacktestResult:
    """Backtest a strategy on candles with the execution engine and our own metrics.

    Parameters
    ----------
    strategy
        A strategy object, or a registry name / dotted path (then
        ``parameters`` apply).
    candles
        Candle frame (validated with :func:`tcp_lab.timeframes.validate_candles`).
    parameters
        Strategy parameters when ``strategy`` is a name.
    fees, slippage, init_cash, size, size_type, direction, price
    stop_loss, take_profit, trailing_stop
        The trading options (:class:`~tcp_lab.execution.TradingOptions`):
        fees and slippage per fill, starting cash, sizing (``"percent"`` of
        equity, a quote ``"value"`` or a base ``"amount"`` per entry),
        ``"long"`` or ``"longshort"``, fills at the signal candle's
        ``"close"`` or the ``"next_open"``; stop, target and trailing stop as
        fractions of the entry fill price (None: off).
    latency_ms, max_volume_share
        On market trades only: a triggered stop fills at the first trade at or
        after trigger + latency; a fill takes at most this share of each
        trade's amount, the rest on later trades (see
        :mod:`tcp_lab.execution.on_trades`).
    trades
        Market trades to resolve stops and targets on: a frame with ``ts``
        (tz-aware), ``price`` and ``amount`` columns, or ``"store"`` to read
        the stored trades of ``exchange``/``symbol`` for the candles' range.
    intrabar
        ``"ohlc"`` (default without trades) or ``"trades"`` (default with).
    timeframe
        Candle timeframe; inferred from the index when omitted. Sets
        ``bars_per_year`` for Sharpe/Sortino, and the grid on which missing
        candles count as slots with a zero return (:mod:`tcp_lab.backtest.metrics`).
    symbol, exchange
        Labels stored with the result (and stored runs); ``trades="store"``
        reads their trades.
    risk_free_rate
        Annual risk-free rate (``0.04``: 4 % a year) for Sharpe, Sortino and
        alpha; kept in ``result.options``.
    informative
        Candles of the other symbols the strategy declares in ``informative``, by
        symbol (any timeframe dividing the declared one); its own symbol's higher
        timeframes are aggregated from ``candles``
        (:func:`~tcp_lab.strategies.informative.with_informative`).

    Returns
    -------
    BacktestResult
        ``metrics``, ``trades`` (round trips with their ``exit_reason``),
        ``equity``, ``signals``, figures, :meth:`~BacktestResult.to_vectorbt`.

    Raises
    ------
    DataError
        Invalid candles or trades.
    StrategyError
        Unknown strategy, bad parameters, or a malformed ``compute`` output.
    ConfigError
        An invalid option (direction, price, size, stop…).

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> r = run_backtest("sma_cross", make_candles(5000), parameters={"fast": 10, "slow": 30},
    ...                  stop_loss=0.01)
    >>> {"total_return", "sharpe", "max_drawdown", "n_trades"} <= set(r.metrics)
    True
    >>> r.metrics["n_trades"] > 0
    True
    """
    if isinstance(strategy, str):
        strategy = get_strategy(strategy, parameters)
    elif parameters is not None:
        raise ConfigError(
            "run_backtest: parameters= given with a strategy object",
            hint="pass the parameters to the strategy, or pass the strategy by name",
        )
    if not isinstance(strategy, BaseStrategy):
        raise StrategyError(f"run_backtest: expected a strategy, got {type(strategy).__name__}")
    opts = TradingOptions.from_mapping(
        dict(fees=fees, slippage=slippage, init_cash=init_cash, size=size, size_type=size_type,
             direction=direction, price=price, stop_loss=stop_loss, take_profit=take_profit,
             trailing_stop=trailing_stop, latency_ms=latency_ms,
             max_volume_share=max_volume_share), owner="run_backtest")
    intrabar = _intrabar(intrabar, trades, opts)
    risk_free_rate = _risk_free(risk_free_rate)
    label = f"candles for {symbol}" if symbol else "candles"
    given, candles = candles, validate_candles(candles, timeframe, name=label)
    if len(candles) < 2:
        raise DataError(f"{label}: {len(candles)} candle(s), a backtest needs at least 2")
    tf = candle_timeframe(candles.index, timeframe, label)
    view = with_informative(strategy, keep_informative(given, candles), timeframe=tf,
                            others=informative, symbol=symbol)
    output = check_output(strategy.compute(view), view, repr(strategy))
    bar_trades = None
    if intrabar == "trades":
        bar_trades = TradeChunks(trades, candles, exchange=exchange, symbol=symbol,
                                 timed=opts.needs_trade_times)
    return _result(strategy, candles, output, opts, tf, bar_trades, symbol, exchange,
                   trades if intrabar == "trades" else None, risk_free_rate)


def _risk_free(rate: Any) -> float:
    """The annual risk-free rate, checked: a finite number above -1."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not -1 < rate < math.inf:
        raise ConfigError(
            f"run_backtest: risk_free_rate={rate!r} must be an annual rate above -1",
            hint="e.g. risk_free_rate=0.04 for 4 % a year (default 0)",
        )
    return float(rate)


def _result(strategy: BaseStrategy, candles: pd.DataFrame, output: StrategyOutput,
            opts: TradingOptions, tf: Timeframe, bar_trades: TradeChunks | None,
            symbol: str | None, exchange: str | None, source: Any,
            risk_free_rate: float = 0.0) -> BacktestResult:
    sim = simulate_output(candles, output, opts, bar_trades)
    result = BacktestResult.from_simulation(
        sim, strategy=strategy, candles=candles, output=output, timeframe=tf,
        options=opts.to_dict() | {"intrabar": "ohlc" if bar_trades is None else "trades",
                                  "risk_free_rate": risk_free_rate},
        symbol=symbol, exchange=exchange, trades_source=source)
    result.bar_trades = bar_trades
    result.strategy = strategy
    return result


def intrabar_report(result: BacktestResult, trades: pd.DataFrame | str | None = None) -> Any:
    """The run ``result`` resolved both on candles and on trades (see
    :meth:`BacktestResult.intrabar_report`)."""
    from tcp_lab.backtest.intrabar import compare_intrabar

    if result.candles is None or result.output is None or result.strategy is None:
        raise DataError(f"backtest run {result.run_id}: a loaded run has no strategy output",
                        hint="re-run it with run_backtest(...) on the same candles")
    opts = TradingOptions.from_mapping(
        {k: v for k, v in result.options.items() if k not in _RESULT_ONLY},
        owner="intrabar_report")
    if trades is None and result.bar_trades is None:
        raise ConfigError("intrabar_report: this run was resolved on candles only",
                          hint="pass trades=<DataFrame ts, price, amount> or trades='store'")
    _intrabar("trades", trades if trades is not None else result.trades_source, opts)
    args = (result.strategy, result.candles, result.output, opts, result.timeframe)
    where = (result.symbol, result.exchange)
    rf = float(result.options.get("risk_free_rate", 0.0))
    # the run itself is one side; only the other one is simulated
    on_trades = result if trades is None else _result(
        *args, TradeChunks(trades, result.candles, exchange=result.exchange,
                           symbol=result.symbol, timed=opts.needs_trade_times), *where, trades,
        rf)
    ohlc = result if result.bar_trades is None else _result(*args, None, *where, None, rf)
    return compare_intrabar(ohlc, on_trades)


def _intrabar(intrabar: str | None, trades: object, opts: TradingOptions) -> str:
    if intrabar is None:
        intrabar = "ohlc" if trades is None else "trades"
    if intrabar not in INTRABAR:
        raise ConfigError(f"run_backtest: intrabar={intrabar!r}, expected one of {INTRABAR}",
                          hint="'ohlc' resolves stops on candles, 'trades' on market trades")
    if intrabar == "ohlc" and opts.needs_trade_times:
        raise ConfigError("run_backtest: latency_ms and max_volume_share act on market trades",
                          hint="pass trades=<DataFrame ts, price, amount> or trades='store'")
    if intrabar == "trades":
        if trades is None:
            raise ConfigError("run_backtest: intrabar='trades' needs trades=",
                              hint="pass trades=<DataFrame ts, price, amount> or trades='store'")
        if opts.price != "close":
            raise ConfigError("run_backtest: trades resolve stops for entries at the close; "
                              f"price={opts.price!r} is not supported with trades",
                              hint="use price='close' with trades=, or intrabar='ohlc'")
    return intrabar
