"""What the store knows about a candle series besides its candles: quiet slots, its source.

A *quiet slot* is a grid slot without a candle that the exchange confirmed had no
trades (tcp_lab stores no candle then): ``tcp-lab data check`` counts a missing
candle there as explained, and every other missing candle as a hole. Backfills
and repairs record them (:func:`tcp_lab.data.backfill.backfill_range`).

A series' *source* is the base URL of the exchange or emulator it was collected
from, redacted (:func:`tcp_lab.settings.redact_url`: no credentials are stored);
``tcp-lab data check --repair`` goes back there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tcp_lab.errors import DataError
from tcp_lab.settings import redact_url
from tcp_lab.store import schema as S
from tcp_lab.store._backend import RowsWrite
from tcp_lab.store._convert import check_name, from_db_time, py_time, time_range
from tcp_lab.timeframes import TS_DTYPE, parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.store._backend import Backend

__all__ = ["SeriesMixin"]


def _slots(slots: Any, timeframe: str, name: str) -> np.ndarray:
    """``slots`` as sorted, unique int64 epoch µs on the timeframe's close grid."""
    try:
        idx = pd.DatetimeIndex(slots)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected close times (a DatetimeIndex), got "
                        f"{type(slots).__name__} ({e})") from None
    if len(idx) and idx.tz is None:
        raise DataError(f"{name}: timestamps have no time zone",
                        hint="slots are close times in UTC: use .tz_localize('UTC') if they are")
    if idx.hasnans:
        raise DataError(f"{name}: a slot is NaT")
    us = idx.tz_convert("UTC").as_unit("us").asi8 if len(idx) else np.empty(0, np.int64)
    off = us % parse_timeframe(timeframe).us != 0
    if off.any():
        bad = pd.Timestamp(int(us[off][0]), unit="us", tz="UTC")
        raise DataError(f"{name}: {bad} is not on the {timeframe} close grid "
                        f"({int(off.sum())} slot(s) off it)",
                        hint="slots are candle close times, e.g. 09:05:00 for 09:00-09:05")
    return np.unique(us)


class SeriesMixin:
    """Quiet slots and sources of candle series (needs ``self._backend``)."""

    _backend: Backend

    def save_quiet_slots(self, slots: Any, exchange: str, symbol: str, timeframe: str) -> int:
        """Record grid slots the exchange confirmed had no trades (idempotent).

        Parameters
        ----------
        slots
            Close times (tz-aware, on the timeframe's grid), e.g. a
            :class:`~tcp_lab.data.providers.base.CandlePage`'s ``empty``.
        exchange, symbol, timeframe
            The series.

        Returns
        -------
        int
            The number of distinct slots in ``slots``.

        Raises
        ------
        DataError
            Naive times, a slot off the grid, a bad name or timeframe; nothing is written.

        Examples
        --------
        >>> from tcp_lab.store import open_store
        >>> with open_store("duckdb:///:memory:") as store:
        ...     store.save_quiet_slots(pd.DatetimeIndex(["2024-03-01 00:05"], tz="UTC"),
        ...                            "binance", "BTC/USDT", "1m")
        ...     store.load_quiet_slots("binance", "BTC/USDT", "1m").size
        1
        1
        """
        tf = parse_timeframe(timeframe).name
        exchange, symbol = check_name(exchange, "exchange"), check_name(symbol, "symbol")
        us = _slots(slots, tf, f"quiet slots of {exchange} {symbol} {tf}")
        if len(us):
            self._backend.bulk_upsert(
                S.quiet_slots, {"exchange": exchange, "symbol": symbol, "timeframe": tf},
                {"ts": us}, update=False)
        return len(us)

    def load_quiet_slots(self, exchange: str, symbol: str, timeframe: str,
                         start: object = None, end: object = None) -> pd.DatetimeIndex:
        """The recorded quiet slots of a series with ``start <= ts <= end``, in order."""
        t = S.quiet_slots.c
        where = [t.exchange == check_name(exchange, "exchange"),
                 t.symbol == check_name(symbol, "symbol"),
                 t.timeframe == parse_timeframe(timeframe).name, *time_range(t.ts, start, end)]
        us = self._backend.read_arrays(S.quiet_slots, ["ts"], where, ["ts"])["ts"]
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(us, np.int64), unit="us", utc=True),
                                name="ts").astype(TS_DTYPE)

    def save_series_source(self, exchange: str, symbol: str, timeframe: str,
                           source: str) -> str:
        """Record where a series was collected from; return what was stored.

        ``source`` is the base URL of the exchange or emulator; it is stored
        redacted (a password or token in it becomes ``***``). The last
        recording of a series wins.
        """
        tf = parse_timeframe(timeframe).name
        clean = redact_url(check_name(source, "source").strip().rstrip("/")) or ""
        values = {"exchange": check_name(exchange, "exchange"),
                  "symbol": check_name(symbol, "symbol"), "timeframe": tf, "source": clean,
                  "recorded_at": py_time(pd.Timestamp.now("UTC").as_unit("us"))}
        self._backend.write_rows([RowsWrite(S.series_sources, [values])],
                                 what="write series_sources")
        return clean

    def load_series_sources(self, exchange: str | None = None) -> pd.DataFrame:
        """The recorded source of each series: columns ``exchange symbol timeframe source
        recorded_at`` (all exchanges by default)."""
        t = S.series_sources.c
        stmt = sa.select(t.exchange, t.symbol, t.timeframe, t.source, t.recorded_at)
        if exchange is not None:
            stmt = stmt.where(t.exchange == check_name(exchange, "exchange"))
        rows = self._backend.run(lambda tx: tx.fetch(stmt.order_by(t.exchange, t.symbol,
                                                                   t.timeframe)),
                                 write=False, what="read series_sources")
        text = {name: pd.array([r[i] for r in rows], dtype="str")
                for i, name in enumerate(("exchange", "symbol", "timeframe", "source"))}
        return pd.DataFrame({**text, "recorded_at": pd.DatetimeIndex(
            [from_db_time(r[4]) for r in rows], dtype=TS_DTYPE)})
