"""Informative series: another timeframe of a strategy's symbol, or another symbol, beside
its own candles.

A strategy declares them, ``informative = (("1h", None), ("4h", "ETH/USDT"))``
(``None``: its own symbol). Whatever runs it (the backtest, the sweep, walk-forward,
the look-ahead guard, the paper bot) calls :func:`with_informative`, which adds each
series to the candles as columns ``<field>@<timeframe>`` (own symbol) or
``<field>@<timeframe>@<symbol>`` (the candle fields and ``ts``, the informative
candle's close time), aligned by close time with :func:`align`: the row
stamped ``t`` sees the newest informative candle that closed at or before ``t`` (the
1h candle stamped 10:00 from the 5m row stamped 10:00 on, never before). The
strategy reads them back with :meth:`BaseStrategy.informative_frame
<tcp_lab.strategies.BaseStrategy.informative_frame>`.

The own symbol's higher timeframes are aggregated from the strategy's candles (the
same rule as the collector's, :func:`tcp_lab.data.aggregate.resample_candles`), so a
bot's trailing window and the backtest see the same values once the window covers
the informative lookback: count it in ``warmup`` (in the strategy's own candles).
Another symbol's candles come from the caller (``informative={"ETH/USDT": candles}``)
or, for a bot, from the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.errors import DataError, StrategyError
from tcp_lab.timeframes import CANDLE_COLUMNS, Timeframe, parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.strategies.base import BaseStrategy

__all__ = ["align", "with_informative", "informative_name", "informative_specs",
           "strip_informative", "keep_informative"]

_SEP = "@"
#: The fields of an informative series: the candle columns and ``ts``, the close time of
#: the informative candle a row sees (NaT before the first).
FIELDS = (*CANDLE_COLUMNS, "ts")


def informative_name(field: str, timeframe: str | Timeframe, symbol: str | None = None) -> str:
    """The column of an informative series' field: ``close@1h`` or ``close@4h@ETH/USDT``."""
    tf = parse_timeframe(timeframe).name
    return f"{field}{_SEP}{tf}" + (f"{_SEP}{symbol}" if symbol else "")


def informative_specs(strategy: BaseStrategy | type) -> list[tuple[Timeframe, str | None]]:
    """The strategy's declared informative series, checked: ``[(timeframe, symbol), …]``."""
    declared = getattr(strategy, "informative", ()) or ()
    label = getattr(strategy, "name", "") or type(strategy).__name__
    specs = []
    for item in declared:
        if not (isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2):
            raise StrategyError(f"strategy {label!r}: informative entry {item!r} is not "
                                "(timeframe, symbol)", hint='e.g. informative = (("1h", None),)')
        tf, symbol = item
        if symbol is not None and (not isinstance(symbol, str) or not symbol):
            raise StrategyError(f"strategy {label!r}: informative symbol {symbol!r} is not a "
                                "symbol", hint='None for the own symbol, else e.g. "ETH/USDT"')
        specs.append((parse_timeframe(tf), symbol))
    return specs


def align(higher: pd.DataFrame, lower: pd.DataFrame | pd.DatetimeIndex) -> pd.DataFrame:
    """``higher``'s rows as they are known at each close time of ``lower``.

    Row ``t`` of the result is the newest row of ``higher`` stamped ``<= t`` (both are
    stamped with close times), NaN before ``higher``'s first row. A candle is visible
    from its own close on, never before: no look-ahead, whatever the two timeframes.

    Parameters
    ----------
    higher
        Candles (or any frame) indexed by close time, tz-aware and increasing.
    lower
        The frame (or index) to align on.

    Returns
    -------
    pandas.DataFrame
        ``higher``'s columns on ``lower``'s index.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> five = make_candles(24, "5m", start="2024-01-01 09:05")
    >>> hour = make_candles(3, "1h", start="2024-01-01 08:00")  # closes 09:00, 10:00, 11:00
    >>> a = align(hour, five)
    >>> bool(a.loc["2024-01-01 09:55", "close"] == hour.loc["2024-01-01 09:00", "close"])
    True
    >>> bool(a.loc["2024-01-01 10:00", "close"] == hour.loc["2024-01-01 10:00", "close"])
    True
    """
    index = lower.index if isinstance(lower, pd.DataFrame) else pd.DatetimeIndex(lower)
    for what, idx in (("higher", higher.index), ("lower", index)):
        if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
            raise DataError(f"align: {what} is not indexed by tz-aware close times",
                            hint="use candles as the store returns them (UTC close times)")
        if not idx.is_monotonic_increasing:
            raise DataError(f"align: {what}'s close times are not increasing",
                            hint="sort the frame by its index first")
    if higher.index.tz != index.tz:
        higher = higher.tz_convert(index.tz)
    return higher.reindex(index, method="ffill")


