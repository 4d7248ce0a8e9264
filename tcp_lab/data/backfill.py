"""Backfill candle history page by page: plan the ranges, fetch, store, show progress.

A backfill covers a *closed* range of candles: from the first candle holding
trades after ``since`` to the last candle closed by ``until`` (and by the
exchange's clock: the candle still forming is never stored). It resumes from
what is stored: only the ranges before the first and after the last stored
candle of each series are fetched (holes in between are ``tcp-lab data check
--repair``'s job). Each page is stored as soon as it arrives, so an interrupted
backfill keeps everything received and the next run resumes after it.

Slots a page reports empty (no trades: no candle is stored) are recorded as
*quiet* in the store when they lie between two candles of the series, so the
data check counts them as explained (:mod:`tcp_lab.data.quality`). Empty slots
before a series' first candle (e.g. before the market listed) or after its last
one (the newest slots, which an exchange may still be filling in) are not
recorded; a later backfill or repair confirms them once candles surround them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from tcp_lab.data.providers.base import CandlePage, Provider
from tcp_lab.errors import ConfigError, ServiceError, TcpLabError
from tcp_lab.timeframes import TS_DTYPE, Timeframe, parse_timeframe, to_utc_timestamp

__all__ = [
    "run_backfill",
    "Rest",
    "SeriesBackfill",
    "BackfillSummary",
    "first_close_after",
    "last_close_by",
    "plan_ranges",
    "backfill_range",
    "compress_ranges",
]

T = TypeVar("T")
#: ``rest(fn, what)``: call a provider method with the collector's retry policy.
Rest = Callable[[Callable[[], T], str], T]
_NO_TS = pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts")
_PROGRESS_MIN = 10_000  # grid slots from which a backfill shows a progress bar by default
log = logging.getLogger("tcp_lab.data.collector")


def _ts(us: int) -> pd.Timestamp:
    return pd.Timestamp(int(us), unit="us", tz="UTC")


def first_close_after(since: Any, timeframe: str | Timeframe) -> pd.Timestamp:
    """Close time of the first candle holding only trades after ``since``.

    Examples
    --------
    >>> str(first_close_after("2024-01-01T00:00Z", "1h"))
    '2024-01-01 01:00:00+00:00'
    >>> str(first_close_after("2024-01-01T00:10Z", "1h"))
    '2024-01-01 01:00:00+00:00'
    """
    tf = parse_timeframe(timeframe)
    us = to_utc_timestamp(since, name="since").value // 1000
    return _ts(us // tf.us * tf.us + tf.us)


def last_close_by(until: Any, timeframe: str | Timeframe) -> pd.Timestamp:
    """Close time of the last candle closed at ``until`` (a candle closing at ``until`` counts).

    Examples
    --------
    >>> str(last_close_by("2024-01-01T00:59:59Z", "1h"))
    '2024-01-01 00:00:00+00:00'
    """
    tf = parse_timeframe(timeframe)
    us = to_utc_timestamp(until, name="until").value // 1000
    return _ts(us // tf.us * tf.us)


def plan_ranges(first: pd.Timestamp, last: pd.Timestamp, stored: tuple | None,
                timeframe: str | Timeframe) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The ``(start, end)`` close-time ranges to fetch so ``[first, last]`` is covered.

    ``stored`` is ``(first_stored, last_stored)`` or None. Only what lies
    outside the stored span is fetched.

    Examples
    --------
    >>> t = lambda s: pd.Timestamp(s, tz="UTC")
    >>> [(str(a.time()), str(b.time())) for a, b in plan_ranges(
    ...     t("2024-01-01 00:01"), t("2024-01-01 00:10"),
    ...     (t("2024-01-01 00:03"), t("2024-01-01 00:05")), "1m")]
    [('00:01:00', '00:02:00'), ('00:06:00', '00:10:00')]
    """
    tf = parse_timeframe(timeframe).delta
    if last < first:
        return []
    if stored is None:
        return [(first, last)]
    lo, hi = stored
    out = []
    if first < lo:
        out.append((first, min(last, lo - tf)))
    if hi + tf <= last:
        out.append((max(first, hi + tf), last))
    return [(a, b) for a, b in out if a <= b]


