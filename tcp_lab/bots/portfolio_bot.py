"""A portfolio bot: one strategy over several symbols, one paper account with shared cash.

The live counterpart of :func:`tcp_lab.run_portfolio`. A bot config with
``symbols`` (instead of ``symbol``) makes one; its host subscribes to every
symbol's candles and hands each to it. The bot keeps each symbol's trailing
window of closed candles and acts once per **close time**, when that time is
complete:

- every symbol has its candle at that time, or
- some symbol has a candle of a later time (a symbol without a candle at a time
  has no signal there, as in the backtest: its position is valued at its last
  close). Before such a time is traded without a symbol's candle, the store is
  asked for that symbol's candles: messages of different symbols come on
  different subscriptions and may overtake one another, and the collector
  stores a candle before it publishes it.

At a complete close time it asks the strategy for the decision of each symbol
that has a candle then (on that symbol's window, as the backtest does on the
whole history) and runs the time through
:class:`~tcp_lab.bots.portfolio_broker.PortfolioBroker` (the portfolio driver
of the backtest, one row at a time, from the account the last time left). Its
records (one signal per symbol with a candle, the fills with their symbol, the
portfolio's cash, positions value and equity, and its state) go to the store in
one transaction, then its signals (``symbol`` set) on ``signals:{bot_id}``. So
replaying stored candles gives exactly the portfolio backtest on them.

A candle that arrives for a close time already processed (a symbol's collector
lagging by more than a candle, or a correction) is logged and not traded: the
bot traded on what it had. Stops and targets are resolved on the candles (the
OHLC rule), as in the portfolio backtest.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tcp_lab.bots import window as W
from tcp_lab.bots.bot import BotBase, CandleError, RecordSink, _finite_or_none
from tcp_lab.bots.broker import Fill, signal_flags
from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.policy import Clock, utc_now
from tcp_lab.bots.portfolio_broker import (
    PortfolioAccount,
    PortfolioBroker,
    SymbolBar,
    symbol_fills,
)
from tcp_lab.bus import CandleMessage
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.execution.sizing import check_vol_window, volatility_fraction
from tcp_lab.store import portfolio_candle_record
from tcp_lab.strategies import Signal
from tcp_lab.strategies.decision import frame_of, last_decision
from tcp_lab.strategies.informative import informative_specs, with_informative
from tcp_lab.timeframes import parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.bots.host import BotHost
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = ["PortfolioBot", "CloseTime", "complete_until"]

log = logging.getLogger("tcp_lab.bots")


@dataclass(frozen=True)
class CloseTime:
    """What processing one close time produced."""

    ts: pd.Timestamp
    signals: dict[str, Signal]  # by symbol, those with a candle at ts
    fills: list[tuple[str, Fill]]  # (symbol, fill), in the order they filled
    skipped: list[tuple[str, str]]  # (symbol, reason) of entry signals not taken
    account: PortfolioAccount
    equity: float


def complete_until(newest: list[int | None]) -> int | None:
    """The bound (epoch µs, inclusive) of the complete close times, given each symbol's
    newest candle (None: none yet).

    A close time is complete when every symbol has its candle at it, or some symbol
    has a candle after it: every time before the latest of the newest candles is,
    and that latest time itself once every symbol has reached it. None: no candle.

    >>> complete_until([300, 300]), complete_until([300, 200]), complete_until([None, 300])
    (300, 299, 299)
    """
    known = [t for t in newest if t is not None]
    if not known:
        return None
    hi = max(known)
    return hi if len(known) == len(newest) and min(known) == hi else hi - 1


class PortfolioBot(BotBase):
    """A paper-trading bot over several symbols from one account (see the module docstring).

    Parameters
    ----------
    config
        A bot config with ``symbols``; ``config.name`` is its id.
    store, bus, clock
        As for :class:`~tcp_lab.bots.bot.Bot`.

    Raises
    ------
    ConfigError
        ``config`` names one ``symbol`` (use :class:`~tcp_lab.bots.bot.Bot`).
    """

    def __init__(self, config: BotConfig, store: Store, bus: Bus | None = None, *,
                 clock: Clock = utc_now) -> None:
        if not config.is_portfolio:
            raise ConfigError(f"bot {config.name!r} trades one symbol: it is a Bot, not a "
                              "PortfolioBot", hint="give the config 'symbols' for a portfolio")
        self.config = config
        self.id = config.name
        self.store, self.bus, self.clock = store, bus, clock
        self.strategy = config.build_strategy()
        self._symbols = config.universe
        sizing = config.portfolio_sizing()
        self.broker = PortfolioBroker(config.trading_options(), sizing, len(self._symbols),
                                      max_positions=config.max_positions,
                                      leverage=config.leverage,
                                      maintenance_margin=config.maintenance_margin)
        self.timeframe = parse_timeframe(config.timeframe)
        self._vol = (check_vol_window(config.vol_window, sizing.name)
                     if sizing.name == "volatility_target" else 0)
        self._vol_target = sizing.fraction
        self.window = max(int(self.strategy.warmup) + config.window_margin, self._vol + 1)
        self._informative = bool(informative_specs(self.strategy))
        self._label = repr(self.strategy)
        self._account = PortfolioAccount.opening(len(self._symbols), config.init_cash)
        self._last: pd.Timestamp | None = None
        #: Each symbol's candles: the last ``window`` at or before the last processed
        #: close time, and every one after it (None: not read from the store yet).
        self._buf: dict[str, W.Window] | None = None
        self._config_json = json.dumps(config.to_json(), sort_keys=True)
        self._loaded = False
        self._stop = threading.Event()
        #: The newest stored candle of each symbol at the last store check, and at the
        #: last one that caught up (a close time waiting for a quiet symbol is not read
        #: again until something new is stored).
        self._stored: tuple[pd.Timestamp | None, ...] | None = None
        self._checked: tuple[pd.Timestamp | None, ...] | None = None
        self.sink: RecordSink | None = None
        self.on_progress: Callable[[], object] | None = None
        self._host: BotHost | None = None
        self.recorded: pd.Timestamp | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def account(self) -> PortfolioAccount:
        """Cash, each symbol's position and engine state after the last close time."""
        return self._account

    @property
    def last_candle_ts(self) -> pd.Timestamp | None:
        """The last processed close time (None before the first)."""
        return self._last

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols it trades, in the portfolio's order (by name)."""
        return self._symbols

    @property
    def series(self) -> tuple[tuple[str, str, str], ...]:
        """(exchange, symbol, timeframe) of each symbol."""
        c = self.config
        return tuple((c.exchange, s, c.timeframe) for s in self._symbols)

    @property
    def levels(self) -> bool:
        """False: stops and targets are resolved on candles (no live trades stream)."""
        return False

    def positions(self) -> dict[str, float]:
        """Each symbol's position (base units; negative: short)."""
        return dict(zip(self._symbols, self._account.positions.tolist(), strict=True))

    def _stored_account(self, state: dict[str, Any]) -> PortfolioAccount:
        """The stored account, of the symbols the config names now.

        Raises
        ------
        ConfigError
            The stored account is of other symbols than the config names now.
        DataError
            It cannot be read.
        """
        stored = tuple((state.get("config") or {}).get("symbols") or ())
        if stored != self._symbols:
            raise ConfigError(
                f"bot {self.id!r}: its stored account holds {list(stored) or 'one symbol'}"
                f", the config now names {list(self._symbols)}",
                hint="give the changed portfolio a new bot name")
        try:
            return PortfolioAccount.from_dict(state["account"], len(self._symbols))
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"bot {self.id!r}: stored account unreadable ({e})") from None

    def _opening(self) -> PortfolioAccount:
        return PortfolioAccount.opening(len(self._symbols), self.config.init_cash)

    def _forget(self) -> None:
        self._buf = None

    # -- candles in ----------------------------------------------------------------------
    def _read(self, symbol: str, start: pd.Timestamp | None,
              end: pd.Timestamp | None) -> W.Window:
        c = self.config
        return W.of_frame(self.store.load_candles(c.exchange, symbol, c.timeframe, start=start,
                                                  end=end))

    def _from_store(self, end: pd.Timestamp | None = None) -> None:
        """(Re)read every symbol's candles from ``window`` before the last close time."""
        buf = {}
        for s in self._symbols:
            start = None if self._last is None else (
                self._last - 4 * self.window * self.timeframe.delta)
            w = self._read(s, start, end)
            if start is not None and int(np.searchsorted(
                    w["ts"], self._last.value // 1000, "right")) < self.window:
                w = self._read(s, None, end)  # gaps in the data: from the start
            old = (self._buf or {}).get(s)
            if old is not None and len(old["ts"]) and len(w["ts"]):  # bus candles not stored
                newer = old["ts"] > w["ts"][-1]
                if newer.any():
                    w = {k: np.concatenate((w[k], old[k][newer])) for k in w}
            buf[s] = w
        self._buf = buf

    def _add(self, msg: CandleMessage) -> None:
        assert self._buf is not None
        s, ts = msg.symbol, msg.ts.value // 1000
        w = self._buf[s]
        if len(w["ts"]) and ts - int(w["ts"][-1]) > self.timeframe.us:
            # a gap: candles the bus did not deliver may be in the store
            last = pd.Timestamp(int(w["ts"][-1]), unit="us", tz="UTC")
            stored = self._read(s, last + pd.Timedelta(microseconds=1), msg.ts)
            w = {k: np.concatenate((w[k], stored[k])) for k in w}
        pos = int(np.searchsorted(w["ts"], ts))
        one = W.of_message(msg)
        if pos < len(w["ts"]) and int(w["ts"][pos]) == ts:
            w = {k: np.concatenate((w[k][:pos], one[k], w[k][pos + 1:])) for k in w}
        else:
            w = {k: np.concatenate((w[k][:pos], one[k], w[k][pos:])) for k in w}
        self._buf[s] = w

    def process_candle(self, candle: CandleMessage) -> list[CloseTime]:
        """Take a closed candle of one of the symbols; process every close time it completes.

        Returns
        -------
        list of CloseTime
            One per close time processed, oldest first.
        """
        if not self._loaded:
            self.load()
        c = self.config
        if (candle.exchange, candle.timeframe) != (c.exchange, c.timeframe) or (
                candle.symbol not in self._symbols):
            return []
        if self._last is not None and candle.ts <= self._last:
            w = (self._buf or {}).get(candle.symbol)
            if w is None or (candle.ts.value // 1000) not in w["ts"]:  # not read from the store
                log.info("bot %s: %s candle %s arrived after that close time was processed; "
                         "not traded", self.id, candle.symbol, candle.ts.isoformat())
            return []
        if self._buf is None:
            self._from_store()
        self._add(candle)
        return self._run(confirm=True)

    def catch_up(self, *, upto: pd.Timestamp | None = None) -> list[CloseTime]:
        """Process every complete close time of the stored candles (up to ``upto``)."""
        if not self._loaded:
            self.load()
        self._from_store(end=upto)
        return self._run(upto)

    # -- close times ---------------------------------------------------------------------
    def _newest(self) -> list[int | None]:
        assert self._buf is not None
        return [int(w["ts"][-1]) if len(w["ts"]) else None
                for w in (self._buf[s] for s in self._symbols)]

    def _confirm(self) -> None:
        """Read from the store the candles of the symbols behind the newest one.

        A later candle of another symbol completes a close time that a symbol has no
        candle at; before trading it without one, the store says whether that candle
        exists: the collector stores a candle before it publishes it, and the bus
        delivers each symbol on its own subscription, so a candle may be in the store
        before its message arrives. One query per lagging symbol, only when one lags.
        """
        assert self._buf is not None
        newest = self._newest()
        known = [t for t in newest if t is not None]
        if not known:
            return
        hi = pd.Timestamp(max(known), unit="us", tz="UTC")
        for s, t in zip(self._symbols, newest, strict=True):
            if t is not None and t == max(known):
                continue
            after = self._last if t is None else pd.Timestamp(t, unit="us", tz="UTC")
            start = None if after is None else after + pd.Timedelta(microseconds=1)
            found = self._read(s, start, hi)
            if len(found["ts"]):
                w = self._buf[s]
                keep = ~np.isin(w["ts"], found["ts"])
                merged = {k: np.concatenate((w[k][keep], found[k])) for k in w}
                order = np.argsort(merged["ts"], kind="stable")
                self._buf[s] = {k: v[order] for k, v in merged.items()}

    def _run(self, upto: pd.Timestamp | None = None, *,
             confirm: bool = False) -> list[CloseTime]:
        """Process the complete close times after the last one (up to ``upto``); with
        ``confirm``, a close time completed by a later candle only after the store said
        which candles of it exist (:meth:`_confirm`)."""
        times = self._complete_times(upto)
        if confirm and len(times) and self._lagging():
            self._confirm()
            times = self._complete_times(upto)
        done = []
        for t in times.tolist():
            step = self._step(int(t))
            if step is None:
                break
            done.append(step)
            if self.on_progress is not None:
                self.on_progress()
        self._trim()
        return done

    def _complete_times(self, upto: pd.Timestamp | None) -> np.ndarray:
        assert self._buf is not None
        bound = complete_until(self._newest())
        if bound is None:
            return np.zeros(0, dtype=np.int64)
        if upto is not None:
            bound = min(bound, upto.value // 1000)
        after = -1 if self._last is None else self._last.value // 1000
        if bound <= after:  # most candles: a close time still waiting for other symbols
            return np.zeros(0, dtype=np.int64)
        times = np.unique(np.concatenate([self._buf[s]["ts"] for s in self._symbols]))
        return times[(times > after) & (times <= bound)]

    def _lagging(self) -> bool:
        """Some symbol's newest candle is older than another's."""
        newest = self._newest()
        known = [t for t in newest if t is not None]
        return len(known) < len(newest) or min(known) < max(known)

    def _trim(self) -> None:
        """Keep ``window`` candles of each symbol at or before the last close time."""
        if self._last is None or self._buf is None:
            return
        last = self._last.value // 1000
        for s, w in self._buf.items():
            upto = int(np.searchsorted(w["ts"], last, "right"))
            if upto > self.window:
                self._buf[s] = W.rows(w, upto - self.window, len(w["ts"]))

    def _step(self, t: int) -> CloseTime | None:
        """Decide on every symbol with a candle at ``t``, fill, record; None once stopping."""
        if self._stop.is_set():
            return None
        assert self._buf is not None
        ts = pd.Timestamp(t, unit="us", tz="UTC")
        bars: dict[int, SymbolBar] = {}
        signals: dict[str, Signal] = {}
        for j, s in enumerate(self._symbols):
            w = self._buf[s]
            i = int(np.searchsorted(w["ts"], t))
            if i == len(w["ts"]) or int(w["ts"][i]) != t:
                continue
            window = W.rows(w, max(0, i - self.window + 1), i + 1)
            try:
                bars[j], signals[s] = self._decide(s, window, ts)
            except Exception as e:  # the strategy's code: anything can go wrong
                raise CandleError(self.id, ts, e) from e
        try:
            step = self.broker.on_close_time(self._account, bars)
        except Exception as e:
            raise CandleError(self.id, ts, e) from e
        if self._stop.is_set():
            return None
        fills = [(self._symbols[j], f) for j, f in step.fills]
        skipped = [(self._symbols[j], why) for j, why in step.skipped]
        self._record(ts, signals, step.fills, step.account, step.equity)
        self._account, self._last = step.account, ts
        for s, signal in signals.items():
            self._publish_signal(signal, s)
        if skipped:
            detail = "; ".join(f"{s}: entry skipped ({why})" for s, why in skipped)
            log.info("bot %s: %s: %s", self.id, ts.isoformat(), detail)
        return CloseTime(ts=ts, signals=signals, fills=fills, skipped=skipped,
                         account=step.account, equity=step.equity)

    def _decide(self, symbol: str, window: W.Window, ts: pd.Timestamp,
                ) -> tuple[SymbolBar, Signal]:
        view = self._with_informative(symbol, window) if self._informative else window
        d = last_decision(self.strategy, view, label=self._label)
        flags = signal_flags(self.broker.options.direction, d.entry, d.exit, d.short_entry,
                             d.short_exit)
        fraction = math.nan
        if self._vol:
            closes = window["close"][-(self._vol + 1):]
            fraction = float(volatility_fraction(closes, self._vol_target, self._vol,
                                                 self.timeframe.per_year,
                                                 self.config.leverage)[-1])
        o, h, lo, c = W.last_bar(window)
        bar = SymbolBar(o, h, lo, c, flags, d.stop_price, d.target_price, d.has_levels,
                        d.confidence, fraction)
        return bar, d.signal(ts, c)

    def _with_informative(self, symbol: str, window: W.Window) -> pd.DataFrame:
        """The window with the strategy's informative series, the other symbols' from
        the portfolio's candles up to the window's last close time (as the backtest
        takes them from the universe)."""
        assert self._buf is not None
        frame = frame_of(window)
        end = int(window["ts"][-1])
        others = {}
        for s, w in self._buf.items():
            upto = int(np.searchsorted(w["ts"], end, "right"))
            others[s] = frame_of(W.rows(w, 0, upto))
        return with_informative(self.strategy, frame, timeframe=self.timeframe, others=others,
                                symbol=symbol)

    def _record(self, ts: pd.Timestamp, signals: dict[str, Signal],
                fills: list[tuple[int, Fill]], account: PortfolioAccount,
                equity: float) -> None:
        rows = [{"symbol": s, "action": g.action, "confidence": g.confidence,
                 "price": g.price, "indicators": _finite_or_none(g.indicators)}
                for s, g in signals.items()]
        record = portfolio_candle_record(
            self.id, ts, signals=rows, fills=symbol_fills(fills, self._symbols),
            cash=account.cash, position=equity - account.cash, equity=equity,
            state=self._state_json(account))
        if self.sink is not None:
            self.sink.record(self, record)
        else:
            self.store.write_bot_candles([record])
            self.recorded = ts

    # -- driven by a host ----------------------------------------------------------------
    def start(self) -> None:
        """Load the state, mark the bot running, catch up from the store."""
        self.load()
        self.store.update_bot(self.id, status="running")
        self.publish_status("running", detail="started")
        self.catch_up()

    def on_message(self, message: object) -> None:
        """Act on a candle of one of its symbols (anything else is ignored)."""
        if isinstance(message, CandleMessage):
            self.process_candle(message)

    def on_reconnect(self) -> None:
        """The bus connection was lost and restored: candles may be missing; catch up."""
        self.catch_up()

    def check_store(self, *newest: pd.Timestamp | None) -> None:
        """Process the stored close times the bus did not deliver.

        ``newest`` is the newest stored candle of each of :attr:`series`. As for a
        bot of one symbol, the candles stored since the previous check are left to
        the bus until the next one.
        """
        before, self._stored = self._stored, tuple(newest)
        known = [t for t in before or () if t is not None]
        if not known or before == self._checked:  # nothing stored since the last look
            return
        upto = max(known)
        if self._last is None or upto > self._last:
            self._checked = before
            self.catch_up(upto=upto)
