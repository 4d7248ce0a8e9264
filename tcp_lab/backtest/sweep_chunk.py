"""One chunk of a parameter sweep: the unit of work an executor can ship anywhere.

:func:`run_chunk` backtests a list of parameter combinations on candle arrays
and returns their metrics. It is pure and every argument pickles (a strategy
travels by registry name, dotted path or importable class), so
:func:`tcp_lab.backtest.param_sweep.sweep` can run chunks in-process today and a
distributed executor can run them elsewhere later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.fused import FUSED_KERNELS, run_fused
from tcp_lab.backtest.indicator_cache import indicator_cache
from tcp_lab.backtest.kernels import simulate_signals_nb
from tcp_lab.backtest.metrics import grid_slots
from tcp_lab.backtest.sweep_metrics import finalize_metrics
from tcp_lab.errors import StrategyError
from tcp_lab.execution import LEVEL_OPTIONS, TradingOptions, route_signals
from tcp_lab.strategies import BaseStrategy, check_output, get_strategy

__all__ = ["run_chunk", "candles_to_arrays", "strategy_class", "fused_name", "TRADE_KEYS"]

_YEAR_US = 365 * 86400 * 1_000_000

def candles_to_arrays(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    """Validated candles as plain arrays (``ts`` in epoch microseconds) for :func:`run_chunk`."""
    out = {"ts": candles.index.as_unit("us").asi8.copy()}
    out.update({c: candles[c].to_numpy() for c in candles.columns})
    return out


#: Keys of the market trades (indexed by bar) that travel with the candle arrays, and
#: what stands for "no trades" (the OHLC rule).
TRADE_KEYS = {"trade_price": np.zeros(0), "trade_ts": np.zeros(0),
              "trade_amount": np.zeros(0), "trade_lo": np.zeros(0, np.int64),
              "trade_hi": np.zeros(0, np.int64), "trade_low": np.zeros(0),
              "trade_high": np.zeros(0)}


def _arrays_to_candles(arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(arrays["ts"], unit="us", utc=True), name="ts")
    return pd.DataFrame({k: v for k, v in arrays.items() if k != "ts" and k not in TRADE_KEYS},
                        index=index)


def strategy_class(strategy: str | type[BaseStrategy]) -> type[BaseStrategy]:
    """The strategy class for a registry name, dotted path or class."""
    if isinstance(strategy, type) and issubclass(strategy, BaseStrategy):
        return strategy
    return type(get_strategy(strategy))


def fused_name(cls: type[BaseStrategy]) -> str | None:
    """The fused kernel for ``cls`` when it *is* the registered built-in of that name."""
    if cls.name in FUSED_KERNELS and type(get_strategy(cls.name)) is cls:
        return cls.name
    return None


def run_chunk(
    strategy_name: str | type[BaseStrategy],
    candles_arrays: Mapping[str, np.ndarray],
    combos: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
) -> pd.DataFrame:
    """Backtest one chunk of combinations; pure, and every argument pickles.

    Parameters
    ----------
    strategy_name
        Registry name, dotted path (``"pkg.mod:Class"``) or strategy class.
    candles_arrays
        :func:`candles_to_arrays` of validated candles.
    combos
        Full parameter dicts.
    options
        The prepared options of a sweep (``df.attrs["options"]`` keys plus
        ``segments``, ``prefixes``, ``years``, ``bars_per_year``).

    Returns
    -------
    DataFrame
        One row per combination, in order: parameter columns, then the
        metrics of each segment (``prefix + metric``).

    Raises
    ------
    StrategyError
        A combination's ``compute`` failed (the message names it), or the
        chunk failed (the message names its first and last combination).
    """
    cls = strategy_class(strategy_name)
    fused = fused_name(cls)
    segments = np.asarray(options["segments"], dtype=np.int64).reshape(-1, 2)
    bars = np.ascontiguousarray(np.stack([
        np.asarray(candles_arrays[c], dtype=np.float64) for c in ("open", "high", "low", "close")
    ]))
    shift = options["price"] == "next_open"
    base = TradingOptions.from_mapping({k: options[k] for k in TradingOptions.__dataclass_fields__})
    opts = _combo_options(base, combos)
    params = [{k: v for k, v in c.items() if k not in LEVEL_OPTIONS} for c in combos]
    init_cash = float(base.init_cash)
    trades = tuple(candles_arrays.get(k, empty) for k, empty in TRADE_KEYS.items())
    # missing candles are slots of the grid: the timeframe from bars_per_year (365 d / tf)
    slot = grid_slots(candles_arrays["ts"], round(_YEAR_US / options["bars_per_year"]))
    try:
        if fused is not None:
            acc = run_fused(fused, bars, params, segments, shift=int(shift),
                            reverse=options["direction"] == "longshort", opts=opts,
                            init_cash=init_cash, trades=trades, slot=slot)
        else:
            signals = _generic_signals(cls, _arrays_to_candles(candles_arrays), params, options)
            acc = simulate_signals_nb(bars, slot, *signals, segments, shift, opts, init_cash,
                                      trades)
    except StrategyError:
        raise
    except Exception as e:
        raise StrategyError(
            f"sweep of {cls.name!r}: chunk of {len(combos)} combination(s) from "
            f"{dict(combos[0])} to {dict(combos[-1])} failed: {type(e).__name__}: {e}"
        ) from e
    frame = pd.DataFrame([dict(c) for c in combos])
    columns = {}
    for s, prefix in enumerate(options["prefixes"]):
        for name, values in finalize_metrics(
            acc[:, s], options["bars_per_year"], options["years"][s]
        ).items():
            columns[prefix + name] = values
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


def _combo_options(base: TradingOptions, combos: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Each combination's kernel options: the sweep's, with its own stops and targets."""
    rows = {}
    out = np.empty((len(combos), len(base.kernel_options())))
    for j, combo in enumerate(combos):
        key = tuple(combo.get(k) for k in LEVEL_OPTIONS)
        if key not in rows:
            levels = {k: combo[k] for k in LEVEL_OPTIONS if k in combo}
            rows[key] = (base.with_(**levels) if levels else base).kernel_options()
        out[j] = rows[key]
    return out


