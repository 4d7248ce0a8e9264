"""One paper-trading bot: closed candles in, signals, virtual fills and equity out.

For every closed candle of its series the bot asks its strategy for the
decision on a trailing window of closed candles (``strategy.warmup +
window_margin`` of them, read from the store or kept from the bus, held as
NumPy arrays: a strategy with an array path runs on them without a
DataFrame, see :mod:`tcp_lab.bots.window`), lets the
:class:`~tcp_lab.bots.broker.PaperBroker` fill a virtual order at the candle's
close (after any stop or target the candle reached), and records the signal, the
fills (if any), the performance snapshot
and its new state (cash, position, last processed candle) in one store
transaction (:meth:`~tcp_lab.store.Store.record_bot_candle`). Every row is an
upsert keyed by the candle, so a crash before the commit just makes the
restarted bot redo that candle from the same state and inputs: nothing is
lost or duplicated. Then it publishes the signal on ``signals:{bot_id}``.

A bot with a stop, target or trailing stop also subscribes to the symbol's live
trades (``trades:{symbol}``): it resolves each candle's levels on that
candle's trades by the trades rule, from the stream, else from the store,
else by the OHLC rule (:mod:`tcp_lab.bots.intrabar`; the status says which),
and while a position is open it scans each batch as it arrives, to announce a
stop or target hit before the candle closes (booked at the close, as always).

A bot does not run a loop of its own: a :class:`~tcp_lab.bots.host.BotHost`
drives it (many bots per host: one subscription per symbol, the records of
every bot of a candle in one transaction); :meth:`Bot.run` runs one bot in a
host of its own.

A candle corrected after the bot processed it (late trades) is recorded as a
correction event (:meth:`~tcp_lab.store.Store.load_corrections`: what the bot
decided then, what it would have decided on the corrected candle); the bot's
fills and equity are not rewritten, as it traded on what it saw.

Paper trading only: there is no code path that sends an order to an exchange.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from tcp_lab.bots import window as W
from tcp_lab.bots.broker import Account, Fill, Flags, PaperBroker
from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.corrections import record_correction
from tcp_lab.bots.intrabar import IntrabarTrades, early_exit_detail
from tcp_lab.bots.policy import Clock, utc_now
from tcp_lab.bus import (
    CandleMessage,
    SignalMessage,
    StatusMessage,
    TradesMessage,
    signals_channel,
    status_channel,
)
from tcp_lab.errors import DataError, StrategyError, TcpLabError
from tcp_lab.store import JsonText, bot_candle_record
from tcp_lab.strategies import Signal
from tcp_lab.strategies.decision import frame_of, last_decision
from tcp_lab.strategies.informative import informative_specs, with_informative
from tcp_lab.timeframes import parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.bots.host import BotHost
    from tcp_lab.bots.portfolio_broker import PortfolioAccount
    from tcp_lab.bus import BaseMessage, Bus
    from tcp_lab.store import Store

__all__ = ["Bot", "BotBase", "Step", "CandleError", "RecordSink", "STATE_VERSION"]

log = logging.getLogger("tcp_lab.bots")

#: Version of the ``state`` document the bot keeps in the ``bots`` table.
STATE_VERSION = 1
_READ = object()  # catch_up(newest=...): read the newest stored candle


class RecordSink(Protocol):
    """Where a hosted bot leaves its records and signals (its host writes them together)."""

    def record(self, bot: BotBase, record: dict[str, Any]) -> None:
        """Keep one candle's records (:func:`~tcp_lab.store.bot_candle_record`)."""

    def publish(self, bot: BotBase, channel: str, message: BaseMessage) -> None:
        """Publish ``message`` once the records before it are committed."""


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
    fills: list[Fill]
    account: Account
    equity: float

    @property
    def fill(self) -> Fill | None:
        """The candle's last fill (None without one)."""
        return self.fills[-1] if self.fills else None


def _finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def _fill_dict(fill: Fill) -> dict[str, Any]:
    return {"side": fill.side, "price": fill.price, "amount": fill.amount, "fee": fill.fee,
            "realized_pnl": fill.realized_pnl, "reason": fill.reason}


