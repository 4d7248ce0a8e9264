"""The vectorized backtest: one strategy, one candle frame, one vectorbt simulation.

A signal computed on the candle that closes at ``T`` fills at that candle's
close by default (``price="close"``): exactly what a live bot sees when it
acts on a closed candle. ``price="next_open"`` fills at the next candle's
open instead. vectorbt gets numpy arrays only (a tz-aware pandas index makes
some of its paths ~40x slower with pandas 3); results come back indexed by
the candles' tz-aware UTC close times.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.result import BacktestResult
from tcp_lab.errors import ConfigError, DataError, StrategyError
from tcp_lab.strategies import BaseStrategy, StrategyOutput, check_output, get_strategy
from tcp_lab.timeframes import Timeframe, parse_timeframe, validate_candles

__all__ = ["run_backtest", "infer_timeframe", "DIRECTIONS", "PRICES", "SIZE_TYPES"]

log = logging.getLogger(__name__)

DIRECTIONS = ("long", "longshort")
PRICES = ("close", "next_open")
SIZE_TYPES = ("percent", "value", "amount")


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
    step = pd.Timedelta(int(np.diff(index.asi8).min()), unit=index.unit)
    seconds = step.total_seconds()
    if seconds % 60:
        raise DataError(
            f"candles are {seconds:g} s apart, not a whole number of minutes",
            hint="pass timeframe= explicitly",
        )
    return parse_timeframe(f"{int(seconds // 60)}m")  # canonicalised: 60m -> 1h


def _check_options(
    fees: float, slippage: float, init_cash: float, size: float, size_type: str,
    direction: str, price: str,
) -> None:
    def bad(what: str, hint: str) -> ConfigError:
        return ConfigError(f"run_backtest: {what}", hint=hint)

    if direction not in DIRECTIONS:
        raise bad(f"direction={direction!r}, expected one of {DIRECTIONS}",
                  "use 'long' or 'longshort'")
    if price not in PRICES:
        raise bad(f"price={price!r}, expected one of {PRICES}",
                  "use 'close' (default) or 'next_open'")
    if size_type not in SIZE_TYPES:
        raise bad(f"size_type={size_type!r}, expected one of {SIZE_TYPES}", "default 'percent'")
    if not (0 <= fees < 1) or not (0 <= slippage < 1):
        raise bad(f"fees={fees!r}, slippage={slippage!r}: expected fractions in [0, 1)",
                  "0.001 is 0.1 % per fill")
    if not init_cash > 0:
        raise bad(f"init_cash={init_cash!r} must be positive", "e.g. init_cash=10_000")
    if not size > 0 or (size_type == "percent" and size > 1):
        raise bad(f"size={size!r} with size_type={size_type!r}",
                  "percent: a fraction of equity in (0, 1]; value/amount: a positive number")
    if size_type == "percent" and size < 1 and direction == "longshort":
        raise bad("size < 1 of equity cannot reverse positions (vectorbt limitation)",
                  "use size=1.0, size_type='value', or direction='long'")


def _vbt_signals(
    out: StrategyOutput, direction: str, shift: bool
) -> dict[str, np.ndarray]:
    """numpy signal arrays for ``Portfolio.from_signals`` (shifted one bar for next_open)."""
    cols = {"entries": out.entries, "exits": out.exits}
    if direction == "longshort" and (out.short_entries is not None or out.short_exits is not None):
        n = len(out.entries)
        none = np.zeros(n, dtype=bool)
        cols["short_entries"] = none if out.short_entries is None else out.short_entries
        cols["short_exits"] = none if out.short_exits is None else out.short_exits
    arrays = {k: np.asarray(v, dtype=bool) for k, v in cols.items()}
    if shift:
        for k, a in arrays.items():
            s = np.zeros_like(a)
            s[1:] = a[:-1]
            arrays[k] = s
    return arrays


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
    timeframe: str | Timeframe | None = None,
    symbol: str | None = None,
    exchange: str | None = None,
) -> BacktestResult:
    """Backtest a strategy on candles with vectorbt and our own metrics.

    Parameters
    ----------
    strategy
        A strategy object, or a registry name / dotted path (then
        ``parameters`` apply).
    candles
        Candle frame (validated with :func:`tcp_lab.timeframes.validate_candles`).
    parameters
        Strategy parameters when ``strategy`` is a name.
    fees
        Fraction of the traded value paid per fill (0.001 = 0.1 %).
    slippage
        Fraction the fill price moves against us (buys higher, sells lower).
    init_cash
        Starting capital (quote currency).
    size, size_type
        ``"percent"``: fraction of equity per entry (1.0 = all in);
        ``"value"``: a fixed quote amount per entry; ``"amount"``: a fixed
        number of base units per entry.
    direction
        ``"long"`` (short signals ignored) or ``"longshort"``. Without
        ``short_entries``/``short_exits`` a long/short run reverses: exits
        open a short, entries close it and go long.
    price
        ``"close"``: fill at the close of the signal's candle (what a live
        bot does); ``"next_open"``: fill at the next candle's open (a signal on
        the last candle is not filled).
    timeframe
        Candle timeframe; inferred from the index when omitted. Sets
        ``bars_per_year`` for Sharpe/Sortino.
    symbol, exchange
        Labels stored with the result (and stored runs).

    Returns
    -------
    BacktestResult
        ``metrics``, ``trades``, ``equity``, ``signals``, figures.

    Raises
    ------
    DataError
        Invalid candles.
    StrategyError
        Unknown strategy, bad parameters, or a malformed ``compute`` output.
    ConfigError
        An invalid option (direction, price, size…).

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> r = run_backtest("sma_cross", make_candles(5000), parameters={"fast": 10, "slow": 30})
    >>> sorted(r.metrics)[:3]
    ['avg_trade_return', 'buy_and_hold_return', 'cagr']
    """
    import vectorbt as vbt

    if isinstance(strategy, str):
        strategy = get_strategy(strategy, parameters)
    elif parameters is not None:
        raise ConfigError(
            "run_backtest: parameters= given with a strategy object",
            hint="pass the parameters to the strategy, or pass the strategy by name",
        )
    if not isinstance(strategy, BaseStrategy):
        raise StrategyError(f"run_backtest: expected a strategy, got {type(strategy).__name__}")
    _check_options(fees, slippage, init_cash, size, size_type, direction, price)
    label = f"candles for {symbol}" if symbol else "candles"
    candles = validate_candles(candles, timeframe, name=label)
    if len(candles) < 2:
        raise DataError(f"{label}: {len(candles)} candle(s), a backtest needs at least 2")
    if timeframe is not None:
        tf = parse_timeframe(timeframe)
    else:
        tf = infer_timeframe(candles.index)
        if (candles.index.asi8 % tf.us).any():
            raise DataError(
                f"{label}: spaced {tf.name} apart but not on the {tf.name} close grid",
                hint="stamp candles with their close time, or pass timeframe=",
            )

    output = check_output(strategy.compute(candles), candles, repr(strategy))
    signals = _vbt_signals(output, direction, shift=price == "next_open")
    close = candles["close"].to_numpy()
    fill_price = candles["open"].to_numpy() if price == "next_open" else close
    if size_type == "percent" and size >= 1:
        vbt_size, vbt_size_type = np.inf, "amount"
    else:
        vbt_size, vbt_size_type = size, size_type
    try:
        pf = vbt.Portfolio.from_signals(
            close,
            price=fill_price,
            size=vbt_size,
            size_type=vbt_size_type,
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            direction=None if "short_entries" in signals else
            ("both" if direction == "longshort" else "longonly"),
            use_stops=False,
            freq=tf.delta,
            **signals,
        )
    except (ValueError, TypeError) as e:
        raise StrategyError(f"vectorbt simulation of {strategy!r} failed: {e}") from e
    return BacktestResult.from_portfolio(
        pf,
        strategy=strategy,
        candles=candles,
        output=output,
        timeframe=tf,
        options={
            "fees": fees,
            "slippage": slippage,
            "init_cash": init_cash,
            "size": size,
            "size_type": size_type,
            "direction": direction,
            "price": price,
        },
        symbol=symbol,
        exchange=exchange,
    )

