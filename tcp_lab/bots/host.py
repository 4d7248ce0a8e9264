"""A bot host: many bots in one loop, their records written together.

A :class:`BotHost` runs the bots it is given in one thread (its loop) of the
process it lives in: a thread of the manager on the embedded default, a host
process (:mod:`tcp_lab.bots.host_process`) on PostgreSQL + Redis.

- **One subscription per symbol.** Bots of a symbol share one bus
  subscription: each candle is decoded once and handed to every bot of it (a
  portfolio bot is a bot of each of its symbols).
  It takes the symbol's live trades too once a bot with stops or targets
  joins (resubscribed with both channels; those bots then treat the forming
  candle as interrupted and resolve it from the store); trades go to those
  bots only.
- **One transaction per host and candle.** Every bot decides on the candle,
  then the records of all of them (signals, fills, performance, state) go to
  the store in one transaction (:meth:`~tcp_lab.store.Store.write_bot_candles`)
  and their signals to the bus in one pipeline, after the commit. The loop
  takes every message that is waiting before it writes, so candles of many
  symbols arriving together share a transaction too.
- **Exactly one writer per bot.** A bot added with a fencing token
  (:meth:`~tcp_lab.store.Store.claim_bot`) is written only while the token is
  current; a host that lost the bot (a newer claim) drops it (event
  ``fenced``) and can never write for it again.
- **Failures stay with their bot.** A strategy that raises ends its own bot
  (event ``crashed``, status ``crashed`` with the candle); the others go on.
  A bot that does not finish its candle stops getting heartbeats (the others
  keep theirs), so a supervisor sees which bot hangs.
- **No polling.** The loop blocks on its inbox; a timer thread writes every
  bot's heartbeat in one statement each ``heartbeat_interval`` and then asks
  the loop to look in the store for candles the bus did not deliver. A bus
  that is down when the host starts (or a subscription that fails) is tried
  again at that tick; meanwhile the bots run from the store.

Events go to ``on_event(kind, bot_id, detail)``: ``running`` (started, caught
up and heartbeat written), ``crashed``, ``stopped``, ``fenced``.

Examples
--------
>>> host = BotHost(store, bus, on_event=print)     # doctest: +SKIP
>>> host.add(config, token=store.claim_bot(config.name))  # doctest: +SKIP
>>> threading.Thread(target=host.run).start()      # doctest: +SKIP
>>> host.stop()                                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.bots.bot import Bot, BotBase
from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.policy import Clock, utc_now
from tcp_lab.bots.portfolio_bot import PortfolioBot
from tcp_lab.bus import TradesMessage, market_channel, status_channel, trades_channel
from tcp_lab.errors import TcpLabError

if TYPE_CHECKING:
    from tcp_lab.bus import BaseMessage, Bus, Subscription
    from tcp_lab.store import Store

__all__ = ["BotHost", "EventHandler", "FLUSH_EVERY", "record_crash", "open_bot"]

log = logging.getLogger("tcp_lab.bots")

#: ``on_event(kind, bot_id, detail)``.
EventHandler = Callable[[str, str, str], object]
#: A long catch-up writes its records every this many candles.
FLUSH_EVERY = 500
_MAX_DRAIN = 10_000  # inbox items taken before the loop writes
_STOP = object()
_TICK = object()
_RECONNECT = object()

GroupKey = str  # the symbol


@dataclass
class _Slot:
    bot: Bot | PortfolioBot
    token: int | None
    keys: tuple[GroupKey, ...]  # the symbols it takes candles of
    started: bool = False


@dataclass
class _Group:
    bots: list[str] = field(default_factory=list)
    sub: Subscription | None = None
    trades: bool = False  # the subscription takes trades:{symbol} too


def open_bot(config: BotConfig, store: Store, bus: Bus | None = None, *,
             clock: Clock = utc_now) -> Bot | PortfolioBot:
    """The bot ``config`` describes: a :class:`PortfolioBot` when it names ``symbols``."""
    kind = PortfolioBot if config.is_portfolio else Bot
    return kind(config, store, bus, clock=clock)


def record_crash(store: Store, bot: str, error: str, bus: Bus | None = None) -> None:
    """Mark ``bot`` crashed with ``error`` in the store and on ``status:{bot}`` (best effort)."""
    from tcp_lab.bus import StatusMessage

    try:
        store.update_bot(bot, status="crashed", last_error=error[:4000])
    except Exception:  # the store may be what failed; the manager records it again
        log.exception("bot %s: could not record the crash", bot)
    if bus is not None:
        try:
            bus.publish(status_channel(bot), StatusMessage(
                bot_id=bot, ts=utc_now(), status="crashed", detail=error[:2000]))
        except Exception:
            log.warning("bot %s: could not publish the crash", bot)


class BotHost:
    """Runs many bots in one loop (see the module docstring).

    Parameters
    ----------
    store, bus
        Shared by the bots (``bus`` may be None: the bots work from the store).
    heartbeat_interval
        Seconds between heartbeats (and store checks).
    name
        For logs and thread names.
    on_event
        ``on_event(kind, bot_id, detail)``, called from the host's threads.
    until_empty
        End :meth:`run` when the last bot has gone (one bot's :meth:`Bot.run`).
    clock
        Wall clock for heartbeats.
    """

    def __init__(self, store: Store, bus: Bus | None, *, heartbeat_interval: float = 5.0,
                 name: str = "host", on_event: EventHandler | None = None,
                 until_empty: bool = False, clock: Clock = utc_now) -> None:
        self.store = store
        self.bus = bus
        self.heartbeat_interval = float(heartbeat_interval)
        self.name = name
        self.on_event = on_event
        self.until_empty = until_empty
        self.clock = clock
        #: The exception that ended each bot that crashed.
        self.errors: dict[str, BaseException] = {}
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots: dict[str, _Slot] = {}
        self._groups: dict[GroupKey, _Group] = {}
        self._records: list[dict[str, Any]] = []
        self._signals: list[tuple[str, str, BaseMessage]] = []
        self._tokens: dict[str, int] = {}  # of the bots with records waiting
        self._busy: tuple[str, float] | None = None  # (bot, monotonic time of its last sign)
        self._halt = threading.Event()
        self._tick_pending = False
        self._had_bots = False

    # -- commands (any thread) -------------------------------------------------------------
    def add(self, config: BotConfig, token: int | None = None) -> None:
        """Start the bot ``config`` describes in this host (its row is in the store)."""
        self._inbox.put(("add", config, token))

    def adopt(self, bot: Bot | PortfolioBot, token: int | None = None) -> None:
        """Start an existing :class:`Bot` in this host."""
        self._inbox.put(("adopt", bot, token))

    def remove(self, bot_id: str) -> None:
        """Stop a bot after its candle in progress (event ``stopped``)."""
        self._inbox.put(("remove", bot_id))

    def stop(self) -> None:
        """End :meth:`run` after the message in progress; every bot gets ``stopped``."""
        self._halt.set()
        self._inbox.put(_STOP)

    @property
    def bots(self) -> list[str]:
        """Ids of the bots in this host."""
        return sorted(self._slots)

    @property
    def busy(self) -> tuple[str, float] | None:
        """The bot the loop is in and for how many seconds without progress (None: idle)."""
        busy = self._busy
        return None if busy is None else (busy[0], time.monotonic() - busy[1])

    # -- RecordSink (the loop's thread) ------------------------------------------------------
    def record(self, bot: BotBase, record: dict[str, Any]) -> None:
        slot = self._slots.get(bot.id)
        if slot is not None and slot.token is not None:
            self._tokens[bot.id] = slot.token
        self._records.append(record)

    def publish(self, bot: BotBase, channel: str, message: BaseMessage) -> None:
        self._signals.append((bot.id, channel, message))

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Run the bots until :meth:`stop` (or, with ``until_empty``, until none is left)."""
        beats = threading.Thread(target=self._beat_loop, name=f"tcp_lab.{self.name}.heartbeat",
                                 daemon=True)
        beats.start()
        try:
            while True:
                items = [self._inbox.get()]
                while len(items) < _MAX_DRAIN:
                    try:
                        items.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                for item in items:
                    if item is _STOP:
                        stop = True
                        break
                    self._handle(item)
                self._flush()
                if stop or (self.until_empty and self._had_bots and not self._slots):
                    break
        finally:
            self._halt.set()
            self._flush()
            for bot_id in list(self._slots):
                self._drop(bot_id, "stopped", "host stopped")
            beats.join(5.0)

    def _handle(self, item: Any) -> None:
        if item is _TICK:
            self._tick_pending = False
            self._check_store()
            return
        kind = item[0]
        if kind in ("add", "adopt"):
            bot = open_bot(item[1], self.store, self.bus, clock=self.clock) if kind == "add" \
                else item[1]
            self._start(bot, item[2])
        elif kind == "remove":
            if item[1] in self._slots:
                self._drop(item[1], "stopped", "stop requested")
        elif kind == "remove-fenced":  # found by the heartbeat timer
            self._fenced(item[1])
        else:  # a message (or a reconnect) of a group's subscription
            group = self._groups.get(kind)
            if group is None:
                return
            message = item[1]
            trades = isinstance(message, TradesMessage)
            for bot_id in list(group.bots):
                slot = self._slots.get(bot_id)
                if slot is None or (trades and not slot.bot.levels):
                    continue
                if message is _RECONNECT:
                    self._guard(slot, slot.bot.on_reconnect)
                else:
                    self._guard(slot, lambda b=slot.bot: b.on_message(message))

    def _start(self, bot: Bot | PortfolioBot, token: int | None) -> None:
        if bot.id in self._slots:
            log.warning("%s: bot %s runs here already", self.name, bot.id)
            return
        slot = self._slots[bot.id] = _Slot(bot, token, bot.symbols)
        self._had_bots = True
        bot.sink, bot.on_progress = self, self._progress
        for key in slot.keys:  # subscribe first: nothing published meanwhile is missed
            self._join(key, bot.id)
        if not self._guard(slot, bot.start):
            return
        self._flush()
        lost = self._heartbeat({bot.id: slot})
        if bot.id in lost or bot.id not in self._slots:
            return
        slot.started = True
        self._event("running", bot.id, "")

    def _guard(self, slot: _Slot, fn: Callable[[], object]) -> bool:
        """Run ``fn`` for ``slot``'s bot; a failure ends that bot only."""
        self._busy = (slot.bot.id, time.monotonic())
        try:
            fn()
            return True
        except Exception as e:  # the strategy's code: anything can go wrong
            log.error("%s: bot %s crashed: %s", self.name, slot.bot.id, e,
                      exc_info=not isinstance(e, TcpLabError))
            self.errors[slot.bot.id] = e
            self._crash(slot.bot, f"{type(e).__name__}: {e}")
            return False
        finally:
            self._busy = None

    def _progress(self) -> None:
        busy = self._busy
        if busy is not None:
            self._busy = (busy[0], time.monotonic())
        if len(self._records) >= FLUSH_EVERY:
            self._flush()

    def _crash(self, bot: Bot, error: str) -> None:
        if bot.id not in self._slots:
            return
        self._flush()  # what it did before the failing candle stands
        self._leave(bot.id)
        record_crash(self.store, bot.id, error, self.bus)
        self._event("crashed", bot.id, error)

    def _drop(self, bot_id: str, kind: str, detail: str) -> None:
        self._leave(bot_id)
        self._event(kind, bot_id, detail)

    def _leave(self, bot_id: str) -> None:
        slot = self._slots.pop(bot_id, None)
        if slot is None:
            return
        slot.bot.stop()  # records nothing more
        for key in slot.keys:
            group = self._groups.get(key)
            if group is None:
                continue
            if bot_id in group.bots:
                group.bots.remove(bot_id)
            if not group.bots:
                del self._groups[key]
                if group.sub is not None:
                    group.sub.close()

    def _event(self, kind: str, bot_id: str, detail: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, bot_id, detail)
            except Exception:
                log.exception("%s: event handler failed on %s of %s", self.name, kind, bot_id)

    # -- subscriptions --------------------------------------------------------------------
    def _join(self, key: GroupKey, bot_id: str) -> None:
        group = self._groups.setdefault(key, _Group())
        group.bots.append(bot_id)
        levels = self._slots[bot_id].bot.levels
        if group.sub is None:
            group.trades = group.trades or levels
            self._subscribe(key, group)
        elif levels and not group.trades:  # now with trades: a new subscription, then the old
            old, group.trades = group.sub, True
            if self._subscribe(key, group):
                old.close()
                for other in group.bots[:-1]:  # the trades stream starts afresh for them
                    slot = self._slots.get(other)
                    if slot is not None and slot.bot.levels:
                        self._guard(slot, slot.bot.on_reconnect)

    def _subscribe(self, key: GroupKey, group: _Group) -> bool:
        if self.bus is None:
            return False
        channels = [market_channel(key)] + ([trades_channel(key)] if group.trades else [])
        try:
            group.sub = self.bus.subscribe(
                *channels, handler=lambda m: self._inbox.put((key, m)),
                on_reconnect=lambda: self._inbox.put((key, _RECONNECT)))
        except TcpLabError as e:
            log.warning("%s: cannot subscribe to %s yet (%s); the bots run from the store "
                        "and it is tried again every %g s", self.name, ", ".join(channels), e,
                        self.heartbeat_interval)
            return False
        return True

    # -- writes ---------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write the records waiting in one transaction, then publish their signals."""
        records, signals, tokens = self._records, self._signals, self._tokens
        self._records, self._signals, self._tokens = [], [], {}
        lost: set[str] = set()
        if records:
            try:
                lost = self.store.write_bot_candles(records, tokens or None)
            except TcpLabError as e:
                # Nothing of it is stored: the bots resume from their stored state (the
                # candles are in the store) at their next message or store check.
                log.error("%s: could not write %d bot candles (%s); the bots redo them from "
                          "the store", self.name, len(records), e)
                for bot_id in {r["bot"]["id"] for r in records}:
                    slot = self._slots.get(bot_id)
                    if slot is not None:
                        slot.bot.reload()
                return
            for record in records:
                slot = self._slots.get(record["bot"]["id"])
                if slot is not None and slot.bot.id not in lost:
                    slot.bot.recorded = pd.Timestamp(record["bot"]["last_candle_ts"])
            for bot_id in lost:
                self._fenced(bot_id)
        if signals and self.bus is not None:
            try:
                self.bus.publish_many([(ch, m) for b, ch, m in signals if b not in lost])
            except TcpLabError as e:  # the records are stored; the messages are a courtesy
                log.warning("%s: could not publish %d signals: %s", self.name, len(signals), e)

    def _fenced(self, bot_id: str) -> None:
        if bot_id in self._slots:
            log.warning("%s: bot %s was claimed by another host; dropping it", self.name, bot_id)
            self._drop(bot_id, "fenced", "claimed by another host")

    # -- heartbeats (the timer thread) and store checks (the loop) ---------------------------
    def _beat_loop(self) -> None:
        while not self._halt.wait(self.heartbeat_interval):
            busy = self.busy
            stale = busy[0] if busy is not None and busy[1] > self.heartbeat_interval else None
            # A bot starting (warm-up, catch-up) gets its first heartbeat when its start is
            # done, so the hang timer, which starts at the first heartbeat, never runs on it.
            slots = {b: s for b, s in list(self._slots.items()) if s.started and b != stale}
            try:
                self._heartbeat(slots, from_timer=True)
            except Exception:  # the timer must survive a failing store or bus
                log.exception("%s: heartbeat failed", self.name)
            if not self._tick_pending:
                self._tick_pending = True
                self._inbox.put(_TICK)

    def _heartbeat(self, slots: dict[str, _Slot], from_timer: bool = False) -> set[str]:
        """Write the heartbeat of ``slots``' bots in one statement and publish their status."""
        if not slots:
            return set()
        now = self.clock()
        tokens = {b: s.token for b, s in slots.items() if s.token is not None}
        try:
            lost = self.store.heartbeat_bots(list(slots), now, tokens or None)
        except TcpLabError as e:
            log.warning("%s: could not write heartbeats: %s", self.name, e)
            return set()
        for bot_id in lost:
            if from_timer:
                self._inbox.put(("remove-fenced", bot_id))
            else:
                self._fenced(bot_id)
        if self.bus is not None:
            try:
                self.bus.publish_many([
                    (status_channel(b), s.bot.status_message("running", heartbeat=now))
                    for b, s in slots.items() if b not in lost])
            except TcpLabError as e:
                log.warning("%s: could not publish heartbeats: %s", self.name, e)
        return lost

    def _check_store(self) -> None:
        """Resubscribe what is not subscribed; give every bot the stored candles it missed."""
        for key, group in list(self._groups.items()):
            if group.sub is None and self._subscribe(key, group):
                for bot_id in list(group.bots):  # messages were missed until now
                    slot = self._slots.get(bot_id)
                    if slot is not None:
                        self._guard(slot, slot.bot.on_reconnect)
        newest: dict[tuple[str, str, str], pd.Timestamp | None] = {}
        for slot in list(self._slots.values()):
            if slot.bot.id not in self._slots:  # crashed or fenced meanwhile
                continue
            for series in slot.bot.series:
                if series not in newest:
                    try:
                        newest[series] = self.store.latest_candle_ts(*series)
                    except TcpLabError as e:
                        log.warning("%s: cannot check the store: %s", self.name, e)
                        return
            self._guard(slot, lambda b=slot.bot: b.check_store(*(newest[x] for x in b.series)))
