"""A bot's live market trades from ``trades:{symbol}``, kept until their candle closes.

The collector publishes a symbol's live trades in numbered batches, a candle's
trades before the candle, the last of them marked ``until`` the candle's close
(:class:`~tcp_lab.bus.TradesMessage`). A :class:`TradeStream` keeps the trades
after the last candle the bot processed and, at each candle's close, hands over
that candle's trades (``ts`` in ``(previous close, close]``; later ones wait
for the next candle) **if the stream holds all of them**, that is:

- a batch marked ``until`` the close or later has arrived (else the candle is
  being read before its trades, e.g. from the store);
- no gap since before the candle began. A gap is a missed batch (a ``seq``
  that does not follow the previous one), a new stream (the collector
  restarted or its exchange feed broke), a bus reconnect, or the bot's own
  start. After a gap the stream is trusted again only for trades after the
  first one of the next batch, so the candle the gap fell in, and any before
  it, are resolved another way (stored trades, else the OHLC rule: the bot
  decides).

>>> import pandas as pd
>>> def batch(seq, times, until=None):
...     return TradesMessage.from_arrays(exchange="binance", symbol="BTC/USDT", stream="c1",
...         seq=seq, times=times, prices=[1.0] * len(times), amounts=[1.0] * len(times),
...         until=None if until is None else pd.Timestamp(until, unit="us", tz="UTC"))
>>> s = TradeStream()
>>> s.add(batch(0, [10, 20], until=20))
>>> s.candle(0, 20) is None           # the stream began inside this candle: not all of it
True
>>> s.add(batch(1, [30, 45], until=40))
>>> s.candle(20, 40)[0].tolist()      # trades in (20, 40]; 45 waits for the next candle
[30]
>>> s.add(batch(2, [55]))
>>> s.candle(40, 60) is None          # no batch says the trades up to 60 are all in
True
"""

from __future__ import annotations

import numpy as np

from tcp_lab.bus import TradesMessage

__all__ = ["TradeStream", "Trades"]

#: ``(ts, price, amount)``: int64 epoch microseconds, float64, float64 (time order).
Trades = tuple[np.ndarray, np.ndarray, np.ndarray]


class TradeStream:
    """Live trades of one symbol after the last processed candle, and whether they are whole.

    Attributes
    ----------
    gap
        Why the stream was last found incomplete (``""``: never), for the
        bot's status.
    """

    def __init__(self) -> None:
        self._parts: list[Trades] = []
        self._after = np.iinfo(np.int64).min  # trades at or before this are gone (processed)
        self._stream: str | None = None
        self._seq = -1
        self._trusted_after: int | None = None  # the buffer holds every trade after this
        self._resync = True  # the next trade received starts the trusted span
        self._until = np.iinfo(np.int64).min  # ... up to this (epoch us), said the collector
        self.gap = "no trade batch received yet"

    def interrupt(self, reason: str) -> None:
        """Batches may have been lost (a reconnect): trust nothing until the next one."""
        self._stream, self._seq = None, -1
        self._trusted_after, self._resync = None, True
        self.gap = reason

    def add(self, message: TradesMessage) -> None:
        """Keep the trades of a batch that are after the last processed candle."""
        follows = message.stream == self._stream and message.seq == self._seq + 1
        if not follows and self._stream is not None:
            self.interrupt(f"batch {message.seq} of stream {message.stream!r} followed batch "
                           f"{self._seq} of {self._stream!r}" if message.stream == self._stream
                           else f"a new trade stream {message.stream!r} began")
        self._stream, self._seq = message.stream, message.seq
        if message.until is not None:
            self._until = max(self._until, message.until.value // 1000)
        ts, price, amount = message.arrays()
        if self._resync and len(ts):
            self._trusted_after, self._resync = int(ts[0]), False
        keep = ts > self._after
        if not keep.all():
            ts, price, amount = ts[keep], price[keep], amount[keep]
        if len(ts):
            self._parts.append((ts, price, amount))

    def whole_after(self, ts_us: int) -> bool:
        """Whether the stream holds every trade after ``ts_us`` (epoch microseconds) that
        arrived so far (no gap since)."""
        return self._trusted_after is not None and ts_us >= self._trusted_after

    def complete_until(self, ts_us: int) -> bool:
        """Whether the collector said every trade up to ``ts_us`` was sent."""
        return self._until >= ts_us

    def pending(self) -> Trades:
        """The kept trades (after the last processed candle), in time order."""
        return self._merged()

    def candle(self, prev_us: int, close_us: int) -> Trades | None:
        """The trades in ``(prev_us, close_us]`` if the stream holds all of them, else None
        (:attr:`gap` or :meth:`complete_until` say why).

        Either way every kept trade up to ``close_us`` is dropped: the candle
        is processed next.
        """
        ts, price, amount = self._merged()
        lo = int(np.searchsorted(ts, prev_us, "right"))
        hi = int(np.searchsorted(ts, close_us, "right"))
        out = (ts[lo:hi], price[lo:hi], amount[lo:hi])
        self._parts = [(ts[hi:], price[hi:], amount[hi:])] if hi < len(ts) else []
        self._after = max(self._after, close_us)
        return out if self.whole_after(prev_us) and self.complete_until(close_us) else None

    def _merged(self) -> Trades:
        """The kept trades as one set of arrays, stably sorted by time (late trades)."""
        parts = self._parts
        if not parts:
            empty = np.zeros(0)
            return np.zeros(0, np.int64), empty, empty
        if len(parts) > 1:
            parts = [tuple(np.concatenate(col) for col in zip(*parts, strict=True))]
        ts, price, amount = parts[0]
        if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
            order = np.argsort(ts, kind="stable")
            ts, price, amount = ts[order], price[order], amount[order]
        self._parts = [(ts, price, amount)]
        return ts, price, amount