class BotBase:
    """What every bot does the same way, whatever it trades: its state document, its
    statuses and signals on the bus, stopping, and running in a host of its own."""

    id: str
    config: BotConfig
    store: Store
    bus: Bus | None
    clock: Clock
    recorded: pd.Timestamp | None
    sink: RecordSink | None
    _config_json: str
    _account: Any
    _last: pd.Timestamp | None
    _loaded: bool
    _stop: threading.Event
    _host: BotHost | None

    def _state_json(self, account: Account | PortfolioAccount) -> str:
        """The state document (version, config, ``account``) as JSON; the config is
        serialised once, as a bot writes this on every candle."""
        try:
            acct = account.to_json()
        except ValueError as e:
            raise DataError(f"bot {self.id!r}: account cannot be stored ({e})") from None
        return JsonText(f'{{"account": {acct}, "config": {self._config_json}, '
                        f'"version": {STATE_VERSION}}}')

    def _publish(self, channel: str, message: Any) -> None:
        if self.bus is None:
            return
        try:
            self.bus.publish(channel, message)
        except TcpLabError as e:  # records are in the store; a lost message is recoverable
            log.warning("bot %s: could not publish on %s: %s", self.id, channel, e)

    def _publish_signal(self, signal: Signal, symbol: str | None = None) -> None:
        if self.bus is None:
            return
        confidence = min(max(signal.confidence, 0.0), 1.0) if math.isfinite(
            signal.confidence) else 0.0
        message = SignalMessage(bot_id=self.id, ts=signal.ts, action=signal.action,
                                confidence=confidence, price=signal.price,
                                indicators=signal.indicators, symbol=symbol)
        if self.sink is not None:
            self.sink.publish(self, signals_channel(self.id), message)
        else:
            self._publish(signals_channel(self.id), message)

    def publish_status(self, status: str, detail: str = "", heartbeat: pd.Timestamp | None = None,
                       ) -> None:
        """Publish a :class:`~tcp_lab.bus.StatusMessage` on ``status:{bot_id}``."""
        self._publish(status_channel(self.id), self.status_message(status, detail, heartbeat))

    def status_message(self, status: str, detail: str = "",
                       heartbeat: pd.Timestamp | None = None) -> StatusMessage:
        """The :class:`~tcp_lab.bus.StatusMessage` :meth:`publish_status` sends."""
        return StatusMessage(bot_id=self.id, ts=self.clock(), status=status,
                             detail=detail[:2000], heartbeat=heartbeat,
                             last_candle_ts=self.recorded)

    # -- state ---------------------------------------------------------------------------
    def load(self) -> None:
        """Read the stored state, or create the bot and decide where it starts.

        A new bot (or one whose state has no account yet) starts flat with
        ``init_cash``; its first candle follows ``config.start``.
        """
        row = self.store.get_bot(self.id)
        state = (row or {}).get("state") or {}
        if row is not None and "account" in state:
            self._account = self._stored_account(state)
            self._last = row["last_candle_ts"]
        else:
            self._account = self._opening()
            self._last = self._first_last()
            if row is None:
                self.store.upsert_bot(self.id, strategy=self.config.strategy, name=self.id,
                                      state=self.state_document())
            self.store.update_bot(self.id, last_candle_ts=self._last,
                                  state=self.state_document())
        self._forget()
        self.recorded = self._last
        self._loaded = True

    def reload(self) -> None:
        """Forget the state in memory: the next candle reads it from the store again
        (after a write of this bot's records failed)."""
        self._loaded = False
        self._forget()

    def state_document(self) -> dict[str, Any]:
        """What the bot keeps in the ``bots.state`` column."""
        return json.loads(self._state_json(self._account))

    def _first_last(self) -> pd.Timestamp | None:
        """The close time before the first one to trade (``config.start``; ``latest``: the
        newest stored candle of any of its series)."""
        c = self.config
        if c.start == "earliest":
            return None
        if c.start == "latest":
            newest = [t for series in self.series
                      if (t := self.store.latest_candle_ts(*series)) is not None]
            return max(newest) if newest else None
        return c.start_after

    def _stored_account(self, state: dict[str, Any]) -> Any:
        """The account of a stored state document."""
        raise NotImplementedError

    def _opening(self) -> Any:
        """A fresh account of ``init_cash``."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Drop what is kept in memory besides the account (windows of candles)."""

    @property
    def series(self) -> tuple[tuple[str, str, str], ...]:
        """(exchange, symbol, timeframe) of each series it trades."""
        raise NotImplementedError

    # -- one bot, one host ---------------------------------------------------------------
    def stop(self) -> None:
        """Stop after the candle in progress; end :meth:`run` (thread-safe)."""
        self._stop.set()
        host = self._host
        if host is not None:
            host.remove(self.id)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self, *, heartbeat_interval: float = 5.0) -> None:
        """Trade until :meth:`stop`, in a :class:`~tcp_lab.bots.host.BotHost` of its own.

        The host subscribes to the bot's candles (and live trades when it has
        stops or targets), catches up from the store, writes a heartbeat every
        ``heartbeat_interval`` seconds and checks the store then for candles
        the bus did not deliver; after a bus reconnect it catches up.

        Raises
        ------
        CandleError
            The strategy failed on a candle (a supervisor restarts the bot).
        """
        from tcp_lab.bots.host import BotHost

        host = BotHost(self.store, self.bus, heartbeat_interval=heartbeat_interval,
                       name=f"bot {self.id}", until_empty=True)
        self._host = host
        try:
            if self._stop.is_set():
                return
            host.adopt(self)
            host.run()
        finally:
            self._host = None
        error = host.errors.get(self.id)
        if error is not None:
            raise error


