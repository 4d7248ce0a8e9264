"""A collection running in its own thread and event loop: status, stop, wait.

:meth:`tcp_lab.data.collector.DataCollector.start_background` returns a
:class:`CollectionHandle`. The thread first backfills the gap since the last
stored candle, then runs the live phase (:class:`tcp_lab.data.live.LiveEngine`)
in an event loop of its own, so it works from a script, a test, or a Jupyter
kernel whose loop is already running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.data.backfill import BackfillSummary
from tcp_lab.data.live import LiveEngine

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.data.collector import DataCollector

__all__ = ["CollectionHandle"]

log = logging.getLogger("tcp_lab.data.collector")


class CollectionHandle:
    """A collection running in a background thread (from :meth:`DataCollector.start_background`).

    Attributes
    ----------
    symbols, timeframes
        What is collected.
    """

    def __init__(self, collector: DataCollector, symbols: list[str], timeframes: list[str],
                 since: Any) -> None:
        self.collector, self.symbols, self.timeframes = collector, symbols, timeframes
        self._since = since
        self._stop = threading.Event()
        self._state = "starting"
        self._error: BaseException | None = None
        self._engine: LiveEngine | None = None
        self._backfill: BackfillSummary | None = None
        self._started = pd.Timestamp.now("UTC")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"tcp-lab-collector-{collector.exchange}")

    def __repr__(self) -> str:
        return (f"<CollectionHandle {self.collector.exchange} {','.join(self.symbols)} "
                f"{','.join(self.timeframes)}: {self._state}>")

    def _start(self) -> CollectionHandle:
        self._thread.start()
        return self

    def _main(self) -> None:
        c, sink = self.collector, None
        try:
            sink = c.sink  # may open the default bus: inside the try, so wait() hears of it
            sink.event("started", symbols=self.symbols, timeframes=self.timeframes,
                       since=None if self._since is None else str(self._since))
            self._state = "backfilling"
            self._backfill = c._backfill(self.symbols, self.timeframes, self._since, None,
                                         self._stop)
            if not self._stop.is_set():
                self._state = "live"
                self._engine = LiveEngine(
                    c.provider, sink, lambda fn, what: c.rest(fn, what, self._stop),
                    self.symbols, self.timeframes, self._stop, c.live_options)
                asyncio.run(self._engine.run())  # this thread's own loop
            self._state = "stopped"
        except BaseException as e:  # reported by wait() and status()
            self._error, self._state = e, "failed"
            log.error("collector:%s: collection failed: %s", c.exchange, e)
            if sink is not None:
                sink.event("error", message=str(e), error=type(e).__name__)
        finally:
            try:
                if sink is not None:
                    sink.event("stopped", state=self._state, **dict(sink.counts))
            finally:
                self._done.set()

    @property
    def running(self) -> bool:
        """Whether the collection thread is still working."""
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """State, times, counters per symbol and what was stored/published.

        Returns
        -------
        dict
            ``state`` (``starting``, ``backfilling``, ``live``, ``stopped``,
            ``failed``), ``exchange``, ``symbols``, ``timeframes``, ``started``,
            ``live_since`` and ``now`` (exchange clock), ``backfill`` (summary
            digest), ``feeds`` (per symbol: trades, candles, reconnects,
            trades_refilled, candles_from_rest, last_trade…), ``counts``
            (candles_stored, candles_published, trades_stored, events_published,
            publish_errors) and ``error``.
        """
        eng = self._engine
        return {
            "state": self._state, "exchange": self.collector.exchange,
            "symbols": list(self.symbols), "timeframes": list(self.timeframes),
            "started": self._started,
            "live_since": eng.live_started if eng else None, "now": eng.now if eng else None,
            "backfill": self._backfill.detail() if self._backfill else None,
            "feeds": eng.status() if eng else {},
            "counts": dict(self.collector._sink.counts) if self.collector._sink else {},
            "error": None if self._error is None else str(self._error),
        }

    #: the same as :meth:`status`
    metrics = property(status)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the collection to end (it ends by :meth:`stop`, or a finished replay).

        Raises
        ------
        TcpLabError
            The error that ended it (unknown symbol, store failure…).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():  # an Event: Ctrl-C while waiting stays clean
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                break
            self._done.wait(left)
        if self._done.is_set():
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.status()

    def stop(self, timeout: float | None = 60.0) -> dict[str, Any]:
        """Stop; store the closed candles and raw trades received so far; return the status."""
        self._stop.set()
        return self.wait(timeout)
