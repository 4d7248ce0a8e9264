"""Metrics of one run beyond the sweep's: alpha and beta, trade durations, turnover.

:func:`~tcp_lab.backtest.metrics.compute_metrics` holds the metrics a sweep
computes for every combination too; these need a run's own series (the
candles' closes, the fills, the round trips), so only
:func:`~tcp_lab.backtest.run_backtest` (and the walk-forward's stitched run)
report them. Same conventions as :mod:`tcp_lab.backtest.metrics`: returns on
the timeframe's full grid of slots (a missing candle is a slot where the price
did not trade: zero return for the strategy and for buy-and-hold), fractions
as fractions, a year of 365 days.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tcp_lab.backtest.metrics import _NO_VOLATILITY, bar_returns, per_slot_rate, slot_weights

__all__ = ["RUN_METRIC_NAMES", "alpha_beta", "trade_durations", "turnover", "run_metrics"]

#: Keys of :func:`run_metrics`, in display order (after
#: :data:`~tcp_lab.backtest.metrics.METRIC_NAMES`).
RUN_METRIC_NAMES = ("alpha", "beta", "avg_trade_duration", "max_trade_duration", "turnover")


def alpha_beta(
    returns: np.ndarray,
    benchmark_returns: np.ndarray,
    n_slots: int,
    bars_per_year: float,
    risk_free_rate: float = 0.0,
) -> tuple[float, float]:
    """Jensen's alpha (annualised) and beta of per-bar returns against a benchmark's.

    ``beta = cov(r, b) / var(b)`` and ``alpha = (mean(r - c) - beta * mean(b - c))
    * bars_per_year`` over the ``n_slots`` slots of the full grid, where ``c``
    is the risk-free rate per slot (:func:`~tcp_lab.backtest.metrics.per_slot_rate`):
    the intercept of the regression of excess returns, annualised arithmetically.
    ``returns`` and ``benchmark_returns`` are per candle (the same length);
    the ``n_slots - len(returns)`` missing slots count as zero returns of both.
    ``(nan, nan)`` when the benchmark does not move (no variance) or with
    fewer than two slots.

    Examples
    --------
    >>> b = np.array([0.01, -0.02, 0.03, 0.0])
    >>> a, beta = alpha_beta(2 * b + 0.001, b, 4, 365.0)
    >>> round(beta, 12), round(a, 12)
    (2.0, 0.365)
    """
    x = np.asarray(returns, dtype=np.float64)
    y = np.asarray(benchmark_returns, dtype=np.float64)
    n_slots = int(n_slots)
    if n_slots < 2 or x.size == 0:
        return math.nan, math.nan
    extra = n_slots - x.size  # missing slots: both returns are 0
    mx, my = x.sum() / n_slots, y.sum() / n_slots
    dy = y - my
    syy = float(dy @ dy) + extra * my * my
    if not math.sqrt(syy / (n_slots - 1)) > _NO_VOLATILITY:
        return math.nan, math.nan
    sxy = float((x - mx) @ dy) + extra * mx * my
    beta = sxy / syy
    c = per_slot_rate(risk_free_rate, bars_per_year)
    alpha = ((mx - c) - beta * (my - c)) * bars_per_year
    return float(alpha), float(beta)


def trade_durations(entry_us: np.ndarray, exit_us: np.ndarray) -> tuple[pd.Timedelta, pd.Timedelta]:
    """Average and longest time in the market of closed round trips (``NaT`` without any).

    A round trip lasts from its entry candle's close time to its exit
    candle's close time (epoch microseconds in), so a quiet stretch without
    candles counts as the time it took.

    Examples
    --------
    >>> trade_durations(np.array([0, 60_000_000]), np.array([120_000_000, 600_000_000]))
    (Timedelta('0 days 00:05:30'), Timedelta('0 days 00:09:00'))
    """
    d = np.asarray(exit_us, dtype=np.int64) - np.asarray(entry_us, dtype=np.int64)
    if d.size == 0:
        return pd.NaT, pd.NaT
    return pd.Timedelta(float(d.mean()), unit="us"), pd.Timedelta(int(d.max()), unit="us")


def turnover(traded_value: float, value: np.ndarray, slots: np.ndarray) -> float:
    """Value traded (every fill, entries and exits) over the time-weighted average equity.

    ``value`` is the equity at each candle's close, weighted by the slots it
    stands for (up to the next candle; :func:`~tcp_lab.backtest.metrics.slot_weights`).
    A multiple over the whole run: ``2.0`` is the equity traded twice, e.g.
    one round trip with all of it. ``nan`` when the average equity is not
    positive.

    Examples
    --------
    >>> turnover(20_000.0, np.array([10_000.0, 10_000.0]), np.array([0, 1]))
    2.0
    """
    v = np.asarray(value, dtype=np.float64)
    if v.size == 0:
        return math.nan
    w = slot_weights(slots)
    average = float(v @ w / w.sum())
    if not average > 0:
        return math.nan
    return float(traded_value / average)


def run_metrics(
    equity: np.ndarray,
    close: np.ndarray,
    slots: np.ndarray,
    bars_per_year: float,
    *,
    entry_us: np.ndarray,
    exit_us: np.ndarray,
    traded_value: float,
    risk_free_rate: float = 0.0,
) -> dict[str, float | pd.Timedelta]:
    """:data:`RUN_METRIC_NAMES` of one run.

    Parameters
    ----------
    equity
        Equity curve starting with the initial capital (``n + 1`` values for
        ``n`` candles), as :func:`~tcp_lab.backtest.metrics.compute_metrics`.
    close
        The candles' closes: buy-and-hold bought at the first close.
    slots
        Position of each candle on the timeframe's grid
        (:func:`~tcp_lab.backtest.metrics.grid_slots`).
    bars_per_year
        Slots per 365-day year.
    entry_us, exit_us
        Entry and exit candle close times of the closed round trips (epoch µs).
    traded_value
        Sum of ``|size| * price`` over every fill.
    risk_free_rate
        Annual rate (``0.04``: 4 % a year).

    Returns
    -------
    dict
        ``alpha`` (annualised fraction), ``beta`` (ratio),
        ``avg_trade_duration``/``max_trade_duration`` (``pandas.Timedelta``),
        ``turnover`` (a multiple).
    """
    e = np.asarray(equity, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    s = np.asarray(slots, dtype=np.int64)
    bench = np.zeros(c.size)
    bench[1:] = c[1:] / c[:-1] - 1.0  # bought at the first close: nothing before it
    n_slots = int(s[-1] - s[0] + 1) if s.size else 0
    alpha, beta = alpha_beta(bar_returns(e), bench, n_slots, bars_per_year, risk_free_rate)
    avg, longest = trade_durations(entry_us, exit_us)
    return {
        "alpha": alpha,
        "beta": beta,
        "avg_trade_duration": avg,
        "max_trade_duration": longest,
        "turnover": turnover(traded_value, e[1:], s),
    }