class Bot(BotBase):
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
    >>> len(bot.catch_up())               # doctest: +SKIP
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
        self.broker = PaperBroker(config.trading_options())
        self._levels = self.broker.options.has_levels
        self._trades = IntrabarTrades(store, config.exchange, config.symbol)
        self._announced: tuple[int, float] | None = None  # (candle, exit) announced early
        #: The early scan so far: (forming candle, account it began from, trades scanned,
        #: time of the last of them, account after them); each batch scans only its own.
        self._early: tuple[int, Account, int, int, Account] | None = None
        self._stored: pd.Timestamp | None = None  # newest stored candle at the last heartbeat
        self.timeframe = parse_timeframe(config.timeframe)
        self.window = int(self.strategy.warmup) + config.window_margin
        #: Other symbols the strategy reads (its informative series): from the store.
        specs = informative_specs(self.strategy)
        self._informative = bool(specs)
        self._others = sorted({sym for _, sym in specs if sym not in (None, config.symbol)})
        self._label = repr(self.strategy)
        self._account = Account.opening(config.init_cash)
        self._last: pd.Timestamp | None = None
        self._cache: W.Window | None = None  # the last `window` candles up to self._last
        self._config_json = json.dumps(config.to_json(), sort_keys=True)
        self._loaded = False
        self._stop = threading.Event()
        #: Where records go: None writes each candle at once; a host collects them.
        self.sink: RecordSink | None = None
        #: Called after each candle of a long catch-up (a host: "still making progress").
        self.on_progress: Callable[[], object] | None = None
        self._host: BotHost | None = None  # the host of run()
        #: Close time of the last candle whose records are in the store (a host writes
        #: them after the candle: until then it trails :attr:`last_candle_ts`).
        self.recorded: pd.Timestamp | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def account(self) -> Account:
        """Cash, position and open-trade bookkeeping after the last processed candle."""
        return self._account

    @property
    def intrabar(self) -> str | None:
        """How the live stop and target were last resolved: "trades", "ohlc" (None: not yet)."""
        return self._trades.rule

    @property
    def trade_source(self) -> str | None:
        """Where the last candle resolved by the trades rule got its trades: "stream", "store"."""
        return self._trades.source

    @property
    def last_candle_ts(self) -> pd.Timestamp | None:
        """Close time of the last processed candle (None before the first)."""
        return self._last

    def _stored_account(self, state: dict[str, Any]) -> Account:
        return Account.from_dict(state["account"])

    def _opening(self) -> Account:
        return Account.opening(self.config.init_cash)

    def _forget(self) -> None:
        self._cache = None

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
                record_correction(self, candle)
            return []
        contiguous = (self._cache is not None and len(self._cache["ts"]) > 0
                      and self._last is not None
                      and int(self._cache["ts"][-1]) == self._last.value // 1000
                      and candle.ts.value - self._last.value == self.timeframe.us * 1000)
        if not contiguous:
            return self.catch_up(extra=candle)
        window = W.appended(self._cache, W.of_message(candle), self.window)
        step = self._step(window)
        if step is None:
            return []
        self._cache = window
        return [step]

    def catch_up(self, extra: CandleMessage | None = None, *,
                 upto: pd.Timestamp | None = None,
                 newest: pd.Timestamp | None | object = _READ) -> list[Step]:
        """Process, in order, every stored candle after the last processed one.

        ``extra`` (a candle just received) is included even if the store does
        not hold it yet; ``upto`` stops at the candle closing then; ``newest``
        is the newest stored candle if the caller read it already (a host reads
        it once per series for all its bots).
        """
        if not self._loaded:
            self.load()
        c = self.config
        if newest is _READ:
            newest = self.store.latest_candle_ts(c.exchange, c.symbol, c.timeframe)
        if upto is not None and newest is not None:
            newest = min(newest, upto)
        if extra is not None and (newest is None or extra.ts > newest):
            newest = extra.ts
        if newest is None or (self._last is not None and newest <= self._last):
            return []
        frame = self._history(newest)
        if extra is not None and extra.ts not in frame.index:  # not stored yet: in time order
            frame = pd.concat([frame, frame_of(W.of_message(extra))]).sort_index()
        history = W.of_frame(frame)
        ts = history["ts"]
        start = 0 if self._last is None else int(
            ts.searchsorted(self._last.value // 1000, "right"))
        steps = []
        for i in range(start, len(ts)):
            step = self._step(W.rows(history, max(0, i - self.window + 1), i + 1))
            if step is None:
                break
            steps.append(step)
            if self.on_progress is not None:  # a long catch-up must not look like a hang
                self.on_progress()
        done = self._last is not None and int(ts[-1]) == self._last.value // 1000
        self._cache = W.rows(history, max(0, len(ts) - self.window), len(ts)) if done else None
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

    def _warm_up(self) -> None:
        """Run the strategy once on the stored window up to the last processed candle.

        Nothing is recorded. The first live candle then finds the strategy's
        compiled kernels loaded and the window in memory, instead of paying
        for both (numba loading its cache costs far more than a candle).
        """
        if self._last is None:
            return
        window = W.of_frame(self._history(self._last))
        n = len(window["ts"])
        if n == 0:
            return
        window = W.rows(window, max(0, n - self.window), n)
        try:
            last_decision(self.strategy, window, label=self._label)
        except Exception as e:  # it fails again on the next candle, which names the candle
            log.debug("bot %s: warm-up run of the strategy failed: %s", self.id, e)
        if int(window["ts"][-1]) == self._last.value // 1000:
            self._cache = window

    def _step(self, window: W.Window) -> Step | None:
        """Decide, fill and record the last candle of ``window``; None once stopping.

        A bot told to stop (or abandoned as hung) records nothing more, so it
        can never write over the progress of the instance that replaced it.
        """
        if self._stop.is_set():
            return None
        ts = W.last_ts(window)
        trades = self._candle_trades(window)
        try:
            view = self._with_informative(window) if self._informative else window
            decision = last_decision(self.strategy, view, label=self._label)
            signal = decision.signal(ts, float(window["close"][-1]))
            flags = self.broker.flags(decision.entry, decision.exit, decision.short_entry,
                                      decision.short_exit)
            if trades is not None:
                account, fills = self.broker.on_trades_candle(
                    self._account, flags, trades, signal.price, decision.stop_price,
                    decision.target_price)
            else:
                account, fills = self.broker.on_candle(
                    self._account, flags, W.last_bar(window), decision.stop_price,
                    decision.target_price)
        except Exception as e:  # the strategy's code: anything can go wrong
            raise CandleError(self.id, ts, e) from e
        if self._stop.is_set():
            return None
        equity = account.equity(signal.price)
        self._record(ts, signal, fills, account, equity)
        self._account, self._last = account, ts
        self._publish_signal(signal)
        return Step(ts=ts, signal=signal, flags=flags, fills=fills, account=account,
                    equity=equity)

    def _with_informative(self, window: W.Window) -> pd.DataFrame:
        """The window as a frame with the strategy's informative series, built as the
        backtest builds them: the own symbol's from the window, another symbol's from its
        candles in the store over the window's span (as stored when the bot decides)."""
        frame = frame_of(window)
        others = {sym: self.store.load_candles(self.config.exchange, sym, self.timeframe.name,
                                               start=frame.index[0], end=frame.index[-1])
                  for sym in self._others}
        return with_informative(self.strategy, frame, timeframe=self.timeframe, others=others,
                                symbol=self.config.symbol)

    def _candle_trades(self, window: W.Window) -> tuple[np.ndarray, ...] | None:
        """The market trades of the window's last candle, when its stops and targets are live
        (the trades rule: from the live stream, else the store); None: the OHLC rule.

        The collector publishes a candle's trades, and stores them
        (``collect --store-raw``), before it publishes the candle.
        """
        ts = window["ts"]
        needed = self._levels and self._account.position != 0.0
        trades, detail = self._trades.resolve(int(ts[-2]) if len(ts) > 1 else None,
                                              int(ts[-1]), needed=needed)
        if detail:
            log.info("bot %s: %s", self.id, detail)
            self.publish_status("running", detail=detail)
        return trades

    def process_trades(self, message: TradesMessage) -> None:
        """Keep a batch of live trades (``trades:{symbol}``) for the candle they belong to.

        While a position is open, the trades of the forming candle so far are
        run through the broker's scan (the same one the candle's close runs on
        all of them): a stop or target they hit is announced at once in the
        status, and booked at the candle's close like any other.
        """
        if not self._loaded:
            self.load()
        c = self.config
        if (message.exchange, message.symbol) != (c.exchange, c.symbol):
            return
        self._trades.add(message)
        account = self._account
        if not self._levels or account.position == 0.0 or self._last is None:
            return
        if not math.isnan(account.exit_ready):
            return  # an exit under way since an earlier candle: nothing new to announce
        forming = self._trades.forming(self._last.value // 1000, self.timeframe.us)
        if forming is None:
            return
        close, (ts, price, amount) = forming
        start, scanned = 0, account
        early = self._early
        if (early is not None and early[0] == close and early[1] is account
                and 0 < early[2] <= len(ts) and int(ts[early[2] - 1]) == early[3]):
            start, scanned = early[2], early[4]  # the scan is resumable: go on from there
        if start < len(ts):
            scanned = self.broker.scan_trades(scanned, (ts[start:], price[start:],
                                                        amount[start:]))
            self._early = (close, account, len(ts), int(ts[-1]), scanned)
        if math.isnan(scanned.exit_ready) or self._announced == (close, scanned.exit_ready):
            return
        self._announced = (close, scanned.exit_ready)
        detail = early_exit_detail(scanned, close)
        log.info("bot %s: %s", self.id, detail)
        self.publish_status("running", detail=detail)

    def _record(self, ts: pd.Timestamp, signal: Signal, fills: list[Fill], account: Account,
                equity: float) -> None:
        """Write the candle's signal, fill, performance and state in one transaction
        (hosted: hand them to the host, which writes its bots' candles together)."""
        fields = dict(action=signal.action, confidence=signal.confidence, price=signal.price,
                      indicators=_finite_or_none(signal.indicators),
                      fills=[_fill_dict(f) for f in fills], cash=account.cash,
                      position=account.position, equity=equity,
                      state=self._state_json(account), symbol=str(self.config.symbol))
        if self.sink is not None:
            self.sink.record(self, bot_candle_record(self.id, ts, **fields))
        else:
            self.store.record_bot_candle(self.id, ts, **fields)
            self.recorded = ts

    # -- driven by a host ----------------------------------------------------------------
    def start(self) -> None:
        """Load the state, warm the strategy up, mark the bot running, catch up from the store."""
        self.load()
        if self._levels:
            self._trades.listen()
        self._warm_up()
        self.store.update_bot(self.id, status="running")
        self.publish_status("running", detail="started")
        self.catch_up()

    def on_message(self, message: object) -> None:
        """Act on a message of the bot's subscription (a candle, or a batch of trades)."""
        if isinstance(message, TradesMessage):
            self.process_trades(message)
        elif isinstance(message, CandleMessage):
            self.process_candle(message)

    def on_reconnect(self) -> None:
        """The bus connection was lost and restored: messages may be missing; catch up."""
        self._trades.interrupt("the bus connection was lost and restored")
        self.catch_up()

    def check_store(self, newest: pd.Timestamp | None) -> None:
        """Process the stored candles the bus did not deliver (e.g. while Redis was down).

        ``newest`` is the newest stored candle of the bot's series. The
        candles stored since the previous check are left to the bus until the
        next one: the collector stores a candle just before it publishes it,
        and a check that falls in between must not make every bot of a host
        read it from the store (one query each), nor a bot on live trades trust
        a candle without its trades (which travel with the bus message).
        """
        upto, self._stored = self._stored, newest
        if upto is not None:
            self.catch_up(upto=upto, newest=newest)

    @property
    def levels(self) -> bool:
        """True when the bot has a stop, target or trailing stop (it takes live trades)."""
        return self._levels

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols whose candles the bot takes (its one symbol)."""
        return (str(self.config.symbol),)

    @property
    def series(self) -> tuple[tuple[str, str, str], ...]:
        """The candle series of :attr:`symbols`: (exchange, symbol, timeframe) each;
        :meth:`check_store` takes the newest stored candle of each."""
        c = self.config
        return ((c.exchange, str(c.symbol), c.timeframe),)
