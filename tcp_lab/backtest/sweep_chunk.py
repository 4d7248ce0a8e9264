"""One chunk of a parameter sweep: the unit of work an executor can ship anywhere.

:func:`run_chunk` backtests a list of parameter combinations on candle arrays
and returns their metrics. It is pure and every argument pickles (a strategy
travels by registry name, dotted path or importable class), so
:func:`tcp_lab.backtest.sweep.sweep` can run chunks in-process today and a
distributed executor can run them elsewhere later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.fused import FUSED_KERNELS, run_fused
from tcp_lab.backtest.indicator_cache import indicator_cache
from tcp_lab.backtest.kernels import SIZE_AMOUNT, SIZE_PERCENT, SIZE_VALUE, simulate_signals_nb
from tcp_lab.backtest.sweep_metrics import finalize_metrics
from tcp_lab.errors import StrategyError
from tcp_lab.strategies import BaseStrategy, check_output, get_strategy

__all__ = ["run_chunk", "candles_to_arrays", "strategy_class", "fused_name"]

_SIZE_TYPES = {"amount": SIZE_AMOUNT, "value": SIZE_VALUE, "percent": SIZE_PERCENT}


def candles_to_arrays(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    """Validated candles as plain arrays (``ts`` in epoch microseconds) for :func:`run_chunk`."""
    out = {"ts": candles.index.as_unit("us").asi8.copy()}
    out.update({c: candles[c].to_numpy() for c in candles.columns})
    return out


def _arrays_to_candles(arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(arrays["ts"], unit="us", utc=True), name="ts")
    return pd.DataFrame({k: v for k, v in arrays.items() if k != "ts"}, index=index)


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
    close = np.ascontiguousarray(candles_arrays["close"], dtype=np.float64)
    shift = options["price"] == "next_open"
    price = np.ascontiguousarray(candles_arrays["open"], dtype=np.float64) if shift else close
    size, size_type = options["size"], _SIZE_TYPES[options["size_type"]]
    if options["size_type"] == "percent" and size >= 1:
        size, size_type = np.inf, SIZE_AMOUNT  # all in, as run_backtest does
    fill = dict(fees=float(options["fees"]), slippage=float(options["slippage"]),
                init_cash=float(options["init_cash"]), size=float(size), size_type=size_type)
    try:
        if fused is not None:
            acc = run_fused(fused, close, price, combos, segments, shift=int(shift),
                            reverse=options["direction"] == "longshort", **fill)
        else:
            signals = _generic_signals(cls, _arrays_to_candles(candles_arrays), combos, options)
            acc = simulate_signals_nb(close, price, *signals, segments, fill["fees"],
                                      fill["slippage"], fill["init_cash"], fill["size"],
                                      fill["size_type"])
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


def _generic_signals(
    cls: type[BaseStrategy], candles: pd.DataFrame, combos: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Long entry/exit and short entry/exit columns, as ``run_backtest`` feeds vectorbt."""
    n, m = len(candles), len(combos)
    longshort = options["direction"] == "longshort"
    never = np.zeros((0, 0), dtype=bool)
    le = np.zeros((n, m), dtype=bool, order="F")
    lx = np.zeros((n, m), dtype=bool, order="F")
    se = np.zeros((n, m), dtype=bool, order="F") if longshort else never
    sx = np.zeros((n, m), dtype=bool, order="F") if longshort else never
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
            le[:, j] = out.entries.to_numpy()
            if not longshort:
                lx[:, j] = out.exits.to_numpy()
            elif out.short_entries is None and out.short_exits is None:
                se[:, j] = out.exits.to_numpy()  # reverse on exits
            else:
                lx[:, j] = out.exits.to_numpy()
                if out.short_entries is not None:
                    se[:, j] = out.short_entries.to_numpy()
                if out.short_exits is not None:
                    sx[:, j] = out.short_exits.to_numpy()
    arrays = [le, lx, se, sx]
    if options["price"] == "next_open":  # act on the previous candle's signal
        for a in arrays:
            if a.size:
                a[1:] = a[:-1].copy()
                a[0] = False
    return le, lx, se, sx
