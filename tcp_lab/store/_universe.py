"""A universe of symbols in one read: candles of many series aligned by close time.

:meth:`UniverseMixin.load_candles_many` reads every symbol's candles in one query
(``symbol IN (…)``, no loop per symbol) and lays them side by side on the union of
their close times: a symbol without a candle at a time has NaN there (no trades in
that slot, or not listed yet), never a filled-in value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from tcp_lab.errors import ConfigError, DataError
from tcp_lab.store import schema as S
from tcp_lab.store._convert import check_name, time_range
from tcp_lab.timeframes import CANDLE_COLUMNS, TS_DTYPE, parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.store._backend import Backend

__all__ = ["UniverseMixin", "candles_of"]

_FIELDS = (*CANDLE_COLUMNS, "vwap")


def candles_of(universe: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """One symbol's candles from :meth:`~UniverseMixin.load_candles_many`'s frame.

    The rows where the symbol has a candle, as :meth:`~tcp_lab.store.Store.load_candles`
    returns them (``trade_count`` int64, ``vwap`` only when some row has one).
    """
    if symbol not in universe.columns.get_level_values(0):
        known = ", ".join(dict.fromkeys(universe.columns.get_level_values(0)))
        raise DataError(f"candles_of: {symbol!r} is not in the universe", hint=f"it has {known}")
    df = universe[symbol].dropna(subset=["close"]).astype({"trade_count": "int64"})
    df.columns.name = None
    return df.drop(columns="vwap") if df["vwap"].isna().all() else df


def _with_symbols(symbols: list[str]) -> sa.Table:
    """``market_data`` with ``symbol`` declared as one of ``symbols``: PostgreSQL's binary
    COPY then reads it as a small integer code (free text has no fixed-width form)."""
    base = S.market_data
    return sa.Table(base.name, sa.MetaData(), *(
        sa.Column(c.name, c.type, nullable=c.nullable,
                  info={"categories": tuple(symbols)} if c.name == "symbol" else dict(c.info))
        for c in base.columns), schema=base.schema)


class UniverseMixin:
    """``load_candles_many`` for :class:`~tcp_lab.store.Store`."""

    _backend: Backend

    def load_candles_many(self, exchange: str, symbols: Sequence[str], timeframe: str,
                          start: object = None, end: object = None) -> pd.DataFrame:
        """Candles of several symbols of one exchange and timeframe, aligned by close time.

        Parameters
        ----------
        exchange, timeframe
            The series' exchange and timeframe.
        symbols
            The symbols, in the order the columns should have (duplicates ignored).
        start, end
            Optional tz-aware bounds on the close times, inclusive.

        Returns
        -------
        pandas.DataFrame
            Indexed by the union of the symbols' close times (``datetime64[us, UTC]``),
            columns ``(symbol, field)`` with fields ``open high low close volume
            trade_count vwap``, all float64; NaN where a symbol has no candle.
            :func:`candles_of` gives back one symbol's candles.

        Raises
        ------
        DataError
            A symbol has no candles in the range (the message names every such symbol).

        Examples
        --------
        >>> universe = ["BTC/USDT", "ETH/USDT"]
        >>> wide = store.load_candles_many("binance", universe, "1h")  # doctest: +SKIP
        >>> wide["ETH/USDT"]["close"]                                   # doctest: +SKIP
        """
        wanted = list(dict.fromkeys(check_name(s, "symbol") for s in symbols))
        if not wanted:
            raise ConfigError("load_candles_many: no symbols given",
                              hint='pass e.g. ["BTC/USDT", "ETH/USDT"]')
        tf = parse_timeframe(timeframe).name
        table = _with_symbols(wanted)
        t = table.c
        where = [t.exchange == check_name(exchange, "exchange"), t.symbol.in_(wanted),
                 t.timeframe == tf, *time_range(t.ts, start, end)]
        df = self._backend.read_frame(table, ("symbol", "ts", *_FIELDS), where,
                                      ["ts", "symbol"])
        found = set(df["symbol"].astype(str))
        missing = [s for s in wanted if s not in found]
        if missing:
            span = "" if start is None and end is None else f" between {start or '…'} and " \
                f"{end or '…'}"
            raise DataError(f"load_candles_many: no {exchange} {tf} candles{span} for "
                            + ", ".join(missing),
                            hint="collect them first (tcp-lab collect), or leave them out")
        df["symbol"] = df["symbol"].astype(str)
        wide = df.pivot(index="ts", columns="symbol", values=list(_FIELDS))
        wide = wide.swaplevel(axis=1).reindex(
            columns=pd.MultiIndex.from_product([wanted, _FIELDS], names=["symbol", "field"]))
        wide.index = pd.DatetimeIndex(wide.index, name="ts").astype(TS_DTYPE)
        return wide.astype("float64")
