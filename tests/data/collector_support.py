"""Helpers shared by the collector, provider and data-check tests (not a test module).

The truth the collector is compared with comes from the emulator's market model:
its klines (history) and its trades aggregated by tcp_lab's rule (live).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.data.emulator import EmulatorServer
from tcp_lab.retry import Backoff
from tcp_lab.timeframes import parse_timeframe

FAST = Backoff(initial=0.01, factor=2.0, maximum=0.05, jitter=0.5, attempts=5)
COLS = ["open", "high", "low", "close", "volume", "trade_count"]
#: ccxt settings for tests: a short timeout so injected timeouts cost little
CCXT = {"config": {"timeout": 1500}}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def recent_genesis(hours: float = 3.0) -> pd.Timestamp:
    """A genesis ``hours`` before now, on the minute: short histories, fast tests."""
    return (pd.Timestamp.now("UTC") - pd.Timedelta(hours=hours)).floor("1min")


def emulator(hours: float = 3.0, **kw) -> EmulatorServer:
    kw.setdefault("symbols", ("BTC/USDT", "ETH/USDT"))
    kw.setdefault("seed", 5)
    return EmulatorServer(genesis=recent_genesis(hours), **kw)


def kline_truth(emu: EmulatorServer, symbol: str, timeframe: str, first: pd.Timestamp,
                last: pd.Timestamp) -> pd.DataFrame:
    """The emulator's non-empty klines closing in ``[first, last]``, stamped with close time."""
    tf = parse_timeframe(timeframe)
    k = emu.market.klines(symbol, tf.name, first.value // 1_000_000 - tf.ms,
                          last.value // 1_000_000 - tf.ms + 1)
    keep = (k.volume > 0) & (k.count > 0)
    idx = pd.DatetimeIndex(pd.to_datetime((k.open_time[keep] + tf.ms) * 1000, unit="us",
                                          utc=True), name="ts")
    return pd.DataFrame({"open": k.open[keep], "high": k.high[keep], "low": k.low[keep],
                         "close": k.close[keep], "volume": k.volume[keep],
                         "trade_count": k.count[keep].astype(np.int64)}, index=idx)


def trade_truth(emu: EmulatorServer, symbol: str, timeframe: str, first: pd.Timestamp,
                last: pd.Timestamp) -> pd.DataFrame:
    """The emulator's trades aggregated by tcp_lab's rule, candles closing in ``[first, last]``."""
    tf = parse_timeframe(timeframe)
    lo = (first - tf.delta).value // 1_000_000
    trades = emu.market.trades(symbol, lo, last.value // 1_000_000 + 1).to_frame()
    trades = trades.loc[trades["ts"] > first - tf.delta]
    return aggregate_trades(trades, tf)[COLS]


def boundary_stamps(emu: EmulatorServer, symbol: str, timeframe: str, first: pd.Timestamp,
                    last: pd.Timestamp) -> pd.DatetimeIndex:
    """Close times whose candle differs between kline and tcp_lab rules (boundary-ms trades)."""
    tf = parse_timeframe(timeframe)
    t = emu.market.trades(symbol, (first - tf.delta).value // 1_000_000,
                          last.value // 1_000_000 + 1)
    on_edge = t.time[t.time % tf.ms == 0]
    stamps = np.concatenate([on_edge, on_edge + tf.ms]) * 1000
    return pd.DatetimeIndex(pd.to_datetime(stamps, unit="us", utc=True), name="ts")


def assert_candles_equal(got: pd.DataFrame, want: pd.DataFrame, *, exact: bool = True,
                         skip: pd.DatetimeIndex | None = None) -> None:
    """Same stamps, same OHLC and counts; volume exact or to 1e-9 relative."""
    if skip is not None and len(skip):
        got, want = got.drop(index=got.index.intersection(skip)), want.drop(
            index=want.index.intersection(skip))
    assert list(got.index) == list(want.index), (
        f"stamps differ: extra {list(got.index.difference(want.index))[:5]}, "
        f"missing {list(want.index.difference(got.index))[:5]}")
    for col in ("open", "high", "low", "close", "trade_count"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    if exact:
        np.testing.assert_array_equal(got["volume"].to_numpy(), want["volume"].to_numpy())
    else:
        np.testing.assert_allclose(got["volume"].to_numpy(), want["volume"].to_numpy(),
                                   rtol=1e-9)


def drain(sub, timeout: float = 0.2) -> list:
    out = []
    while (m := sub.get(timeout=timeout)) is not None:
        out.append(m)
    return out