def _generic_signals(
    cls: type[BaseStrategy], candles: pd.DataFrame, combos: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
) -> tuple[np.ndarray, ...]:
    """Long entry/exit, short entry/exit and stop/target level columns, as ``run_backtest``
    feeds the engine (``(0, 0)`` for columns no combination uses)."""
    n, m = len(candles), len(combos)
    longshort = options["direction"] == "longshort"
    never = np.zeros((0, 0), dtype=bool)
    le = np.zeros((n, m), dtype=bool, order="F")
    lx = np.zeros((n, m), dtype=bool, order="F")
    se = np.zeros((n, m), dtype=bool, order="F") if longshort else never
    sx = np.zeros((n, m), dtype=bool, order="F") if longshort else never
    stop = target = np.zeros((0, 0))  # allocated when a combination sets levels
    with indicator_cache(candles):
        for j, params in enumerate(combos):
            try:
                strategy = cls(params)
                out = check_output(strategy.compute(candles), candles, repr(strategy))
            except Exception as e:
                raise StrategyError(
                    f"sweep of {cls.name!r}: compute() failed for {dict(params)}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            routed = route_signals(options["direction"], *(
                None if v is None else v.to_numpy() for v in (
                    out.entries, out.exits, out.short_entries, out.short_exits)))
            for column, values in zip((le, lx, se, sx), routed, strict=True):
                if column.size:
                    column[:, j] = values
            if (out.stop_price is not None or out.target_price is not None) and not stop.size:
                stop = np.full((n, m), np.nan, order="F")
                target = np.full((n, m), np.nan, order="F")
            for column, values in ((stop, out.stop_price), (target, out.target_price)):
                if values is not None:
                    column[:, j] = np.asarray(values, dtype=np.float64)
    arrays = [le, lx, se, sx, stop, target]
    if options["price"] == "next_open":  # act on the previous candle's signal
        for a in arrays:
            if a.size:
                a[1:] = a[:-1].copy()
                a[0] = False if a.dtype == bool else np.nan
    return tuple(arrays)
