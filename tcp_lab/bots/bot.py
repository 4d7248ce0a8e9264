"""One paper-trading bot: closed candles in, signals, virtual fills and equity out.

For every closed candle of its series the bot asks its strategy for the
decision on a trailing window of closed candles (``strategy.warmup +
window_margin`` of them, read from the store or kept from the bus), lets the
:class:`~tcp_lab.bots.broker.PaperBroker` fill a virtual order at the candle's
close, and records the signal, the fill (if any), the performance snapshot
and its new state (cash, position, last processed candle) in one store
transaction (:meth:`~tcp_lab.store.Store.record_bot_candle`). Every row is an
upsert keyed by the candle, so a crash before the commit just makes the
restarted bot redo that candle from the same state and inputs: nothing is
lost or duplicated. Then it publishes the signal on ``signals:{bot_id}``.

Paper trading only: there is no code path that sends an order to an exchange.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tcp_lab.bots.broker import Account, Fill, Flags, PaperBroker
from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.policy import Clock, utc_now
from tcp_lab.bus import (
    CandleMessage,
    SignalMessage,
    StatusMessage,
    market_channel,
    signals_channel,
    status_channel,
)
from tcp_lab.errors import StrategyError, TcpLabError
from tcp_lab.strategies import Signal, StrategyOutput, check_output
from tcp_lab.timeframes import CANDLE_COLUMNS, parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = ["Bot", "Step", "CandleError", "STATE_VERSION"]

log = logging.getLogger("tcp_lab.bots")

#: Version of the ``state`` document the bot keeps in the ``bots`` table.
STATE_VERSION = 1
_CATCH_UP = object()  # inbox item: reload from the store and process what is new
_WAKE = object()  # inbox item: look at the stop flag now


class CandleError(StrategyError):
    """The strategy (or the broker) failed on a candle; ``ts`` names the candle."""

    def __init__(self, bot_id: str, ts: pd.Timestamp, error: BaseException) -> None:
        self.bot_id, self.ts = bot_id, ts
        what = f"{type(error).__name__}: {error}"
        super().__init__(f"bot {bot_id!r}: candle {ts.isoformat()}: {what}",
                         hint="fix the strategy; the bot restarts from this candle")


@dataclass(frozen=True)
class Step:
    """What processing one candle produced."""

    ts: pd.Timestamp
    signal: Signal
    flags: Flags
    fill: Fill | None
    account: Account
    equity: float


def _signal(out: StrategyOutput, window: pd.DataFrame) -> tuple[Signal, bool, bool,
                                                                 bool | None, bool | None]:
    """The last row's decision (as ``BaseStrategy.process_data`` builds it) and raw flags."""
    entry, exit_ = bool(out.entries.iat[-1]), bool(out.exits.iat[-1])
    short_entry = None if out.short_entries is None else bool(out.short_entries.iat[-1])
    short_exit = None if out.short_exits is None else bool(out.short_exits.iat[-1])
    buy, sell = entry or bool(short_exit), exit_ or bool(short_entry)
    action = "buy" if buy and not sell else "sell" if sell and not buy else "hold"
    if out.confidence is not None and not pd.isna(out.confidence.iat[-1]):
        confidence = float(out.confidence.iat[-1])
    else:
        confidence = 0.0 if action == "hold" else 1.0
    signal = Signal(ts=window.index[-1], action=action, confidence=confidence,
                    price=float(window["close"].iat[-1]),
                    indicators={k: float(v.iat[-1]) for k, v in out.indicators.items()})
    return signal, entry, exit_, short_entry, short_exit


