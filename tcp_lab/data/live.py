"""The live phase of the collector: trades in, closed candles out, gaps repaired.

One :class:`LiveEngine` runs in its own event loop (in the collector's thread).
Per symbol a task reads live trades from the provider and feeds a
:class:`~tcp_lab.data.streaming.StreamingAggregator`; a clock task asks the
exchange for its time every ``tick_interval`` seconds and closes the candles
that ended ``close_delay`` ago (quiet markets close candles too).

**Continuity.** Trades are de-duplicated by id. Where the exchange numbers its
trades consecutively (Binance), a jump in the ids (a dropped websocket message,
the time a reconnect took) is filled by REST (``fetch_trades(from_id=…)``)
before the trades after it are aggregated, so the candles are those of a
fault-free run. Where that is impossible (no consecutive ids, a gap larger than
``max_refill`` trades) the aggregator restarts: a new *segment*.

**Segments and REST candles.** A segment starts at its first trade. The first
candle of each timeframe whose bucket began before that trade is incomplete;
it is never stored from the aggregator. Instead, once it has closed, the
candles from the last stored one up to it are fetched as klines (the same
catch-up fills the gap left by an outage). On a finite provider without live
trades (candle replays) every tick catches up with the newly closed candles.

**Publishing.** Every candle that closes while the collector is live is
published once on ``market:{symbol}`` after it was stored (klines fetched by a
catch-up too); a candle re-written after late trades is published again with
``corrected=True``. History (closed before the live phase began) is not.

**Live trades** go out on ``trades:{symbol}`` in batches: at most every
``trades_interval`` seconds, and always just before a candle is handed to the
writer, through the same FIFO writer thread, so a candle's trades are
published before the candle. Each batch is numbered (``seq``) within its
*stream* (one per segment of one run), whether or not it is published, so a
subscriber can tell it missed one. The writer publishes a batch only while the
channel has a subscriber (see :class:`~tcp_lab.data._sink.Sink`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tcp_lab.data.backfill import Rest, backfill_range, last_close_by
from tcp_lab.data.providers.base import EndOfData, Provider, TransientError
from tcp_lab.data.streaming import ClosedCandle, StreamingAggregator
from tcp_lab.errors import ServiceError, TcpLabError
from tcp_lab.retry import Backoff, one_line
from tcp_lab.timeframes import close_time, parse_timeframe

__all__ = ["LiveEngine", "LiveOptions"]

log = logging.getLogger("tcp_lab.data.collector")
_HEAD_TRIES = 10  # ticks to wait for the kline of a segment's first bucket to appear


@dataclass(frozen=True)
class LiveOptions:
    """Knobs of the live phase (see :class:`tcp_lab.data.collector.DataCollector`)."""

    close_delay: pd.Timedelta = pd.Timedelta(seconds=2)
    tick_interval: float = 1.0
    late_window: str = "5m"
    max_refill: int = 50_000
    store_raw: bool = False
    trades_interval: float = 0.2
    reconnect: Backoff = Backoff(initial=0.5, maximum=30.0, jitter=0.5, attempts=1_000_000)


@dataclass
class _Symbol:
    symbol: str
    agg: StreamingAggregator | None = None
    last_id: int | None = None
    live_from: dict[str, pd.Timestamp] = field(default_factory=dict)
    submitted: dict[str, pd.Timestamp] = field(default_factory=dict)
    pending: dict[str, tuple[pd.Timestamp, pd.Timestamp, bool]] = field(default_factory=dict)
    heads: dict[str, pd.Timestamp] = field(default_factory=dict)  # non-empty, by REST
    raw: list[pd.DataFrame] = field(default_factory=list)
    outbox: list[pd.DataFrame] = field(default_factory=list)  # live trades not yet published
    stream: str = ""
    seq: int = 0
    reconnected: bool = False
    down_since: float | None = None
    done: bool = False
    last_trade: pd.Timestamp | None = None
    counts: Counter = field(default_factory=Counter)


class LiveEngine:
    """Follow live trades of ``symbols`` and turn them into stored, published candles.

    Parameters
    ----------
    provider, sink, rest
        Where data comes from, where it goes, and the retrying REST caller.
    symbols, timeframes
        What to follow.
    stop
        Set from any thread to stop; closed candles and raw trades received so
        far are stored before :meth:`run` returns.
    options
        :class:`LiveOptions`.
    """

    def __init__(self, provider: Provider, sink: Any, rest: Rest, symbols: list[str],
                 timeframes: list[str], stop: threading.Event, options: LiveOptions) -> None:
        self.provider, self.sink, self.rest, self.stop = provider, sink, rest, stop
        self.timeframes = [parse_timeframe(t).name for t in timeframes]
        self.opt = options
        self.symbols = {s: _Symbol(s) for s in symbols}
        self.live_started: pd.Timestamp | None = None
        self.now: pd.Timestamp | None = None
        self.error: BaseException | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._run_id = uuid.uuid4().hex[:12]  # names this run's trade streams

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """Per-symbol counters and times (a snapshot; safe from any thread)."""
        out = {}
        for s, st in list(self.symbols.items()):
            out[s] = {**st.counts, "last_trade": st.last_trade, "done": st.done,
                      "connected": st.down_since is None, "pending_catch_up": len(st.pending)}
        return out

    # ------------------------------------------------------------------ helpers
    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop.is_set() and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def _submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the single writer thread (FIFO: store order = submit order)."""
        assert self._writer is not None
        self._writer.submit(fn).add_done_callback(self._write_done)

    def _write_done(self, fut: Future) -> None:
        err = fut.exception()
        if err is not None and self.error is None:
            log.error("%s: writing failed: %s", self.sink.source, one_line(err))
            self.error = err
            self.stop.set()

    def _latest(self, symbol: str, tf: str) -> pd.Timestamp | None:
        return self.sink.store.latest_candle_ts(self.sink.exchange, symbol, tf)

    # ------------------------------------------------------------------ segments
    def _begin(self, st: _Symbol, first_ts: pd.Timestamp) -> None:
        """Start a segment at ``first_ts``: a new aggregator, REST for what precedes it."""
        self._flush_trades(st)  # the end of the previous segment, in its own stream
        st.stream, st.seq = f"{self.sink.source}/{self._run_id}/{st.counts['segments'] + 1}", 0
        st.agg = StreamingAggregator(self.timeframes, late_window=self.opt.late_window,
                                     name=f"{self.sink.exchange} {st.symbol} trades")
        for tf in self.timeframes:
            delta = parse_timeframe(tf).delta
            head = close_time(first_ts, tf)  # its bucket began before the first trade
            st.live_from[tf] = head + delta
            st.heads[tf] = head
            latest = self._latest(st.symbol, tf)
            done = max([t for t in (latest, st.submitted.get(tf)) if t is not None],
                       default=None)
            start = head if done is None else done + delta
            if start <= head:
                st.pending[tf] = (start, head, False)
        st.counts["segments"] += 1

    def _emit(self, st: _Symbol, closed: list[ClosedCandle]) -> None:
        if closed:  # a candle's trades are stored and published before the candle (bots)
            self._flush_raw(st)
            self._flush_trades(st, until=max(c.ts for c in closed))
        by_tf: dict[str, list[ClosedCandle]] = defaultdict(list)
        for c in closed:
            if c.ts >= st.live_from.get(c.timeframe, c.ts):
                by_tf[c.timeframe].append(c)
        for tf, cs in by_tf.items():
            frame = ClosedCandle.to_frame(cs, tf)
            corrected = {c.ts.value: c.corrected for c in cs}  # a later emission wins
            flags = pd.Series([corrected[t.value] for t in frame.index], index=frame.index)
            st.submitted[tf] = max(frame.index[-1], st.submitted.get(tf, frame.index[-1]))
            st.counts["candles"] += len(frame)
            self._submit(lambda f=frame, t=tf, g=flags, s=st.symbol: self.sink.save_candles(
                f, s, t, publish=True, corrected=g))

    def _flush_raw(self, st: _Symbol) -> None:
        if st.raw:
            batch, st.raw = pd.concat(st.raw, ignore_index=True), []
            self._submit(lambda: self.sink.save_trades(batch, st.symbol))

    def _flush_trades(self, st: _Symbol, until: pd.Timestamp | None = None) -> None:
        """Hand the live trades received since the last flush to the writer, as the next
        batch of the symbol's stream (published there if anyone listens).

        ``until``: the candles closing up to then are about to be published;
        the batch says that it completes their trades (even without a trade).
        """
        if self.sink.bus is not None and (st.outbox or until is not None):
            frames, st.outbox = st.outbox, []
            stream, seq, st.seq = st.stream, st.seq, st.seq + 1
            self._submit(lambda: self.sink.publish_trades(frames, st.symbol, stream=stream,
                                                          seq=seq, until=until))

    # ------------------------------------------------------------------ trades
    async def _refill(self, st: _Symbol, first: int, last: int) -> pd.DataFrame | None:
        """Trades ``first..last`` by REST, or None when that is not possible."""
        if last - first + 1 > self.opt.max_refill:
            return None
        parts, cursor = [], first
        try:
            while cursor <= last:
                at = cursor
                df = await asyncio.to_thread(self.rest, lambda at=at: self.provider.fetch_trades(
                    st.symbol, from_id=at, limit=1000), f"fetch trades of {st.symbol}")
                df = df.loc[df["id"] <= last]
                if df.empty:
                    return None
                parts.append(df)
                cursor = int(df["id"].iloc[-1]) + 1
        except TcpLabError as e:
            log.warning("%s: could not fetch trades %d..%d of %s: %s", self.sink.source,
                        first, last, st.symbol, one_line(e))
            return None
        out = pd.concat(parts, ignore_index=True)
        st.counts["trades_refilled"] += len(out)
        self.sink.event("gap_backfilled", symbol=st.symbol, kind="trades", trades=len(out),
                        from_id=first, to_id=last)
        return out

    async def _ingest(self, st: _Symbol, batch: pd.DataFrame) -> None:
        if batch.empty:
            return
        seq = "id" in batch.columns and self.provider.sequential_trade_ids
        if seq and st.last_id is not None:  # ids in time order: what we had is behind us
            batch = batch.loc[batch["id"] > st.last_id]
            if batch.empty:
                return
        if st.agg is not None:  # (elsewhere the aggregator drops repeated ids)
            broken = st.reconnected and not seq
            if seq and st.last_id is not None:
                first = int(batch["id"].min())
                if first > st.last_id + 1:
                    missing = await self._refill(st, st.last_id + 1, first - 1)
                    if missing is None:
                        broken = True
                    else:
                        batch = pd.concat([missing, batch], ignore_index=True)
            if broken:
                log.warning("%s: %s trade feed broken after %s; restarting its candles",
                            self.sink.source, st.symbol, st.last_trade)
                st.agg = None
        st.reconnected = False
        if st.agg is None:
            self._begin(st, batch["ts"].min())
        assert st.agg is not None
        st.counts["trades"] += len(batch)
        if self.opt.store_raw:
            st.raw.append(batch)
        closed = st.agg.add(batch)
        if self.sink.bus is not None:
            st.outbox.append(batch)
        if seq:
            st.last_id = int(batch["id"].max())
        st.last_trade = batch["ts"].max()
        if st.pending:  # a trade well past a pending candle proves it closed: keep the order
            self._due_symbol(st, st.last_trade - self.opt.close_delay, self.rest)
        self._emit(st, closed)
        late = st.agg.pop_too_late()
        if len(late):
            self._repair_later(st, late["ts"].min(), late["ts"].max())

    def _repair_later(self, st: _Symbol, first: pd.Timestamp, last: pd.Timestamp) -> None:
        st.counts["too_late_trades_repairs"] += 1
        for tf in self.timeframes:
            lo, hi = close_time(first, tf), close_time(last, tf)
            old = st.pending.get(tf)
            if old is not None:
                lo, hi = min(lo, old[0]), max(hi, old[1])
            st.pending[tf] = (lo, hi, True)

    async def _follow(self, st: _Symbol) -> None:
        attempt = 0
        while not self.stop.is_set():
            try:
                batch = await self.provider.watch_trades(st.symbol)
            except EndOfData:
                st.done = True
                return
            except TransientError as e:
                attempt += 1
                if st.down_since is None:
                    st.down_since = time.monotonic()
                    log.warning("%s: %s live trades interrupted: %s", self.sink.source,
                                st.symbol, one_line(e))
                await self._sleep(self.opt.reconnect.delay(attempt))
                continue
            if st.down_since is not None:
                down = time.monotonic() - st.down_since
                st.down_since, st.reconnected = None, True
                st.counts["reconnects"] += 1
                self.sink.event("reconnected", symbol=st.symbol, attempts=attempt,
                                down_seconds=round(down, 3))
            attempt = 0
            await self._ingest(st, batch)

    # ------------------------------------------------------------------ clock & catch-up
    def _catch_up(self, st: _Symbol, tf: str, start: pd.Timestamp, end: pd.Timestamp,
                  corrected: bool, rest: Rest) -> None:
        """Fetch klines ``[start, end]`` (runs in the writer thread)."""
        fetched: set[pd.Timestamp] = set()
        try:
            res = backfill_range(self.provider, self.sink, st.symbol, tf, start, end,
                                 rest=rest, publish_after=self.live_started,
                                 corrected=corrected,
                                 on_page=lambda page: fetched.update(page.candles.index))
        except TcpLabError as e:
            if isinstance(e, ServiceError):  # try again on a later tick
                log.warning("%s: catching up %s %s failed: %s", self.sink.source, st.symbol,
                            tf, one_line(e))
                old = st.pending.get(tf)
                st.pending[tf] = (min(start, old[0]) if old else start,
                                  max(end, old[1]) if old else end, corrected)
                return
            raise
        st.counts["candles_from_rest"] += res.stored
        head = st.heads.get(tf)
        if head is not None and start <= head <= end:
            if head in fetched:  # the exchange has the kline of the segment's first bucket
                del st.heads[tf]
            elif st.counts[f"head_tries_{tf}"] < _HEAD_TRIES:  # saw trades there: not yet
                st.counts[f"head_tries_{tf}"] += 1
                old = st.pending.get(tf)
                st.pending.setdefault(tf, (head, head, corrected) if old is None else old)
            else:
                log.warning("%s: %s %s: no kline for %s, where trades were seen; run `tcp-lab "
                            "data check --repair`", self.sink.source, st.symbol, tf, head)
                del st.heads[tf]
        if res.stored and start < end:
            self.sink.event("gap_backfilled", symbol=st.symbol, kind="candles", timeframe=tf,
                            first=start, last=end, candles=res.stored)

    def _due(self, cut: pd.Timestamp, rest: Rest) -> None:
        poll = not self.provider.has_live_trades
        for st in self.symbols.values():
            if poll:
                for tf in self.timeframes:
                    self._poll_candles(st, tf, cut)
            self._due_symbol(st, cut, rest)

    def _due_symbol(self, st: _Symbol, cut: pd.Timestamp, rest: Rest) -> None:
        """Submit the catch-ups of ``st`` whose last candle closed by ``cut``."""
        for tf, (lo, hi, corrected) in list(st.pending.items()):
            if hi <= cut:
                del st.pending[tf]
                self._flush_trades(st)  # the trades before the candles the catch-up publishes
                self._submit(lambda s=st, t=tf, a=lo, b=hi, c=corrected:
                             self._catch_up(s, t, a, b, c, rest))

    def _poll_candles(self, st: _Symbol, tf: str, cut: pd.Timestamp) -> None:
        upto = last_close_by(cut, tf)
        if tf not in st.submitted:
            latest = self._latest(st.symbol, tf)
            st.submitted[tf] = latest if latest is not None else last_close_by(
                self.live_started, tf)
        start = st.submitted[tf] + parse_timeframe(tf).delta
        if start <= upto and tf not in st.pending:
            st.pending[tf] = (start, upto, False)
            st.submitted[tf] = upto

    async def _pump(self) -> None:
        """Publish the live trades every ``trades_interval`` seconds (quiet markets too)."""
        while not self.stop.is_set():
            await self._sleep(self.opt.trades_interval)
            for st in self.symbols.values():
                self._flush_trades(st)

    async def _clock(self) -> None:
        while not self.stop.is_set():
            await self._sleep(self.opt.tick_interval)
            if self.stop.is_set():
                return
            await self._tick()

    async def _tick(self, *, final: bool = False) -> None:
        try:
            now = await asyncio.to_thread(self.provider.now)
        except ServiceError as e:  # transient or not, the next tick asks again
            log.info("%s: exchange clock unavailable this tick: %s", self.sink.source,
                     one_line(e))
            if final:  # no clock to close candles by, but the trades received are kept
                for st in self.symbols.values():
                    self._flush_raw(st)
                    self._flush_trades(st)
            return
        self.now = now
        cut = now - self.opt.close_delay
        if final and all(st.done for st in self.symbols.values()):
            cut = now  # a finished replay: nothing more will arrive
        for st in self.symbols.values():
            if st.agg is not None:
                self._emit(st, st.agg.tick(cut))
            self._flush_raw(st)
            self._flush_trades(st)
        self._due(cut, self._final_rest if final else self.rest)

    def _final_rest(self, fn: Callable[[], Any], what: str) -> Any:
        return fn()  # on the way out: one try, no waiting

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        """Follow the symbols until ``stop`` is set or every feed has ended.

        Raises
        ------
        TcpLabError
            A non-transient error (unknown symbol, refused credentials, a store
            that failed); what was received before is stored.
        """
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="tcp-lab-collector-writer")
        self.live_started = await asyncio.to_thread(self.rest, self.provider.now,
                                                    "fetch the exchange time")
        follow = ([asyncio.create_task(self._follow(st), name=f"follow {st.symbol}")
                   for st in self.symbols.values()] if self.provider.has_live_trades else [])
        clock = asyncio.create_task(self._clock(), name="clock")
        pump = ([asyncio.create_task(self._pump(), name="trades")]
                if follow and self.sink.bus is not None else [])
        finite = getattr(self.provider, "done", None)
        try:
            while not self.stop.is_set():
                failed = [t for t in [*follow, clock, *pump] if t.done() and not t.cancelled()
                          and t.exception() is not None]
                if failed:
                    self.error = self.error or failed[0].exception()
                    break
                if follow and all(t.done() for t in follow):
                    break
                if not follow and callable(finite) and finite() and not any(
                        st.pending for st in self.symbols.values()):
                    await self._tick(final=True)
                    break
                await asyncio.sleep(0.05)
        finally:
            for t in [*follow, clock, *pump]:
                t.cancel()
            await asyncio.gather(*follow, clock, *pump, return_exceptions=True)
            try:
                await self._tick(final=True)
            except Exception as e:  # keep shutting down; the error is reported
                self.error = self.error or e
            self._writer.shutdown(wait=True)
            await self.provider.aclose()
        if self.error is not None:
            raise self.error