def strip_informative(candles: pd.DataFrame) -> pd.DataFrame:
    """``candles`` without informative columns (those with ``@`` in their name)."""
    extra = [c for c in candles.columns if _SEP in str(c)]
    return candles.drop(columns=extra) if extra else candles


def keep_informative(given: pd.DataFrame, validated: pd.DataFrame) -> pd.DataFrame:
    """``validated`` (checked candles, which drop extra columns) with the informative
    columns ``given`` already had: series aligned once over a whole history (as
    walk-forward does) are not rebuilt from a slice of it."""
    extra = [c for c in given.columns if _SEP in str(c)]
    if not extra:
        return validated
    return validated.join(given[extra].set_axis(given.index.as_unit("us")), how="left")


def _source(strategy_label: str, symbol: str | None, own: pd.DataFrame,
            others: Mapping[str, pd.DataFrame] | None, own_symbol: str | None,
            tf: Timeframe) -> pd.DataFrame:
    if symbol is None or symbol == own_symbol:
        return own
    frame = (others or {}).get(symbol)
    if frame is None:
        raise DataError(
            f"strategy {strategy_label!r} reads {symbol} {tf.name} candles (informative): "
            "none were given",
            hint=f"pass informative={{{symbol!r}: candles}} (any timeframe that divides "
            f"{tf.name}), or collect {symbol} for the bot's store")
    return frame


def with_informative(strategy: BaseStrategy, candles: pd.DataFrame, *,
                     timeframe: str | Timeframe | None = None,
                     others: Mapping[str, pd.DataFrame] | None = None,
                     symbol: str | None = None) -> pd.DataFrame:
    """``candles`` with the strategy's informative series as aligned columns.

    Parameters
    ----------
    strategy
        Declares ``informative``; nothing is added when it declares none.
    candles
        The strategy's own candles (validated).
    timeframe
        Their timeframe (default: inferred from the index).
    others
        Candles of the other symbols the strategy reads, by symbol, at any timeframe
        that divides the informative one.
    symbol
        The strategy's own symbol (an informative entry naming it means the own candles;
        their columns are added under the name the entry gives as well, so a strategy
        reading ``("1h", "ETH/USDT")`` runs on ETH/USDT too, e.g. in a portfolio).

    Returns
    -------
    pandas.DataFrame
        A new frame (``candles`` itself when there is nothing to add or every column
        is there already).

    Raises
    ------
    DataError
        A symbol's candles are missing, or a timeframe is not a multiple of its source's.
    """
    specs = informative_specs(strategy)
    if not specs:
        return candles
    names = [informative_name(f, tf, s) for tf, s in specs for f in FIELDS]
    if all(n in candles.columns for n in names):
        return candles
    from tcp_lab.backtest.engine import candle_timeframe
    from tcp_lab.data.aggregate import resample_candles

    label = getattr(strategy, "name", "") or type(strategy).__name__
    own = strip_informative(candles)[list(CANDLE_COLUMNS)]
    own_tf = candle_timeframe(own.index, timeframe)  # one candle: pass timeframe=
    columns: dict[str, Any] = {}
    for tf, named in specs:
        sym = None if named == symbol else named
        src = _source(label, sym, own, others, symbol, tf)
        src = strip_informative(src)[list(CANDLE_COLUMNS)]
        if sym is not None and src.empty:
            raise DataError(f"strategy {label!r} reads {sym} {tf.name} candles (informative): "
                            f"none between {candles.index[0]} and {candles.index[-1]}",
                            hint=f"collect {sym} (or pass its candles)")
        src_tf = own_tf if sym is None else (
            candle_timeframe(src.index, None) if len(src) > 1 else tf)
        if src_tf.us > tf.us or tf.us % src_tf.us:
            raise DataError(
                f"strategy {label!r}: informative {tf.name} of {sym or 'its own symbol'} "
                f"cannot be built from {src_tf.name} candles",
                hint="informative timeframes must be whole multiples of the candles'")
        higher = src if src_tf.us == tf.us else resample_candles(
            src, tf, source_timeframe=src_tf, name=f"{sym or 'own'} candles")
        aligned = align(higher.assign(ts=higher.index), candles)
        for f in FIELDS:  # an entry naming the own symbol: its columns under that name too
            for sym_name in {sym, named}:
                columns[informative_name(f, tf, sym_name)] = aligned[f].to_numpy()
    out = candles.copy()
    for name, values in columns.items():
        out[name] = values
    return out
