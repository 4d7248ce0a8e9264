"""Candles for the front ends: from the store when it has the series, else synthetic.

Notebooks and panels call :func:`resolve_candles` so they run the same on a
machine with collected data and on a fresh clone (where they fall back to
:func:`tcp_lab.testing.make_candles`), and always say which they used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.errors import ConfigError, DataError, ServiceError
from tcp_lab.timeframes import parse_timeframe, to_utc_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.store import Store

__all__ = ["CandleSource", "resolve_candles", "store_candles", "store_candles_many", "list_series",
           "SOURCES"]

#: Values of ``source=``.
SOURCES = ("auto", "store", "synthetic")
_SYNTHETIC_START = "2024-01-01T00:00Z"


@dataclass(frozen=True)
class CandleSource:
    """Candles and where they came from.

    Attributes
    ----------
    candles
        The candle frame.
    origin
        ``"store"`` or ``"synthetic"``.
    description
        One line for the notebook's output, e.g. ``"store: binance BTC/USDT 1m,
        1440 candles …"`` or ``"synthetic: … (the store has no … candles)"``.
    exchange, symbol, timeframe
        The series asked for.
    """

    candles: pd.DataFrame
    origin: str
    description: str
    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return self.description


def _span(candles: pd.DataFrame) -> str:
    if candles.empty:
        return "0 candles"
    fmt = "%Y-%m-%d %H:%M"
    return (f"{len(candles)} candles {candles.index[0]:{fmt}} – {candles.index[-1]:{fmt}} UTC")


def _duckdb_file(url: str) -> Path | None:
    """The file behind a ``duckdb:///…`` URL (``None`` for other URLs and ``:memory:``)."""
    if not url.startswith("duckdb:///"):
        return None
    path = url[len("duckdb:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).expanduser()


def _open_store(url: str, lock_timeout: float) -> Store:
    """Open the store, waiting while another process holds the DuckDB file briefly.

    Batch runs read the embedded DuckDB file from several processes; DuckDB
    admits one at a time, so a run waits (up to ``lock_timeout`` seconds)
    for the others' short reads rather than failing.
    """
    from tcp_lab.store import open_store

    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            return open_store(url)
        except ServiceError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _store_url(store: str | None) -> str:
    if store is not None:
        return store
    from tcp_lab.settings import load_settings

    return load_settings().database_url


def _missing(url: str) -> bool:
    """A DuckDB file that does not exist yet (a fresh machine): do not create it."""
    file = _duckdb_file(url)
    return file is not None and not file.exists()


def _read(store: Store | str | None, read: Callable[[Store], pd.DataFrame],
          lock_timeout: float) -> tuple[pd.DataFrame | None, str]:
    """``read(store)`` and the store's URL; ``None`` for a DuckDB file that does not exist.

    ``store`` is a :class:`~tcp_lab.store.Store` (left open) or a database URL
    (default: the ``database_url`` setting; opened and closed again).
    """
    if store is not None and not isinstance(store, str):
        return read(store), store.url
    url = _store_url(store)
    if _missing(url):
        return None, f"{url} (no database file yet)"
    with _open_store(url, lock_timeout) as opened:
        return read(opened), opened.url


def store_candles(
    store: Store | str | None, exchange: str, symbol: str, timeframe: str,
    start: Any = None, end: Any = None, *, lock_timeout: float = 30.0,
) -> tuple[pd.DataFrame, str]:
    """Candles of a series from the store (empty when it has none) and the store's URL.

    ``store`` is a :class:`~tcp_lab.store.Store` (left open) or a database URL
    (default: the ``database_url`` setting; opened and closed again).
    """
    candles, url = _read(store, lambda s: s.load_candles(exchange, symbol, timeframe,
                                                         start=start, end=end), lock_timeout)
    return (pd.DataFrame() if candles is None else candles), url


def store_candles_many(
    store: Store | str | None, exchange: str, symbols: Sequence[str], timeframe: str,
    start: Any = None, end: Any = None, *, lock_timeout: float = 30.0,
) -> tuple[pd.DataFrame, str]:
    """Candles of several symbols in one read (:meth:`~tcp_lab.store.Store.load_candles_many`'s
    wide frame, accepted by :func:`~tcp_lab.portfolio.run_portfolio`) and the store's URL.

    Raises
    ------
    DataError
        A symbol has no candles in the range, or the DuckDB file does not exist yet.
    """
    wide, url = _read(store, lambda s: s.load_candles_many(exchange, symbols, timeframe,
                                                           start=start, end=end), lock_timeout)
    if wide is None:
        raise DataError(f"the store {url} has no {exchange} {timeframe} candles",
                        hint="collect them first (`tcp-lab collect`), or pass the candles directly")
    return wide, url


def list_series(store: Store | str | None = None, *, lock_timeout: float = 30.0) -> pd.DataFrame:
    """The store's candle series (``exchange symbol timeframe candles first last``).

    Empty, with those columns, when the DuckDB file does not exist yet.
    """
    series, _ = _read(store, lambda s: s.list_series(), lock_timeout)
    if series is None:
        return pd.DataFrame(columns=["exchange", "symbol", "timeframe", "candles", "first",
                                     "last"])
    return series


def resolve_candles(
    exchange: str = "binance",
    symbol: str = "BTC/USDT",
    timeframe: str = "1m",
    start: Any = None,
    end: Any = None,
    *,
    source: str = "auto",
    store: Store | str | None = None,
    n_synthetic: int = 3000,
    seed: int = 0,
    lock_timeout: float = 30.0,
) -> CandleSource:
    """Candles of a series: from the store if it has them, else synthetic.

    Parameters
    ----------
    exchange, symbol, timeframe
        The series, e.g. ``"binance"``, ``"BTC/USDT"``, ``"1m"``.
    start, end
        Optional UTC bounds on the close times (tz-aware, e.g.
        ``"2024-03-01T00:00Z"``). Synthetic candles start at ``start``.
    source
        ``"auto"`` (the store when it has candles in the range, else
        synthetic), ``"store"`` (fail without them) or ``"synthetic"``.
    store
        A :class:`~tcp_lab.store.Store` (left open) or database URL (default:
        the ``database_url`` setting). A DuckDB file that does not exist is
        not created.
    n_synthetic, seed
        Size and seed of the synthetic series (:func:`tcp_lab.testing.make_candles`).
    lock_timeout
        Seconds to wait while another process holds the DuckDB file.

    Returns
    -------
    CandleSource
        ``.candles``, ``.origin`` and a one-line ``.description``.

    Raises
    ------
    ConfigError
        An unknown ``source``.
    DataError
        ``source="store"`` and the store has no such candles; a bad time or
        timeframe.
    ServiceError
        The store cannot be reached (or stays locked).

    Examples
    --------
    >>> src = resolve_candles(source="synthetic", n_synthetic=100)
    >>> src.origin, len(src.candles)
    ('synthetic', 100)
    """
    if source not in SOURCES:
        raise ConfigError(f"resolve_candles: source={source!r}, expected one of {SOURCES}",
                          hint="'auto' uses the store when it has the series")
    tf = parse_timeframe(timeframe).name
    t0 = None if start in (None, "") else to_utc_timestamp(start, name="start")
    t1 = None if end in (None, "") else to_utc_timestamp(end, name="end")
    series = f"{exchange} {symbol} {tf}"
    reason = "synthetic candles were asked for"
    if source != "synthetic":
        candles, where = store_candles(store, exchange, symbol, tf, t0, t1,
                                       lock_timeout=lock_timeout)
        if len(candles):
            return CandleSource(candles, "store", f"store {where}: {series}, {_span(candles)}",
                                exchange, symbol, tf)
        span = f" between {t0 or '…'} and {t1 or '…'}" if t0 is not None or t1 is not None else ""
        reason = f"the store {where} has no {series} candles{span}"
        if source == "store":
            raise DataError(reason[0].upper() + reason[1:],
                            hint="collect them first, or use source='auto' or 'synthetic'")
    from tcp_lab.testing import make_candles

    candles = make_candles(n_synthetic, tf, start=t0 if t0 is not None else _SYNTHETIC_START,
                           seed=seed)
    if t1 is not None:
        candles = candles[candles.index <= t1]
    if len(candles) < 2:
        raise DataError(f"synthetic {series} candles: {len(candles)} between {t0} and {t1}",
                        hint="widen the range or raise n_synthetic")
    text = f"synthetic: make_candles({n_synthetic}, {tf!r}, seed={seed}), {_span(candles)} " \
           f"({reason})"
    return CandleSource(candles, "synthetic", text, exchange, symbol, tf)
