"""Factories of realistic synthetic market data, shared by tests, notebooks and benchmarks.

Everything is deterministic for a given ``seed`` and needs no network.

>>> from tcp_lab.testing import make_candles, make_trades
>>> make_candles(3).index[0]
Timestamp('2024-01-01 00:01:00+0000', tz='UTC')
>>> list(make_trades(2).columns)
['ts', 'price', 'amount', 'id', 'side']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tcp_lab.timeframes import CANDLE_COLUMNS, TS_DTYPE, close_time, parse_timeframe

__all__ = ["make_candles", "make_trades"]

#: Annualised volatility of the synthetic price (roughly BTC's).
_ANNUAL_VOL = 0.6
_YEAR_SECONDS = 365 * 86400


def make_candles(
    n: int,
    timeframe: str = "1m",
    start: str | pd.Timestamp = "2024-01-01",
    seed: int = 0,
    start_price: float = 40000.0,
    *,
    volatility: float = _ANNUAL_VOL,
    drift: float = 0.0,
) -> pd.DataFrame:
    """Synthetic candles: a geometric Brownian motion with valid OHLC.

    Parameters
    ----------
    n
        Number of candles.
    timeframe
        Candle length (``"1m"``, ``"5m"``, ``"1h"``…).
    start
        UTC time the first candle opens (naive strings are read as UTC); the
        first candle closes one timeframe later, on the close-time grid.
    seed
        Random seed.
    start_price
        Open of the first candle.
    volatility, drift
        Annualised volatility and drift of the log price.

    Returns
    -------
    DataFrame
        ``open high low close volume trade_count`` indexed by ``ts``
        (``datetime64[us, UTC]``, candle close times); ``open`` equals the
        previous close, ``high``/``low`` bracket open and close.

    Examples
    --------
    >>> c = make_candles(1000, "5m", seed=1)
    >>> bool((c["high"] >= c[["open", "close"]].max(axis=1)).all())
    True
    """
    tf = parse_timeframe(timeframe)
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    first_close = close_time(t0, tf)
    if first_close == t0:
        first_close = t0 + tf.delta
    index = _grid(first_close, tf.us, n)

    dt = tf.seconds / _YEAR_SECONDS
    sigma = volatility * np.sqrt(dt)
    log_ret = rng.normal((drift - 0.5 * volatility**2) * dt, sigma, n)
    close = start_price * np.exp(np.cumsum(log_ret))
    open_ = np.empty(n)
    open_[:1] = start_price
    open_[1:] = close[:-1]
    wick_hi = np.abs(rng.normal(0.0, 0.5 * sigma, n))
    wick_lo = np.abs(rng.normal(0.0, 0.5 * sigma, n))
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    activity = 1.0 + 20.0 * np.abs(log_ret) / max(sigma, 1e-12)
    trade_count = rng.poisson(30.0 * activity * tf.seconds / 60.0).astype(np.int64)
    volume = trade_count * rng.lognormal(-4.0, 0.5, n)
    data = dict(zip(CANDLE_COLUMNS, (open_, high, low, close, volume, trade_count), strict=True))
    return pd.DataFrame(data, index=index)


def _grid(first: pd.Timestamp, step_us: int, n: int) -> pd.DatetimeIndex:
    us = first.value // 1000 + np.arange(n, dtype=np.int64) * step_us
    return pd.DatetimeIndex(us.astype("datetime64[us]"), name="ts").tz_localize("UTC")


def make_trades(
    n: int,
    start: str | pd.Timestamp = "2024-01-01",
    seed: int = 0,
    start_price: float = 40000.0,
    *,
    rate: float = 5.0,
    volatility: float = _ANNUAL_VOL,
    first_id: int = 1_000_000,
    tick: float = 0.01,
) -> pd.DataFrame:
    """Synthetic market trades: Poisson arrivals on a random-walk price.

    Parameters
    ----------
    n
        Number of trades.
    start
        UTC time before the first trade (naive strings are read as UTC).
    seed
        Random seed.
    start_price
        Price level at ``start``.
    rate
        Mean trades per second.
    volatility
        Annualised volatility of the price.
    first_id
        Exchange trade id of the first trade (ids increase by one).
    tick
        Price increment; prices are rounded to it.

    Returns
    -------
    DataFrame
        Columns ``ts`` (``datetime64[us, UTC]``, millisecond precision like
        exchanges, non-decreasing), ``price``, ``amount`` (> 0), ``id``
        (int64, increasing), ``side`` (``"buy"``/``"sell"``).

    Examples
    --------
    >>> t = make_trades(100, seed=2)
    >>> bool(t["ts"].is_monotonic_increasing and t["id"].is_unique)
    True
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    gaps_ms = np.ceil(rng.exponential(1000.0 / rate, n)).astype(np.int64)
    ms = t0.value // 1_000_000 + np.cumsum(gaps_ms)
    ts = pd.DatetimeIndex(ms.astype("datetime64[ms]")).as_unit("us").tz_localize("UTC")
    sigma = volatility * np.sqrt(gaps_ms / 1000.0 / _YEAR_SECONDS)
    price = start_price * np.exp(np.cumsum(rng.normal(0.0, 1.0, n) * sigma))
    price = np.maximum(np.round(price / tick) * tick, tick)
    amount = np.round(rng.lognormal(-4.0, 1.0, n), 8)
    amount = np.maximum(amount, 1e-8)
    side = np.where(rng.random(n) < 0.5, "buy", "sell")
    return pd.DataFrame(
        {
            "ts": pd.Series(ts, dtype=TS_DTYPE),
            "price": price,
            "amount": amount,
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "side": side,
        }
    )
