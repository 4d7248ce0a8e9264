"""The :class:`Store`: one API over every backend.

Validation, conversions and the public methods live here; everything that
differs between DuckDB and PostgreSQL sits behind the private
:class:`~tcp_lab.store._backend.Backend` interface.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from tcp_lab.errors import ConfigError
from tcp_lab.store import schema as S
from tcp_lab.store._backend import Backend, Tx
from tcp_lab.store._bots import BotsMixin
from tcp_lab.store._convert import (
    TRADE_COLUMNS,
    check_name,
    from_db_time,
    py_time,
    time_range,
    trade_columns,
    utc,
)
from tcp_lab.store._hosting import HostingMixin
from tcp_lab.store._lease import Lease
from tcp_lab.store._series import SeriesMixin
from tcp_lab.store._universe import UniverseMixin
from tcp_lab.timeframes import (
    CANDLE_COLUMNS,
    TS_DTYPE,
    empty_candles,
    parse_timeframe,
    validate_candles,
)

__all__ = ["Store"]

log = logging.getLogger("tcp_lab.store")
_CANDLE_READ = ("ts", *CANDLE_COLUMNS, "vwap")
_TABLES = sa.table("tables", sa.column("table_name"), sa.column("table_schema"),
                   schema="information_schema")


class Store(BotsMixin, HostingMixin, SeriesMixin, UniverseMixin):
    """Candles, raw trades, bot records and series facts in DuckDB or PostgreSQL.

    Open one with :func:`tcp_lab.store.open_store`; use it as a context manager
    or call :meth:`close`. A store may be shared by threads. Every timestamp
    going in must be tz-aware (it is converted to UTC); every timestamp coming
    out is UTC.

    Examples
    --------
    >>> from tcp_lab.store import open_store
    >>> with open_store("duckdb:///:memory:") as store:
    ...     store.latest_candle_ts("binance", "BTC/USDT", "1m") is None
    True
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    # -- lifecycle ------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``"duckdb"`` or ``"postgresql"``."""
        return self._backend.name

    @property
    def url(self) -> str:
        """The database URL, password redacted."""
        return self._backend.url

    def close(self) -> None:
        """Release the connections (idempotent)."""
        self._backend.close()

    def lease(self, role: str) -> Lease:
        """Hold ``role`` (e.g. ``"bots manager"``) on this database until released.

        At most one holder per database: on PostgreSQL across hosts (an
        advisory lock the server drops when the holder's session ends), on
        DuckDB within the one process that may write the file.

        Raises
        ------
        ServiceError
            Someone holds it; the message names the holder (process id and host).

        Examples
        --------
        >>> from tcp_lab.store import open_store
        >>> with open_store("duckdb:///:memory:") as store, store.lease("demo") as lease:
        ...     lease.held
        True
        """
        return self._backend.lease(role)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.backend} {self.url}>"

    # -- schema ---------------------------------------------------------------------
    def init_schema(self) -> int:
        """Apply the migrations this database lacks, in order; return its schema version.

        Safe to call any number of times and from several processes at once
        (the migrations run under an exclusive lock, in one transaction).

        Raises
        ------
        ConfigError
            The database was migrated by a newer tcp_lab.
        """

        def migrate(tx: Tx) -> int:
            tx.execute(CreateTable(S.schema_version, if_not_exists=True))
            applied = {row[0] for row in tx.fetch(sa.select(S.schema_version.c.version))}
            newer = max(applied, default=0)
            if newer > S.SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.url}: schema version {newer} is newer than this tcp_lab knows "
                    f"({S.SCHEMA_VERSION})",
                    hint="upgrade tcp_lab, or point TCP_LAB_DATABASE_URL at another database",
                )
            for m in S.MIGRATIONS:
                if m.version in applied:
                    continue
                for stmt in m.statements(self._backend.dialect):
                    tx.execute(stmt)
                tx.execute(sa.insert(S.schema_version).values(
                    version=m.version, description=m.description,
                    applied_at=py_time(pd.Timestamp.now("UTC").as_unit("us"))))
                log.info("%s: applied schema migration %d (%s)", self.url, m.version,
                         m.description)
            return S.SCHEMA_VERSION

        return self._backend.run(migrate, write=True, exclusive=True, what="migrate schema")

    def info(self) -> dict[str, Any]:
        """Backend, redacted URL, schema version and row count of each table.

        Returns
        -------
        dict
            ``{"backend", "url", "schema_version", "latest_schema_version",
            "tables": {name: rows}}`` plus ``"path"`` (DuckDB) or ``"schema"``
            (PostgreSQL). ``schema_version`` is 0 before :meth:`init_schema`.
        """

        def gather(tx: Tx) -> dict[str, Any]:
            names = {r[0] for r in tx.fetch(sa.select(_TABLES.c.table_name).where(
                _TABLES.c.table_schema == sa.func.current_schema()))}
            version = 0
            if S.schema_version.name in names:
                version = tx.fetch(sa.select(sa.func.max(S.schema_version.c.version)))[0][0] or 0
            counts = {t.name: int(tx.fetch(sa.select(sa.func.count()).select_from(t))[0][0])
                      for t in S.INFO_TABLES if t.name in names}
            return {"schema_version": int(version), "tables": counts}

        facts = self._backend.run(gather, write=False, what="info")
        return {"backend": self.backend, "url": self.url, **self._backend.describe(),
                "schema_version": facts["schema_version"],
                "latest_schema_version": S.SCHEMA_VERSION, "tables": facts["tables"]}

    # -- candles --------------------------------------------------------------------
    def save_candles(self, candles: pd.DataFrame, exchange: str, symbol: str,
                     timeframe: str) -> int:
        """Write candles; rows whose key exists take the new values (idempotent).

        The batch is validated first and written in one transaction: all of it
        or nothing.

        Parameters
        ----------
        candles
            ``open high low close volume trade_count`` (optional ``vwap``),
            indexed (or with a column) ``ts`` = tz-aware close time.
        exchange, symbol, timeframe
            The series, e.g. ``"binance"``, ``"BTC/USDT"``, ``"1m"``.

        Returns
        -------
        int
            The number of candles written.

        Raises
        ------
        DataError
            Anything :func:`tcp_lab.timeframes.validate_candles` rejects (NaN or
            negative values, high < low, naive or off-grid times, duplicate
            keys, a bad timeframe); nothing is written.

        Examples
        --------
        >>> store.save_candles(candles, "binance", "BTC/USDT", "1m")  # doctest: +SKIP
        1440
        """
        exchange, symbol = check_name(exchange, "exchange"), check_name(symbol, "symbol")
        df = validate_candles(candles, timeframe, name=f"candles for {symbol} {timeframe}")
        tf = parse_timeframe(timeframe)
        if df.empty:
            return 0
        data = {"ts": df.index.asi8}  # µs since the epoch: validate_candles normalised it
        data |= {c: df[c].to_numpy() for c in CANDLE_COLUMNS}
        data["vwap"] = df["vwap"].to_numpy() if "vwap" in df.columns else np.full(len(df), np.nan)
        self._backend.bulk_upsert(
            S.market_data, {"exchange": exchange, "symbol": symbol, "timeframe": tf.name},
            data, update=True)
        return len(df)

    def _series(self, exchange: str, symbol: str, timeframe: str) -> list[sa.ColumnElement[bool]]:
        t = S.market_data.c
        return [t.exchange == check_name(exchange, "exchange"),
                t.symbol == check_name(symbol, "symbol"),
                t.timeframe == parse_timeframe(timeframe).name]

    def load_candles(self, exchange: str, symbol: str, timeframe: str,
                     start: object = None, end: object = None) -> pd.DataFrame:
        """Read candles with ``start <= ts <= end`` (close times), ordered by time.

        Parameters
        ----------
        exchange, symbol, timeframe
            The series.
        start, end
            Optional tz-aware bounds, inclusive (naive values are rejected).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``ts`` (``datetime64[us, UTC]``), columns ``open high low
            close volume trade_count``, plus ``vwap`` when any row has one.
            Empty (same columns) when nothing matches.

        Examples
        --------
        >>> store.load_candles("binance", "BTC/USDT", "1m",
        ...                    start="2024-03-01T00:00Z")  # doctest: +SKIP
        """
        where = self._series(exchange, symbol, timeframe)
        where += time_range(S.market_data.c.ts, start, end)
        df = self._backend.read_frame(S.market_data, _CANDLE_READ, where, ["ts"])
        if df.empty:
            return empty_candles()
        df = df.set_index(pd.DatetimeIndex(df.pop("ts"), name="ts").astype(TS_DTYPE))
        df = df.astype({c: "float64" for c in df.columns} | {"trade_count": "int64"})
        if df["vwap"].isna().all():
            df = df.drop(columns="vwap")
        return df

    def latest_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Close time of the newest stored candle of the series, or None."""
        stmt = sa.select(sa.func.max(S.market_data.c.ts)).where(
            *self._series(exchange, symbol, timeframe))
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False, what="read market_data")
        return from_db_time(rows[0][0])

    def list_series(self) -> pd.DataFrame:
        """Every stored candle series with its size and time span.

        Returns
        -------
        pandas.DataFrame
            Columns ``exchange symbol timeframe candles first last``, one row per
            series, ordered by exchange, symbol and timeframe length.
        """
        t = S.market_data.c
        stmt = (sa.select(t.exchange, t.symbol, t.timeframe, sa.func.count(), sa.func.min(t.ts),
                          sa.func.max(t.ts))
                .group_by(t.exchange, t.symbol, t.timeframe))
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False, what="list series")
        df = pd.DataFrame(
            {
                "exchange": pd.array([r[0] for r in rows], dtype="str"),
                "symbol": pd.array([r[1] for r in rows], dtype="str"),
                "timeframe": pd.array([r[2] for r in rows], dtype="str"),
                "candles": np.array([r[3] for r in rows], dtype="int64"),
                "first": pd.DatetimeIndex([from_db_time(r[4]) for r in rows], dtype=TS_DTYPE),
                "last": pd.DatetimeIndex([from_db_time(r[5]) for r in rows], dtype=TS_DTYPE),
            }
        )
        seconds = [parse_timeframe(tf).seconds for tf in df["timeframe"]]
        order = sorted(range(len(df)), key=lambda i: (df["exchange"][i], df["symbol"][i],
                                                      seconds[i]))
        return df.iloc[order].reset_index(drop=True)

    # -- raw trades -----------------------------------------------------------------
    def save_raw_trades(self, trades: pd.DataFrame | Mapping[str, Any], exchange: str,
                        symbol: str) -> int:
        """Write market trades; a trade already stored (same id and time) is kept as is.

        Parameters
        ----------
        trades
            Columns ``ts`` (tz-aware), ``id`` (the exchange's trade id),
            ``price``, ``amount`` and optionally ``side`` (``"buy"``/``"sell"``).
            Or a mapping of arrays with ``ts`` as int64 epoch microseconds (UTC):
            with ids strictly increasing, as an exchange's dump has them, it is
            checked and written without building a frame (the fast path of
            ``tcp-lab data import``).

        Returns
        -------
        int
            The number of distinct trades in the batch.

        Raises
        ------
        DataError
            Missing columns, naive times, NaN or non-positive prices, negative
            amounts, an unknown side, one id with two different rows; nothing
            is written.
        """
        exchange, symbol = check_name(exchange, "exchange"), check_name(symbol, "symbol")
        data = trade_columns(trades, name=f"trades for {exchange} {symbol}")
        n = len(data["ts"])
        if n:
            self._backend.insert_missing(S.raw_trades, {"exchange": exchange, "symbol": symbol},
                                         data, within="id")
        return n

    def bounded_memory(self, limit: str = "512MB") -> contextlib.AbstractContextManager[None]:
        """Keep the database engine's caches under ``limit`` while streaming a long read
        (DuckDB; a server database is left alone)."""
        return self._backend.bounded_memory(limit)

    def load_trade_prices(self, exchange: str, symbol: str, start: object = None,
                          end: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times, prices and amounts of the stored trades with ``start < ts <= end``, in
        (ts, id) order.

        What a trades-resolved backtest reads, one chunk of candles at a time:
        arrays (``ts`` as int64 epoch microseconds, UTC; ``price`` and
        ``amount`` as float64), no frame, no ids or sides. ``start`` is
        exclusive, as a candle stamped T holds the trades in ``(T_prev, T]``.
        """
        t = S.raw_trades.c
        lo = None if start is None else utc(start, "start") + pd.Timedelta(microseconds=1)
        where = [t.exchange == check_name(exchange, "exchange"),
                 t.symbol == check_name(symbol, "symbol"), *time_range(t.ts, lo, end)]
        got = self._backend.read_arrays(S.raw_trades, ["ts", "price", "amount"], where,
                                        ["ts", "id"])
        return (np.ascontiguousarray(got["ts"], dtype=np.int64),
                np.ascontiguousarray(got["price"], dtype=np.float64),
                np.ascontiguousarray(got["amount"], dtype=np.float64))

    def load_raw_trades(self, exchange: str, symbol: str, start: object = None,
                        end: object = None) -> pd.DataFrame:
        """Read market trades with ``start <= ts <= end``, ordered by (ts, id).

        Returns
        -------
        pandas.DataFrame
            Columns ``ts`` (``datetime64[us, UTC]``), ``id`` (int64), ``price``,
            ``amount``, ``side``.
        """
        t = S.raw_trades.c
        where = [t.exchange == check_name(exchange, "exchange"),
                 t.symbol == check_name(symbol, "symbol"), *time_range(t.ts, start, end)]
        df = self._backend.read_frame(S.raw_trades, TRADE_COLUMNS, where, ["ts", "id"])
        return pd.DataFrame({
            "ts": pd.DatetimeIndex(df["ts"]).astype(TS_DTYPE),
            "id": df["id"].to_numpy(dtype="int64"),
            "price": df["price"].to_numpy(dtype="float64"),
            "amount": df["amount"].to_numpy(dtype="float64"),
            "side": pd.array(df["side"].where(df["side"].notna(), None).to_numpy(dtype=object),
                             dtype="str"),
        })
