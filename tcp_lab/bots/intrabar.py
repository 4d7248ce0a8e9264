"""Which market trades resolve a bot's live stop and target on a candle, and what it says.

For each candle closed while a position is open, in order of preference:

1. **the live stream** (``trades:{symbol}``, see :mod:`tcp_lab.bots.trade_stream`)
   when it holds every trade of the candle (no gap, and the collector's batch
   marked ``until`` the candle's close came) and at least one of them;
2. **the store** (``raw_trades``, written by ``tcp-lab collect --store-raw``
   before the candle is published);
3. **none**: the OHLC rule on the candle.

Every path gives the trades of ``(previous close, close]`` to the same broker
call, so a candle's fills do not depend on where its trades came from. The
bot publishes a status (``detail``) whenever the rule or the source changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tcp_lab.bots.trade_stream import Trades, TradeStream
from tcp_lab.bus import TradesMessage, trades_channel
from tcp_lab.execution import REASONS

if TYPE_CHECKING:
    from tcp_lab.bots.broker import Account
    from tcp_lab.store import Store

__all__ = ["IntrabarTrades", "early_exit_detail"]


def _utc(us: int) -> pd.Timestamp:
    return pd.Timestamp(us, unit="us", tz="UTC")


class IntrabarTrades:
    """The market trades of a bot's candles, from the live stream or the store.

    Attributes
    ----------
    rule
        ``"trades"`` or ``"ohlc"``: how the last candle with a live level was
        resolved (None: none yet).
    source
        ``"stream"`` or ``"store"`` when ``rule`` is ``"trades"``, else None.
    stream
        The live trades (None until the bot subscribes or receives a batch).
    """

    def __init__(self, store: Store, exchange: str, symbol: str) -> None:
        self.store, self.exchange, self.symbol = store, exchange, symbol
        self.rule: str | None = None
        self.source: str | None = None
        self.stream: TradeStream | None = None

    def listen(self) -> None:
        """Expect live trades (the bot subscribed to them)."""
        if self.stream is None:
            self.stream = TradeStream()

    def add(self, message: TradesMessage) -> None:
        """Keep a batch of live trades (of this bot's exchange and symbol)."""
        self.listen()
        self.stream.add(message)  # type: ignore[union-attr]

    def interrupt(self, reason: str) -> None:
        """Live batches may have been lost (``reason``: a bus reconnect…)."""
        if self.stream is not None:
            self.stream.interrupt(reason)

    def forming(self, after_us: int, timeframe_us: int) -> tuple[int, Trades] | None:
        """The close time and the trades so far of the candle forming after ``after_us`` (the
        last processed close), or None when the stream does not hold all of them yet."""
        if self.stream is None or not self.stream.whole_after(after_us):
            return None
        ts, price, amount = self.stream.pending()
        lo = int(np.searchsorted(ts, after_us, "right"))
        if lo == len(ts):
            return None
        close = -(-int(ts[lo]) // timeframe_us) * timeframe_us  # right-aligned bucket
        hi = int(np.searchsorted(ts, close, "right"))
        return close, (ts[lo:hi], price[lo:hi], amount[lo:hi])

    def resolve(self, prev_us: int | None, close_us: int, *, needed: bool,
                ) -> tuple[Trades | None, str]:
        """The trades of the candle ``(prev_us, close_us]``, and a status detail.

        Parameters
        ----------
        prev_us, close_us
            Close times (epoch microseconds) of the previous candle (None: none)
            and of this one.
        needed
            A level is live (a position is open): without it nothing is looked
            up, but the stream still drops the candle's trades.

        Returns
        -------
        (trades or None, detail)
            ``(ts, price, amount)`` arrays for the trades rule, None for the OHLC
            rule; ``detail`` is non-empty when the rule or the source changed.
        """
        streamed = None
        if self.stream is not None:
            streamed = self.stream.candle(close_us if prev_us is None else prev_us, close_us)
        if not needed or prev_us is None:
            return None, ""
        why = ""
        if self.stream is not None:
            if streamed is None and not self.stream.whole_after(prev_us):
                why = f"the live stream has a gap ({self.stream.gap})"
            elif streamed is None:
                why = "its trades were not all on the live stream yet"
            elif not len(streamed[0]):
                why = "none of its trades came on the live stream"
            else:
                return streamed, self._use("trades", "stream", close_us, why)
        stored = self.store.load_trade_prices(self.exchange, self.symbol, _utc(prev_us),
                                              _utc(close_us))
        if len(stored[0]):
            return stored, self._use("trades", "store", close_us, why)
        return None, self._use("ohlc", None, close_us, why)

    def _use(self, rule: str, source: str | None, close_us: int, why: str) -> str:
        if (rule, source) == (self.rule, self.source):
            return ""
        self.rule, self.source = rule, source
        candle = f"the candle of {_utc(close_us)}"
        if source == "stream":
            return ("stops and targets resolved on market trades from the live stream "
                    f"({trades_channel(self.symbol)})")
        if source == "store":
            return ("stops and targets resolved on market trades from the store"
                    + (f" from {candle} on: {why}" if why else ""))
        if why:
            return (f"stops and targets resolved on candles (OHLC rule) from {candle} on: {why}, "
                    "and the store has no trades for it; collect with --store-raw")
        return (f"stops and targets resolved on candles (OHLC rule): no stored trades for "
                f"{candle}; collect with --store-raw")


def early_exit_detail(account: Account, close_us: int) -> str:
    """The status detail of an exit that live trades triggered before the candle's close."""
    reason = REASONS[int(account.exit_reason)]
    size, value = account.bar_exit_size, account.bar_exit_value
    so_far = f", {size:.8g} filled at {value / size:.8g} so far" if size > 0 else ""
    return (f"{reason} hit on the live stream (exit from {_utc(int(account.exit_ready))}"
            f"{so_far}); booked at the close of the candle of {_utc(close_us)}")