def compress_ranges(stamps: pd.DatetimeIndex, timeframe: str | Timeframe
                    ) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Consecutive grid stamps as ``(first, last, count)`` runs.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01 00:01", "2024-01-01 00:02", "2024-01-01 00:05"],
    ...                        tz="UTC")
    >>> [(str(a.time()), str(b.time()), n) for a, b, n in compress_ranges(idx, "1m")]
    [('00:01:00', '00:02:00', 2), ('00:05:00', '00:05:00', 1)]
    """
    if len(stamps) == 0:
        return []
    tf = parse_timeframe(timeframe)
    us = np.unique(stamps.as_unit("us").asi8)
    breaks = np.flatnonzero(np.diff(us) != tf.us) + 1
    return [(_ts(run[0]), _ts(run[-1]), len(run)) for run in np.split(us, breaks)]


@dataclass
class SeriesBackfill:
    """What a backfill did for one series.

    Attributes
    ----------
    symbol, timeframe
        The series.
    first, last
        First and last close time fetched (after resuming from the stored
        candles and clipping to the exchange clock); None when up to date.
    stored
        Candles written.
    requests
        Pages fetched.
    empty
        Close times the exchange confirmed as empty (no trades).
    complete
        False when the backfill was stopped before covering its ranges.
    note
        Why nothing was fetched, when that is not "up to date".
    """

    symbol: str
    timeframe: str
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    stored: int = 0
    requests: int = 0
    empty: pd.DatetimeIndex = field(default_factory=lambda: _NO_TS)
    complete: bool = True
    note: str = ""


@dataclass
class BackfillSummary:
    """What :meth:`DataCollector.backfill` did, per series.

    Attributes
    ----------
    exchange
        The exchange id.
    series
        One :class:`SeriesBackfill` per (symbol, timeframe).
    seconds
        Wall time.
    interrupted
        True when Ctrl-C or :meth:`stop` ended it early (what arrived is stored).
    """

    exchange: str
    series: list[SeriesBackfill] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def candles(self) -> int:
        """Candles written in all."""
        return sum(s.stored for s in self.series)

    @property
    def requests(self) -> int:
        """Pages fetched in all."""
        return sum(s.requests for s in self.series)

    def to_frame(self) -> pd.DataFrame:
        """One row per series: symbol, timeframe, first, last, stored, requests, empty."""
        return pd.DataFrame([{"symbol": s.symbol, "timeframe": s.timeframe, "first": s.first,
                              "last": s.last, "stored": s.stored, "requests": s.requests,
                              "empty": len(s.empty), "complete": s.complete}
                             for s in self.series])

    def detail(self) -> dict[str, Any]:
        """A JSON-ready digest (for the ``collector.backfill_done`` event)."""
        return {"exchange": self.exchange, "candles": self.candles, "requests": self.requests,
                "seconds": round(self.seconds, 3), "interrupted": self.interrupted,
                "series": [{"symbol": s.symbol, "timeframe": s.timeframe, "stored": s.stored,
                            "first": None if s.first is None else s.first.isoformat(),
                            "last": None if s.last is None else s.last.isoformat()}
                           for s in self.series]}

    def __str__(self) -> str:
        word = "interrupted" if self.interrupted else "done"
        lines = [f"backfill {word}: {self.candles:,} candles in {self.requests:,} requests, "
                 f"{self.seconds:.1f} s"]
        for s in self.series:
            span = (s.note or "up to date" if s.first is None or s.last is None
                    else f"{s.first:%Y-%m-%d %H:%M} .. {s.last:%Y-%m-%d %H:%M}")
            lines.append(f"  {s.symbol:<12} {s.timeframe:>4}  {s.stored:>9,} stored  {span}")
        return "\n".join(lines)


class _QuietSlots:
    """Which empty slots of a range's pages to record as quiet: those between candles.

    Pages come in time order. An empty slot after a candle (stored before the
    range, or received) waits until a later candle (received, or stored after the
    range) closes it in.
    """

    def __init__(self, sink: Any, symbol: str, timeframe: str, *, stored_before: bool) -> None:
        self.sink, self.symbol, self.timeframe = sink, symbol, timeframe
        self.seen = stored_before
        self.pending = _NO_TS

    def page(self, candles: pd.DatetimeIndex, empty: pd.DatetimeIndex) -> None:
        if not len(candles):
            if self.seen and len(empty):
                self.pending = self.pending.append(empty)
            return
        first, last = candles.min(), candles.max()
        inside = empty[(empty < last) & ((empty > first) | self.seen)]
        self._record(self.pending.append(inside))
        self.pending, self.seen = empty[empty > last], True

    def close(self) -> None:
        """The range ended before a stored candle: what waits is between candles."""
        self._record(self.pending)
        self.pending = _NO_TS

    def _record(self, slots: pd.DatetimeIndex) -> None:
        if len(slots):
            self.sink.save_quiet(slots, self.symbol, self.timeframe)


def backfill_range(provider: Provider, sink: Any, symbol: str, timeframe: str,
                   start: pd.Timestamp, end: pd.Timestamp, *, rest: Rest,
                   stop: threading.Event | None = None, progress: Any = None,
                   on_page: Callable[[CandlePage], None] | None = None,
                   publish_after: pd.Timestamp | None = None,
                   corrected: bool = False, result: SeriesBackfill | None = None,
                   stored_before: bool = False, stored_after: bool = False
                   ) -> SeriesBackfill:
    """Fetch and store the candles closing in ``[start, end]``, page by page.

    Parameters
    ----------
    provider
        Where the candles come from.
    sink
        A :class:`tcp_lab.data._sink.Sink` (stores, and publishes when asked).
    symbol, timeframe
        The series.
    start, end
        Close times on the timeframe's grid; ``end`` must be closed.
    rest
        The retrying caller of provider methods.
    stop
        Set it to stop between pages.
    progress
        A tqdm bar advanced by the grid slots covered.
    on_page
        Called with each page after it was stored.
    publish_after
        Candles closing after this time are also published (live catch-up).
    corrected
        Publish them flagged ``corrected=True`` (a repair of published candles).
    result
        Accumulate into this record instead of a new one.
    stored_before, stored_after
        A candle of the series is stored before ``start`` / after ``end`` (a
        resume, a repair): the empty slots next to it are between candles too,
        and recorded as quiet (see the module docstring).

    Raises
    ------
    ServiceError
        The exchange stayed unreachable (after retries) or made no progress.
    """
    tf = parse_timeframe(timeframe)
    out = result or SeriesBackfill(symbol, tf.name, start, end)
    quiet = _QuietSlots(sink, symbol, tf.name, stored_before=stored_before)
    cursor = start
    while cursor <= end:
        if stop is not None and stop.is_set():
            out.complete = False
            break
        at = cursor
        try:
            page = rest(lambda at=at: provider.fetch_candles(symbol, tf.name, at, end),
                        f"fetch {tf.name} candles of {symbol}")
        except TcpLabError:
            if stop is not None and stop.is_set():  # stopped while waiting to retry
                out.complete = False
                break
            raise
        out.requests += 1
        candles = page.candles
        if publish_after is not None and len(candles):
            live = candles.index > publish_after
            out.stored += sink.save_candles(candles.loc[~live], symbol, tf.name)
            out.stored += sink.save_candles(candles.loc[live], symbol, tf.name, publish=True,
                                            corrected=corrected)
        else:
            out.stored += sink.save_candles(candles, symbol, tf.name)
        if len(page.empty):
            out.empty = out.empty.append(page.empty) if len(out.empty) else page.empty
        quiet.page(candles.index, page.empty)
        if on_page is not None:
            on_page(page)
        if page.end < at:
            raise ServiceError(
                f"{provider.exchange} {symbol} {tf.name}: a page starting at {at} covered "
                f"nothing (ended at {page.end})",
                hint="the exchange has no data there yet; try a later --since")
        if progress is not None:
            progress.update(int((page.end - at) // tf.delta) + 1)
        cursor = page.end + tf.delta
    if stored_after and cursor > end:
        quiet.close()
    return out


def _stored_spans(store: Any, exchange: str) -> dict[tuple[str, str], tuple]:
    df = store.list_series()
    df = df.loc[df["exchange"] == exchange]
    return {(r.symbol, r.timeframe): (r.first, r.last) for r in df.itertuples()}


def _bar(total: int, progress: bool | None) -> Any:
    show = progress if progress is not None else total >= _PROGRESS_MIN
    if not show or total <= 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="candle", unit_scale=True, desc="backfill", mininterval=0.5)


def run_backfill(provider: Provider, sink: Any, symbols: list[str], timeframes: list[str],
                 since: Any, until: Any, *, rest: Rest, stop: threading.Event,
                 progress: bool | None = None) -> BackfillSummary:
    """Plan and run the backfill of every (symbol, timeframe); see :meth:`DataCollector.backfill`.

    Parameters
    ----------
    provider, sink, rest
        Where candles come from, where they go (``sink.store`` is read for
        what is stored), and the retrying caller of provider methods.
    symbols, timeframes
        The series.
    since, until
        Tz-aware bounds or None (see the module docstring).
    stop
        Set it to stop after the page in flight.
    progress
        Show a tqdm bar: True, False, None (when at least 10,000 candles are due).

    Raises
    ------
    ConfigError
        Unknown symbol or timeframe, ``since`` in the future, ``until`` before ``since``.
    ServiceError
        The exchange stayed unreachable.
    """
    t0 = time.monotonic()
    tfs = [parse_timeframe(t).name for t in timeframes]
    rest(lambda: provider.check(symbols, tfs), "check symbols")
    since_ts = None if since is None else to_utc_timestamp(since, name="since")
    now = rest(provider.now, "fetch the exchange time")
    if since_ts is not None and since_ts > now:
        raise ConfigError(f"since={since_ts} is in the future (the exchange's clock says {now})",
                          hint="pass a time in the past, or none to resume from the store")
    until_ts = now if until is None else min(to_utc_timestamp(until, name="until"), now)
    if since_ts is not None and until is not None and until_ts < since_ts:
        raise ConfigError(f"until={until_ts} is before since={since_ts}",
                          hint="pass an until after since (or none: up to now)")
    spans = _stored_spans(sink.store, provider.exchange)
    plan: list[tuple[SeriesBackfill, list]] = []
    for s in symbols:
        for tf in tfs:
            stored = spans.get((s, tf))
            first = (first_close_after(since_ts, tf) if since_ts is not None
                     else stored[1] + parse_timeframe(tf).delta if stored else None)
            ranges = [] if first is None else plan_ranges(first, last_close_by(until_ts, tf),
                                                           stored, tf)
            rec = SeriesBackfill(s, tf, ranges[0][0] if ranges else None,
                                 ranges[-1][1] if ranges else None)
            if first is None:
                rec.note = "skipped: nothing stored and no since"
                log.info("%s %s %s: %s", provider.exchange, s, tf, rec.note)
            plan.append((rec, ranges))
    slots = sum(int((b - a) // parse_timeframe(r.timeframe).delta) + 1
                for r, ranges in plan for a, b in ranges)
    summary = BackfillSummary(provider.exchange)
    bar = _bar(slots, progress)
    try:
        for rec, ranges in plan:
            stored = spans.get((rec.symbol, rec.timeframe))
            for a, b in ranges:
                if bar is not None:
                    bar.set_description(f"{rec.symbol} {rec.timeframe}")
                backfill_range(provider, sink, rec.symbol, rec.timeframe, a, b, rest=rest,
                               stop=stop, progress=bar, result=rec,
                               stored_before=stored is not None and stored[0] < a,
                               stored_after=stored is not None and stored[1] > b)
            summary.series.append(rec)
            if stop.is_set():
                summary.interrupted = True
                break
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.monotonic() - t0
    return summary
