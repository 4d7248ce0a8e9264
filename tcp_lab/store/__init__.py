"""Storage: candles, raw trades and bot records behind one URL.

``open_store(url)`` picks the backend from the URL's scheme (a small
scheme → factory registry) and returns a :class:`Store` with the same API on
each:

==================================  =============================================
URL                                 backend
==================================  =============================================
``duckdb:///data/lab.duckdb``       DuckDB file, relative to the working directory
``duckdb:////abs/lab.duckdb``       DuckDB file, absolute path
``duckdb:///:memory:``              DuckDB in memory (private to that store)
``postgresql://u@host:5432/db``     PostgreSQL (also ``postgres://`` and
                                    ``postgresql+psycopg2://``); add
                                    ``?schema=NAME`` to keep the tables in a schema
==================================  =============================================

Nothing connects at import time.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from urllib.parse import urlsplit

from tcp_lab.errors import ConfigError
from tcp_lab.settings import redact_url
from tcp_lab.store._backend import Backend
from tcp_lab.store._bots import JsonText, bot_candle_record, portfolio_candle_record
from tcp_lab.store._universe import candles_of
from tcp_lab.store.store import Store

__all__ = ["open_store", "Store", "register_backend", "backend_schemes", "bot_candle_record",
           "portfolio_candle_record", "JsonText", "candles_of"]

BackendFactory = Callable[[str], Backend]


def _duckdb(url: str) -> Backend:
    from tcp_lab.store._duckdb import DuckDBBackend

    return DuckDBBackend(url)


def _postgres(url: str) -> Backend:
    from tcp_lab.store._postgres import PostgresBackend

    return PostgresBackend(url)


_BACKENDS: dict[str, BackendFactory] = {
    "duckdb": _duckdb,
    "postgresql": _postgres,
    "postgresql+psycopg2": _postgres,
    "postgres": _postgres,
}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make ``open_store`` hand URLs with ``scheme`` to ``factory(url) -> Backend``."""
    _BACKENDS[scheme] = factory


def backend_schemes() -> tuple[str, ...]:
    """The URL schemes ``open_store`` understands."""
    return tuple(_BACKENDS)


def open_store(url: str | None = None, *, init: bool = True) -> Store:
    """Open the store behind a database URL.

    Parameters
    ----------
    url
        ``duckdb:///file.duckdb``, ``duckdb:///:memory:`` or
        ``postgresql://user@host:5432/db[?schema=NAME]``. Default: the
        ``database_url`` setting (``TCP_LAB_DATABASE_URL``, else the DuckDB
        file in ``TCP_LAB_HOME``).
    init
        Apply any pending schema migrations (:meth:`Store.init_schema`) so the
        store is ready to use. Pass False to inspect a database as it is.

    Returns
    -------
    Store
        Close it (or use ``with``) when done.

    Raises
    ------
    ConfigError
        Unknown scheme or malformed URL.
    ServiceError
        The server is unreachable, refuses the credentials, or the DuckDB file
        is locked by another process.

    Examples
    --------
    >>> with open_store("duckdb:///:memory:") as store:
    ...     store.info()["backend"]
    'duckdb'
    """
    if url is None:
        from tcp_lab.settings import load_settings

        url = load_settings().database_url
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"database URL {redact_url(str(url))!r} has no scheme",
                          hint="use duckdb:///file.duckdb or postgresql://user@host/db")
    scheme = urlsplit(url.strip()).scheme.lower()
    factory = _BACKENDS.get(scheme)
    if factory is None:
        guess = difflib.get_close_matches(scheme, list(_BACKENDS), n=1)
        did_you_mean = f" (did you mean {guess[0]}://?)" if guess else ""
        raise ConfigError(
            f"database URL {redact_url(url)!r}: unknown scheme {scheme!r}{did_you_mean}",
            hint="supported: " + ", ".join(f"{s}://" for s in _BACKENDS),
        )
    store = Store(factory(url.strip()))
    if init:
        try:
            store.init_schema()
        except BaseException:
            store.close()
            raise
    return store