def _finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def _candle_frame(msg: CandleMessage) -> pd.DataFrame:
    """One candle message as a one-row candle frame (the columns the store returns)."""
    index = pd.DatetimeIndex(np.array([msg.ts.value // 1000], dtype="datetime64[us]"),
                             name="ts").tz_localize("UTC")
    data: dict[str, Any] = {
        c: np.array([getattr(msg, c)], dtype="int64" if c == "trade_count" else "float64")
        for c in CANDLE_COLUMNS}
    return pd.DataFrame(data, index=index, copy=False)


class Bot:
    """A paper-trading bot over one candle series.

    Parameters
    ----------
    config
        The bot's definition; ``config.name`` is its id.
    store
        Where candles come from and records go.
    bus
        Where candles arrive and signals/statuses are published (optional:
        without a bus the bot works from the store only).
    clock
        Wall clock for heartbeats (tests inject one).

    Examples
    --------
    >>> bot = Bot(config, store)          # doctest: +SKIP
    >>> bot.catch_up()                    # process every stored candle not yet processed
    3000
    >>> bot.account.cash                  # doctest: +SKIP
    """

    def __init__(self, config: BotConfig, store: Store, bus: Bus | None = None, *,
                 clock: Clock = utc_now) -> None:
        self.config = config
        self.id = config.name
        self.store = store
        self.bus = bus
        self.clock = clock
        self.strategy = config.build_strategy()
        self.broker = PaperBroker(fee=config.fee, slippage=config.slippage,
                                  size=config.position_size, size_type=config.size_type,
                                  direction=config.direction)
        self.timeframe = parse_timeframe(config.timeframe)
        self.window = int(self.strategy.warmup) + config.window_margin
        self._label = repr(self.strategy)
        self._account = Account.opening(config.initial_balance)
        self._last: pd.Timestamp | None = None
        self._cache: pd.DataFrame | None = None  # the last `window` candles up to self._last
        self._loaded = False
        self._stop = threading.Event()
        self._inbox: queue.Queue[object] = queue.Queue()
        self._beat_interval: float | None = None  # set by run(): heartbeats are due
        self._next_beat = 0.0

    # -- state ---------------------------------------------------------------------------
    @property
    def account(self) -> Account:
        """Cash, position and open-trade bookkeeping after the last processed candle."""
        return self._account

    @property
    def last_candle_ts(self) -> pd.Timestamp | None:
        """Close time of the last processed candle (None before the first)."""
        return self._last

    def state_document(self) -> dict[str, Any]:
        """What the bot keeps in the ``bots.state`` column."""
        return {"version": STATE_VERSION, "config": self.config.to_json(),
                "account": self._account.to_dict()}

    def load(self) -> None:
        """Read the stored state, or create the bot and decide where it starts.

        A new bot (or one whose state has no account yet) starts flat with
        ``initial_balance``; its first candle follows ``config.start``.
        """
        row = self.store.get_bot(self.id)
        state = (row or {}).get("state") or {}
        if row is not None and "account" in state:
            self._account = Account.from_dict(state["account"])
            self._last = row["last_candle_ts"]
        else:
            self._account = Account.opening(self.config.initial_balance)
            self._last = self._first_last()
            if row is None:
                self.store.upsert_bot(self.id, strategy=self.config.strategy, name=self.id,
                                      state=self.state_document())
            self.store.update_bot(self.id, last_candle_ts=self._last,
                                  state=self.state_document())
        self._cache = None
        self._loaded = True

    def _first_last(self) -> pd.Timestamp | None:
        c = self.config
        if c.start == "earliest":
            return None
        if c.start == "latest":
            return self.store.latest_candle_ts(c.exchange, c.symbol, c.timeframe)
        return c.start_after

    # -- processing ----------------------------------------------------------------------
    def process_candle(self, candle: CandleMessage) -> list[Step]:
        """Process a closed candle from the bus (and any stored candle it skipped).

        A candle at or before the last processed one is ignored (redelivery,
        restart): each candle is processed exactly once.

        Returns
        -------
        list of Step
            One per candle processed, oldest first (empty when ignored).
        """
        if not self._loaded:
            self.load()
        c = self.config
        if (candle.exchange, candle.symbol, candle.timeframe) != (c.exchange, c.symbol,
                                                                   c.timeframe):
            return []
        if self._last is not None and candle.ts <= self._last:
            if candle.corrected:
                log.warning("bot %s: ignoring a correction of candle %s, already processed",
                            self.id, candle.ts)
            return []
        contiguous = (self._cache is not None and len(self._cache) > 0
                      and self._last is not None and self._cache.index[-1] == self._last
                      and candle.ts - self._last == self.timeframe.delta)
        if not contiguous:
            return self.catch_up(extra=candle)
        frame = pd.concat([self._cache, _candle_frame(candle)])
        step = self._step(frame.iloc[-self.window:])
        if step is None:
            return []
        self._cache = frame.iloc[-self.window:]
        return [step]

    def catch_up(self, extra: CandleMessage | None = None) -> list[Step]:
        """Process, in order, every stored candle after the last processed one.

        ``extra`` (a candle just received) is included even if the store does
        not hold it yet.
        """
        if not self._loaded:
            self.load()
        c = self.config
        newest = self.store.latest_candle_ts(c.exchange, c.symbol, c.timeframe)
        if extra is not None and (newest is None or extra.ts > newest):
            newest = extra.ts
        if newest is None or (self._last is not None and newest <= self._last):
            return []
        frame = self._history(newest)
        if extra is not None and extra.ts not in frame.index:
            frame = pd.concat([frame, _candle_frame(extra)]).sort_index()
        start = 0 if self._last is None else int(frame.index.searchsorted(self._last, "right"))
        steps = []
        for i in range(start, len(frame)):
            step = self._step(frame.iloc[max(0, i - self.window + 1):i + 1])
            if step is None:
                break
            steps.append(step)
            self._beat_if_due()  # a long catch-up must not look like a hang
        self._cache = frame.iloc[-self.window:] if self._last == frame.index[-1] else None
        return steps

    def _history(self, end: pd.Timestamp) -> pd.DataFrame:
        """Stored candles up to ``end``, reaching ``window`` candles before the last processed."""
        c = self.config
        if self._last is None:
            return self.store.load_candles(c.exchange, c.symbol, c.timeframe, end=end)
        lookback = 2 * self.window
        while True:
            start = self._last - lookback * self.timeframe.delta
            frame = self.store.load_candles(c.exchange, c.symbol, c.timeframe, start=start,
                                            end=end)
            before = int(frame.index.searchsorted(self._last, "right"))
            if before >= self.window or lookback > 64 * self.window:
                break
            lookback *= 4  # gaps in the data: look further back
        if before < self.window and lookback > 64 * self.window:
            frame = self.store.load_candles(c.exchange, c.symbol, c.timeframe, end=end)
        return frame

    def _step(self, window: pd.DataFrame) -> Step | None:
        """Decide, fill and record the last candle of ``window``; None once stopping.

        A bot told to stop (or abandoned as hung) records nothing more, so it
        can never write over the progress of the instance that replaced it.
        """
        if self._stop.is_set():
            return None
        ts = window.index[-1]
        try:
            out = check_output(self.strategy.compute(window), window, self._label)
            signal, entry, exit_, short_entry, short_exit = _signal(out, window)
            flags = self.broker.flags(entry, exit_, short_entry, short_exit)
            account, fill = self.broker.on_signal(self._account, flags, signal.price)
        except Exception as e:  # the strategy's code: anything can go wrong
            raise CandleError(self.id, ts, e) from e
        if self._stop.is_set():
            return None
        equity = account.equity(signal.price)
        self._record(ts, signal, fill, account, equity)
        self._account, self._last = account, ts
        self._publish_signal(signal)
        return Step(ts=ts, signal=signal, flags=flags, fill=fill, account=account,
                    equity=equity)

    def _record(self, ts: pd.Timestamp, signal: Signal, fill: Fill | None, account: Account,
                equity: float) -> None:
        """Write the candle's signal, fill, performance and state in one transaction."""
        doc = self.state_document()
        doc["account"] = account.to_dict()
        self.store.record_bot_candle(
            self.id, ts, action=signal.action, confidence=signal.confidence,
            price=signal.price, indicators=_finite_or_none(signal.indicators),
            fill=None if fill is None else asdict(fill), cash=account.cash,
            position=account.position, equity=equity, state=doc)

    # -- bus -----------------------------------------------------------------------------
    def _publish(self, channel: str, message: Any) -> None:
        if self.bus is None:
            return
        try:
            self.bus.publish(channel, message)
        except TcpLabError as e:  # records are in the store; a lost message is recoverable
            log.warning("bot %s: could not publish on %s: %s", self.id, channel, e)

    def _publish_signal(self, signal: Signal) -> None:
        if self.bus is None:
            return
        confidence = min(max(signal.confidence, 0.0), 1.0) if math.isfinite(
            signal.confidence) else 0.0
        self._publish(signals_channel(self.id), SignalMessage(
            bot_id=self.id, ts=signal.ts, action=signal.action, confidence=confidence,
            price=signal.price, indicators=signal.indicators))

    def publish_status(self, status: str, detail: str = "", heartbeat: pd.Timestamp | None = None,
                       ) -> None:
        """Publish a :class:`~tcp_lab.bus.StatusMessage` on ``status:{bot_id}``."""
        self._publish(status_channel(self.id), StatusMessage(
            bot_id=self.id, ts=self.clock(), status=status, detail=detail[:2000],
            heartbeat=heartbeat, last_candle_ts=self._last))

    def heartbeat(self) -> pd.Timestamp:
        """Write the heartbeat (now, and the last processed candle) and publish it."""
        now = self.clock()
        self.store.update_bot(self.id, heartbeat=now, last_candle_ts=self._last)
        self.publish_status("running", heartbeat=now)
        if self._beat_interval is not None:
            self._next_beat = time.monotonic() + self._beat_interval
        return now

    def _beat_if_due(self) -> None:
        if self._beat_interval is not None and time.monotonic() >= self._next_beat:
            self.heartbeat()

    # -- the loop ------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to return after the candle in progress (thread-safe)."""
        self._stop.set()
        self._inbox.put(_WAKE)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self, *, heartbeat_interval: float = 5.0) -> None:
        """Trade until :meth:`stop`: subscribe, catch up, then follow the bus.

        Every ``heartbeat_interval`` seconds it writes its heartbeat and
        checks the store for candles the bus did not deliver. After a bus
        reconnect it catches up from the store.

        Raises
        ------
        CandleError
            The strategy failed on a candle (the supervisor restarts the bot).
        """
        self.load()
        self._beat_interval = float(heartbeat_interval)
        self._next_beat = time.monotonic() + self._beat_interval
        sub = None
        if self.bus is not None:
            sub = self.bus.subscribe(market_channel(self.config.symbol), handler=self._inbox.put,
                                     on_reconnect=lambda: self._inbox.put(_CATCH_UP))
        try:
            self.store.update_bot(self.id, status="running")
            self.publish_status("running", detail="started")
            self.heartbeat()
            self.catch_up()
            while not self._stop.is_set():
                try:
                    item = self._inbox.get(timeout=max(0.0, self._next_beat - time.monotonic()))
                except queue.Empty:
                    item = None
                if self._stop.is_set():
                    break
                if isinstance(item, CandleMessage):
                    self.process_candle(item)
                elif item is _CATCH_UP:
                    self.catch_up()
                if time.monotonic() >= self._next_beat:
                    self.catch_up()  # candles the bus lost (e.g. while Redis was down)
                    self.heartbeat()
        finally:
            self._beat_interval = None
            if sub is not None:
                sub.close()
