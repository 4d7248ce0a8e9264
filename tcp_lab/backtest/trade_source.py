"""Market trades for a trades-resolved backtest: from a frame or from the store, indexed by bar.

The engine needs the trades' prices in time order and, per candle, the slice
of them it holds (``(T_prev, T]``) and their extremes
(:func:`tcp_lab.execution.trades.bar_index_nb`). Trades are read for the
candles' range only: from the first candle's close to the last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd

from tcp_lab.data._trades import check_values, sort_trades
from tcp_lab.data._trades import trade_arrays as read_trades
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.execution.trades import bar_index_nb

__all__ = ["TradeArrays", "TradeChunks", "trade_arrays", "CHUNK_TRADES"]

#: Trades read from the store per chunk of candles (about 50 MB of times, prices, amounts).
CHUNK_TRADES = 2_000_000


class TradeArrays(NamedTuple):
    """Market trades in time order and the per-bar index the kernel reads.

    ``ts`` (epoch µs) and ``amount`` may be empty: the kernel reads them only
    for ``latency_ms`` and ``max_volume_share``.
    """

    price: np.ndarray
    ts: np.ndarray
    amount: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    low: np.ndarray
    high: np.ndarray


def trade_arrays(trades: pd.DataFrame, candles: pd.DataFrame, *, timed: bool = True
                 ) -> TradeArrays:
    """Index a trades frame (``ts, price, amount[, id]``) by the bars of validated ``candles``.

    Validation and order are the data package's (:mod:`tcp_lab.data._trades`:
    the same rules as aggregation): by ``ts``, then ``id``. ``timed=False``
    leaves out times and amounts.

    Raises
    ------
    DataError
        Missing columns, naive times, NaN or non-positive prices, negative
        amounts; the message names the rows.
    """
    arr = sort_trades(read_trades(trades, name="trades"))
    check_values(arr, "trades")
    return _indexed(candles.index.as_unit("us").asi8, arr.ts, arr.price, arr.amount, timed)


def _indexed(bar_ts: np.ndarray, ts: np.ndarray, price: np.ndarray, amount: np.ndarray,
             timed: bool) -> TradeArrays:
    lo, hi, low, high = bar_index_nb(bar_ts, ts, price)
    if not timed:
        return TradeArrays(price, _NONE, _NONE, lo, hi, low, high)
    return TradeArrays(price, ts.astype(np.float64), amount, lo, hi, low, high)


_NONE = np.zeros(0)


class TradeChunks:
    """Market trades for a backtest, as ``(first bar, stop bar, TradeArrays)`` chunks in order.

    A frame is one chunk. ``"store"`` reads the stored trades of
    ``exchange``/``symbol`` a range of candles at a time (about
    :data:`CHUNK_TRADES` trades each, from the candles' ``trade_count``), so a
    backtest over more trades than fit in memory streams them in time order.

    Raises
    ------
    ConfigError
        ``trades`` is neither a frame nor ``"store"``, or ``"store"`` without
        exchange and symbol.
    DataError
        A bad trades frame, or no stored trades for the candles' range.
    """

    def __init__(self, trades: pd.DataFrame | str, candles: pd.DataFrame, *,
                 exchange: str | None = None, symbol: str | None = None,
                 chunk_trades: int | None = None, timed: bool = True) -> None:
        self.candles, self.exchange, self.symbol = candles, exchange, symbol
        self.chunk_trades = int(CHUNK_TRADES if chunk_trades is None else chunk_trades)
        self.timed = timed
        self._frame: TradeArrays | None = None
        if isinstance(trades, pd.DataFrame):
            self._frame = trade_arrays(trades, candles, timed=timed)
        elif not isinstance(trades, str) or trades != "store":
            raise ConfigError(f"run_backtest: trades={trades!r}",
                              hint="pass a DataFrame of trades, or trades='store'")
        elif not exchange or not symbol:
            raise ConfigError("run_backtest: trades='store' needs exchange= and symbol=",
                              hint="e.g. exchange='binance', symbol='BTC/USDT'")

    def whole(self) -> TradeArrays:
        """All the trades of the candles' range at once (what a sweep's kernels index)."""
        if self._frame is not None:
            return self._frame
        from tcp_lab.store import open_store

        index = self.candles.index
        with open_store() as store:
            ts, price, amount = store.load_trade_prices(self.exchange, self.symbol, index[0],
                                                        index[-1])
        if len(ts) == 0:
            raise self._none_error()
        return _indexed(index.as_unit("us").asi8, ts, price, amount, self.timed)

    def _none_error(self) -> DataError:
        index = self.candles.index
        return DataError(f"no stored trades for {self.exchange} {self.symbol} between "
                         f"{index[0]} and {index[-1]}",
                         hint="collect live trades, or import a dump: tcp-lab data import FILE")

    def _bounds(self) -> list[tuple[int, int]]:
        n = len(self.candles)
        counts = self.candles["trade_count"].to_numpy() if "trade_count" in self.candles else None
        if counts is None or counts.sum() == 0:
            step = 10_000
            return [(a, min(a + step, n)) for a in range(0, n, step)]
        cuts = np.searchsorted(np.cumsum(counts),
                               np.arange(self.chunk_trades, counts.sum(), self.chunk_trades),
                               "right")
        edges = np.unique(np.concatenate(([0], cuts, [n])))
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]

    def __iter__(self) -> Iterator[tuple[int, int, TradeArrays]]:
        if self._frame is not None:
            yield 0, len(self.candles), self._frame
            return
        from tcp_lab.store import open_store

        bar_ts = self.candles.index.as_unit("us").asi8
        index = self.candles.index
        found = 0
        with open_store() as store, store.bounded_memory():
            for a, b in self._bounds():
                start = index[max(a - 1, 0)]  # bar 0's own trades never meet a live level
                ts, price, amount = store.load_trade_prices(self.exchange, self.symbol, start,
                                                            index[b - 1])
                found += len(ts)
                if a == 0 and len(ts) == 0 and b == len(index):
                    break
                yield a, b, _indexed(bar_ts[a:b], ts, price, amount, self.timed)
        if found == 0:
            raise self._none_error()
