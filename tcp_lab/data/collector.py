"""The data collector: backfill candle history, then follow live trades.

>>> from tcp_lab.data.collector import DataCollector
>>> with DataCollector(exchange="binance") as collector:              # doctest: +SKIP
...     collector.backfill("BTC/USDT,ETH/USDT", "1m,5m,1h", since="2024-01-01T00:00Z")
...     handle = collector.start_background("BTC/USDT", "1m,5m")     # notebooks: a thread
...     handle.status()["state"]
'live'

The same from the command line: ``tcp-lab collect --exchange binance --symbols
BTC/USDT,ETH/USDT --timeframes 1m,5m,1h --since 2024-01-01`` (add ``--until``
to backfill a closed range and exit, ``--exchange-url`` to use the emulator).

Where data comes from is a *provider* (:mod:`tcp_lab.data.providers`):
``"ccxt"`` (default; REST klines and trades, ccxt.pro websockets) or
``"replay"`` (files), or one added with ``register_provider``.

What is stored and published
----------------------------
- **History** (:meth:`DataCollector.backfill`, and the start of every
  collection) comes from exchange klines, converted to close time at the
  provider boundary; a kline covers ``[open, open + tf)`` while tcp_lab's rule
  is ``(T - tf, T]``, which differs only for a trade exactly on a boundary
  millisecond: accepted. Klines without trades are not stored (a candle with
  no trades is absent); the candle still forming is never stored. History is
  **not published candle by candle** (bots read it from the store); each
  backfill publishes one ``collector.backfill_done`` event.
- **Live** candles are aggregated from trades by tcp_lab's rule
  (:mod:`tcp_lab.data.live`), stored, then published on ``market:{symbol}``;
  a candle re-written after late trades is published with ``corrected=True``.
  The first candle of each timeframe after the live feed starts (or restarts)
  is incomplete: it is fetched as a kline once closed, and published, instead
  of being built from a partial bucket.
- **Live trades** go out on ``trades:{symbol}`` in numbered batches (every
  200 ms, and just before each candle: a candle's trades come first), only
  while that channel has a subscriber (asked at most once a second); bots
  with stops and targets listen there (:mod:`tcp_lab.data.live`).
- **Events** on ``system:events``: ``collector.started``,
  ``collector.backfill_done``, ``collector.reconnected``,
  ``collector.gap_backfilled``, ``collector.stopped``, ``collector.error``.

Faults: every network fault, timeout, rate limit (``Retry-After`` is obeyed,
on top of ccxt's own rate limiter), 5xx and malformed answer is retried with
exponential backoff and jitter; an unknown symbol or refused credentials is a
:class:`~tcp_lab.errors.ConfigError` at once. Ctrl-C (or :meth:`stop`) stores
everything received so far: closed candles and raw trades.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd

from tcp_lab.data._sink import Sink
from tcp_lab.data.backfill import BackfillSummary, run_backfill
from tcp_lab.data.handle import CollectionHandle
from tcp_lab.data.live import LiveOptions
from tcp_lab.data.providers.base import Provider, TransientError, make_provider
from tcp_lab.data.quality import SeriesCheck, check_store, repair_series
from tcp_lab.data.sources import source_note
from tcp_lab.errors import ConfigError, ServiceError
from tcp_lab.retry import Backoff, call_with_retry
from tcp_lab.timeframes import parse_timeframe

__all__ = ["DataCollector", "CollectionHandle", "parse_list"]

log = logging.getLogger("tcp_lab.data.collector")
#: REST retry policy: 0.5 s, 1 s, 2 s, … up to 30 s, 6 tries in all.
DEFAULT_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0, jitter=0.5, attempts=6)


def parse_list(value: str | list[str] | tuple[str, ...], what: str) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` as a list without blanks or repeats.

    Examples
    --------
    >>> parse_list("BTC/USDT, ETH/USDT", "symbols")
    ['BTC/USDT', 'ETH/USDT']
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out = list(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
    if not out:
        raise ConfigError(f"no {what} given", hint=f"pass e.g. {what}='BTC/USDT,ETH/USDT'"
                          if what == "symbols" else f"pass e.g. {what}='1m,5m,1h'")
    return out


class DataCollector:
    """Backfill and collect candles (and raw trades) from one exchange.

    Parameters
    ----------
    store
        A :class:`~tcp_lab.store.Store`, a database URL, or None for the
        ``database_url`` setting. Stores opened here are closed by :meth:`close`.
    bus
        A :class:`~tcp_lab.bus.Bus`, a bus URL, None for the ``redis_url``
        setting (opened on first use), or False to publish nothing.
    provider
        ``"ccxt"`` (default), ``"replay"``, a registered name, or a provider object.
    exchange
        ccxt exchange id (ignored when ``provider`` is an object: its own is used).
    exchange_url
        Base URL of the exchange emulator (offline runs); None: the real exchange.
    store_raw_data
        Also store every live trade (``store.save_raw_trades``).
    provider_options
        Extra keyword arguments of the provider factory, e.g.
        ``{"config": {"timeout": 3000}}`` for ccxt or ``{"sources": {...}}`` for replay.
    backoff
        REST retry policy (default: 0.5 s doubling to 30 s, 6 tries).
    close_delay
        How long after its end (exchange time) a live candle is closed without a
        later trade, so in-flight trades still count (default ``"2s"``).
    tick_interval
        Seconds between reads of the exchange clock in the live phase.
    late_window
        How late a trade may arrive and still correct its candle (default ``"5m"``).
    max_refill
        Largest live-trade gap (in trades) filled by REST; larger gaps restart
        the candles from klines.
    progress
        Show a tqdm bar during backfills: True, False, or None (only long ones).

    Examples
    --------
    >>> collector = DataCollector("duckdb:///lab.duckdb", bus=False,
    ...                           exchange_url="http://127.0.0.1:8765")   # doctest: +SKIP
    >>> collector.backfill("BTC/USDT", "1m", since="2024-01-01T00:00Z")  # doctest: +SKIP
    """

    def __init__(self, store: Any = None, bus: Any = None, provider: str | Provider | None = None,
                 *, exchange: str = "binance", exchange_url: str | None = None,
                 store_raw_data: bool = False, provider_options: dict[str, Any] | None = None,
                 backoff: Backoff | None = None, close_delay: Any = "2s",
                 tick_interval: float = 1.0, late_window: Any = "5m", max_refill: int = 50_000,
                 progress: bool | None = None) -> None:
        options = dict(provider_options or {})
        if isinstance(provider, str) or provider is None:
            options.setdefault("exchange", exchange)
            options.setdefault("exchange_url", exchange_url)
        self.provider: Provider = make_provider(provider, **options)
        self.exchange = self.provider.exchange
        self._own: list[Any] = []
        try:
            self.store = self._open_store(store)
        except BaseException:
            self.provider.close()
            raise
        self._bus_arg = bus
        self._bus: Any = None
        self._sink: Sink | None = None
        self.backoff = backoff or DEFAULT_BACKOFF
        self.store_raw_data = bool(store_raw_data)
        self.progress = progress
        if isinstance(close_delay, int | float) and not isinstance(close_delay, bool):
            close_delay = pd.Timedelta(seconds=close_delay)
        self.live_options = LiveOptions(
            close_delay=pd.Timedelta(close_delay), tick_interval=float(tick_interval),
            late_window=late_window, max_refill=int(max_refill), store_raw=self.store_raw_data)
        self._lock = threading.Lock()
        self._closed = False
        self._handles: list[CollectionHandle] = []

    def __repr__(self) -> str:
        return f"DataCollector({self.provider!r}, store={self.store!r})"

    # ------------------------------------------------------------------ resources
    def _open_store(self, store: Any) -> Any:
        if store is None or isinstance(store, str):
            from tcp_lab.store import open_store

            opened = open_store(store)
            self._own.append(opened)
            return opened
        return store

    @property
    def sink(self) -> Sink:
        """Where data goes (opens the default bus on first use)."""
        with self._lock:
            if self._sink is None:
                bus = self._bus_arg
                if bus is None or isinstance(bus, str):
                    from tcp_lab.bus import open_bus

                    bus = open_bus(bus)
                    self._own.append(bus)
                elif bus is False:
                    bus = None
                self._bus = bus
                self._sink = Sink(self.store, bus, self.exchange, f"collector:{self.exchange}",
                                  origin=getattr(self.provider, "source", None))
            return self._sink

    def close(self) -> None:
        """Close the provider, and the store and bus this collector opened (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for handle in self._handles:  # a collection still running stops (and stores) first
            if handle.running:
                handle.stop()
        self.provider.close()
        for thing in reversed(self._own):
            thing.close()

    def __enter__(self) -> DataCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ REST with retries
    def rest(self, fn: Any, what: str, stop: threading.Event | None = None) -> Any:
        """Call a provider method with the retry policy (``Retry-After`` obeyed).

        Raises
        ------
        ServiceError
            Still failing after ``backoff.attempts`` tries (or stopped meanwhile).
        """
        try:
            return call_with_retry(
                fn, backoff=self.backoff, what=f"{self.exchange}: {what}", logger=log,
                retry_if=lambda e: isinstance(e, TransientError),
                wait_for=lambda e: getattr(e, "retry_after", None), stop=stop)
        except TransientError as e:
            tries = "stopped" if stop is not None and stop.is_set() else \
                f"gave up after {self.backoff.attempts} tries"
            raise ServiceError(f"{e.message} ({tries})",
                               hint="the exchange is unreachable or limiting requests; "
                                    "retry later") from e

    # ------------------------------------------------------------------ backfill
    def backfill(self, symbols: Any, timeframes: Any, since: Any = None,
                 until: Any = None) -> BackfillSummary:
        """Fetch and store the closed candles from ``since`` to ``until``.

        Resumes from what is stored: for each series only what lies before the
        first and after the last stored candle is fetched. Each page is stored
        as it arrives; Ctrl-C stops after the page in flight and returns the
        summary with ``interrupted=True``.

        Parameters
        ----------
        symbols
            ``"BTC/USDT,ETH/USDT"`` or a list.
        timeframes
            ``"1m,5m,1h"`` or a list.
        since
            Tz-aware start: the first candle holds trades after it. None: only
            resume series that have stored candles.
        until
            Tz-aware end: the last candle closes at or before it (default: now,
            by the exchange's clock; the forming candle is never stored).

        Returns
        -------
        BackfillSummary
            Per series: range, candles stored, requests, confirmed-empty slots.

        Raises
        ------
        ConfigError
            Unknown symbol or timeframe, ``until`` before ``since``.
        ServiceError
            The exchange stayed unreachable after the retries.

        Examples
        --------
        >>> summary = collector.backfill("BTC/USDT", "1m,1h", since="2024-01-01T00:00Z",
        ...                              until="2024-01-02T00:00Z")   # doctest: +SKIP
        >>> print(summary)   # doctest: +SKIP
        """
        syms, tfs = parse_list(symbols, "symbols"), parse_list(timeframes, "timeframes")
        stop = threading.Event()
        box: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                box["summary"] = self._backfill(syms, tfs, since, until, stop)
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e
            finally:
                finished.set()

        worker = threading.Thread(target=work, name="tcp-lab-backfill", daemon=True)
        worker.start()
        interrupted = False
        while not finished.is_set():
            try:  # an Event, not join(): an interrupted join can leave the thread "dead"
                finished.wait(0.2)
            except KeyboardInterrupt:  # finish the page in flight, keep what arrived
                interrupted = True
                stop.set()
        worker.join()
        if "error" in box:
            raise box["error"]
        summary: BackfillSummary = box["summary"]
        summary.interrupted = summary.interrupted or interrupted
        return summary

    def _backfill(self, symbols: list[str], timeframes: list[str], since: Any, until: Any,
                  stop: threading.Event) -> BackfillSummary:
        summary = run_backfill(self.provider, self.sink, symbols, timeframes, since, until,
                               rest=lambda fn, what: self.rest(fn, what, stop), stop=stop,
                               progress=self.progress)
        self.sink.event("backfill_done", **summary.detail())
        return summary

    # ------------------------------------------------------------------ data check
    def check_data(self, symbol: str | None = None, timeframe: str | None = None, *,
                   repair: bool = False, max_jump: float | None = None) -> list[SeriesCheck]:
        """Check this exchange's stored series; with ``repair``, refetch what is missing.

        Parameters
        ----------
        symbol, timeframe
            Only these (default: every stored series of the exchange).
        repair
            Fetch the holes (missing slots not confirmed quiet) from this
            collector's exchange and check again: what it has is stored, what
            it reports empty is recorded as quiet, so the series checks clean
            next time. A series recorded as collected elsewhere (or with no
            recorded source) gets a one-line ``note`` saying so.
        max_jump
            Close-to-close change flagged as suspicious (default 25 %).

        Returns
        -------
        list of SeriesCheck
            See :mod:`tcp_lab.data.quality`.

        Examples
        --------
        >>> for check in collector.check_data(repair=True):   # doctest: +SKIP
        ...     print(check.summary())
        """
        kw = {} if max_jump is None else {"max_jump": float(max_jump)}
        checks = check_store(self.store, self.exchange, symbol, timeframe, **kw)
        if not repair:
            return checks
        if not any(c.holes for c in checks):
            return checks
        stop = threading.Event()
        rest = lambda fn, what: self.rest(fn, what, stop)  # noqa: E731
        # no origin: a repair keeps the source the series was collected from
        sink = Sink(self.store, None, self.exchange, f"collector:{self.exchange}")
        sources = self.store.load_series_sources(self.exchange)
        recorded = {(r.symbol, r.timeframe): r.source for r in sources.itertuples()}
        used = getattr(self.provider, "source", None) or repr(self.provider)
        return [repair_series(c, self.provider, sink, rest, **kw, note=source_note(
                    c.series, recorded.get((c.symbol, c.timeframe)), used))
                if c.holes else c for c in checks]

    # ------------------------------------------------------------------ live
    def start_background(self, symbols: Any, timeframes: Any, since: Any = None
                         ) -> CollectionHandle:
        """Backfill the gap, then follow live trades, in a background thread.

        The thread runs its own event loop, so this works where an event loop
        is already running (Jupyter) and never calls ``asyncio.run`` in the
        caller's thread.

        Parameters
        ----------
        symbols, timeframes
            As for :meth:`backfill`.
        since
            Backfill from here first (default: resume from the stored candles).

        Returns
        -------
        CollectionHandle
            ``.status()``, ``.stop()``, ``.wait()``.

        Examples
        --------
        >>> handle = collector.start_background("BTC/USDT", "1m,5m")   # doctest: +SKIP
        >>> handle.stop()["state"]   # doctest: +SKIP
        'stopped'
        """
        syms, tfs = parse_list(symbols, "symbols"), parse_list(timeframes, "timeframes")
        tfs = [parse_timeframe(t).name for t in tfs]
        if self._closed:
            raise ConfigError("this DataCollector is closed", hint="create a new one")
        handle = CollectionHandle(self, syms, tfs, since)
        self._handles.append(handle)
        return handle._start()

    def start_collection(self, symbols: Any, timeframes: Any, since: Any = None
                         ) -> dict[str, Any]:
        """Backfill the gap, then follow live trades until stopped (Ctrl-C, SIGTERM via the CLI).

        Blocks; everything received is stored before it returns. See
        :meth:`start_background` for the non-blocking form (notebooks).

        Returns
        -------
        dict
            The final :meth:`CollectionHandle.status`.

        Raises
        ------
        ConfigError, ServiceError
            As :meth:`CollectionHandle.wait`.
        """
        handle = self.start_background(symbols, timeframes, since)
        try:
            return handle.wait()
        except KeyboardInterrupt:
            return handle.stop()
