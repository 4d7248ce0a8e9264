"""Fixtures for the store tests: an open store per backend and small candle frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.store import open_store
from tcp_lab.timeframes import parse_timeframe


def make_candles(n: int, start: str = "2024-03-01 00:01", timeframe: str = "1m",
                 seed: int = 0, vwap: bool = False) -> pd.DataFrame:
    """``n`` valid candles closing at ``start``, ``start + tf``, …"""
    rng = np.random.default_rng(seed)
    close = 100 + rng.standard_normal(n).cumsum() * 0.1
    open_ = close + rng.standard_normal(n) * 0.05
    spread = rng.random(n) * 0.5
    idx = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n,
                        freq=parse_timeframe(timeframe).delta, name="ts").as_unit("us")
    idx = pd.DatetimeIndex(idx, freq=None)  # as read back from a store
    df = pd.DataFrame({
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread,
        "close": close,
        "volume": rng.random(n) * 10,
        "trade_count": rng.integers(0, 100, n),
    }, index=idx)
    if vwap:
        df["vwap"] = (df["high"] + df["low"]) / 2
    return df


def make_trades(n: int, start: str = "2024-03-01", first_id: int = 1, seed: int = 0,
                freq: str = "1s") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq=freq).as_unit("us"),
        "id": np.arange(first_id, first_id + n, dtype="int64"),
        "price": 100 + rng.random(n),
        "amount": rng.random(n),
        "side": rng.choice(["buy", "sell"], n),
    })


@pytest.fixture
def store(store_url):
    """An initialised store on each backend in turn."""
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def candle_factory():
    """``make_candles(n, start=…, timeframe=…, seed=…, vwap=…)``."""
    return make_candles


@pytest.fixture
def trade_factory():
    """``make_trades(n, start=…, first_id=…, seed=…, freq=…)``."""
    return make_trades
