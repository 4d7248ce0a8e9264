"""Backtest metrics by our own written-down definitions (numpy in, floats out).

Conventions used by every function here:

* ``equity`` is the equity curve **starting with the initial capital**:
  ``equity[0]`` is the cash before the first fill, ``equity[i]`` (``i >= 1``)
  the marked-to-market value at the close of candle ``i - 1``. The per-bar
  returns are ``r[i] = equity[i + 1] / equity[i] - 1``.
* Returns and drawdowns are **fractions** (``0.25`` is 25 %).
* A year is 365 days (crypto trades every day). ``bars_per_year`` comes from
  the candle timeframe (``Timeframe.per_year``: 525,600 for 1m candles).
* **Returns live on the timeframe's full grid.** A missing candle (no trade in
  its slot; kept missing by design) is a slot where the price did not trade:
  its return is 0 and the equity is carried. ``slots`` (:func:`grid_slots`)
  says where each candle sits on the grid; a candle after ``k - 1`` missing
  slots spans ``k`` slots, its return is the whole move and the ``k - 1``
  slots before it add zero returns. Sums of returns and of squares do not
  change, only the count of observations does (``n_slots``, the closed form
  the sweep uses too), so Sharpe and Sortino annualised by the nominal
  ``bars_per_year`` are right on illiquid series. Exposure is in time: a
  position held at a candle's close counts for every slot up to the next
  candle. Without ``slots`` the candles are taken as contiguous.
* The risk-free rate is annual (``risk_free_rate``, default 0); per slot it
  is ``(1 + rate) ** (1 / bars_per_year) - 1`` (:func:`per_slot_rate`). Sharpe
  and Sortino use returns in excess of it.
* Trade statistics use **closed trades only** (an open position at the end is
  in the equity, not in the win rate).
* A metric that is undefined for the input (no trades, zero volatility, zero
  duration) is ``nan``; ``inf`` only where the definition gives it (profit
  factor without a losing trade).

The functions take plain numpy arrays so the parameter sweep can call them per
combination (or mirror them in numba).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "METRIC_NAMES",
    "grid_slots",
    "slot_weights",
    "per_slot_rate",
    "total_return",
    "cagr",
    "bar_returns",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "profit_factor",
    "exposure",
    "compute_metrics",
]

#: Per-bar return standard deviation treated as zero (float rounding of a constant return).
_NO_VOLATILITY = 1e-13

#: Keys of :func:`compute_metrics`, in display order.
METRIC_NAMES = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "profit_factor",
    "n_trades",
    "avg_trade_return",
    "exposure",
)


def grid_slots(ts_us: np.ndarray, step_us: int) -> np.ndarray:
    """Position of each candle on its timeframe's grid, from the first candle (int64).

    ``ts_us`` are close times in epoch microseconds (on the grid), ``step_us``
    the timeframe. Contiguous candles give ``0, 1, 2, …``; a gap of missing
    candles skips their slots.

    Examples
    --------
    >>> grid_slots(np.array([60, 120, 300]) * 1_000_000, 60_000_000)
    array([0, 1, 4])
    """
    ts = np.asarray(ts_us, dtype=np.int64)
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    return (ts - ts[0]) // int(step_us)


def slot_weights(slots: np.ndarray) -> np.ndarray:
    """Slots each candle's close stands for: up to the next candle (1 for the last one).

    A position (or an equity) at a candle's close is carried through the
    missing slots after it; the weights sum to the number of slots.

    Examples
    --------
    >>> slot_weights(np.array([0, 1, 4, 5]))
    array([1, 3, 1, 1])
    """
    s = np.asarray(slots, dtype=np.int64)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.diff(s, append=s[-1] + 1)


def per_slot_rate(annual_rate: float, bars_per_year: float) -> float:
    """An annual rate as a rate per slot: ``(1 + annual_rate) ** (1 / bars_per_year) - 1``.

    Examples
    --------
    >>> round(per_slot_rate(0.21, 2.0), 12)
    0.1
    """
    if annual_rate == 0:
        return 0.0
    return math.expm1(math.log1p(annual_rate) / bars_per_year)


def total_return(equity: np.ndarray) -> float:
    """``equity[-1] / equity[0] - 1``: the whole run's return on the initial capital.

    Examples
    --------
    >>> round(total_return(np.array([100.0, 110.0, 121.0])), 12)
    0.21
    """
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0 or e[0] <= 0:
        return math.nan
    return float(e[-1] / e[0] - 1.0)


def cagr(equity: np.ndarray, years: float) -> float:
    """Compound annual growth rate: ``(equity[-1] / equity[0]) ** (1 / years) - 1``.

    ``years`` is the span from the first to the last candle in 365-day years.
    ``-1`` when the equity ends at or below zero; ``nan`` when ``years <= 0``.

    Examples
    --------
    >>> round(cagr(np.array([100.0, 121.0]), 2.0), 12)
    0.1
    """
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0 or e[0] <= 0 or not years > 0:
        return math.nan
    growth = e[-1] / e[0]
    if growth <= 0:
        return -1.0
    try:
        return float(math.exp(math.log(growth) / years) - 1.0)
    except OverflowError:
        return math.inf


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """Per-bar simple returns ``equity[1:] / equity[:-1] - 1`` (0 where the base is 0)."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size < 2:
        return np.empty(0)
    base = e[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = e[1:] / base - 1.0
    if not (base != 0).all():
        r[base == 0] = 0.0
    return r


def sharpe(returns: np.ndarray, bars_per_year: float, risk_free_rate: float = 0.0) -> float:
    """Annualised Sharpe ratio: ``mean(r - c) / std(r, ddof=1) * sqrt(bars_per_year)``.

    ``r`` are per-slot returns (on the full grid: zeros for missing candles),
    ``c`` the annual ``risk_free_rate`` per slot (:func:`per_slot_rate`).
    ``nan`` with fewer than two returns or no volatility (a standard
    deviation below ``1e-13``: the rounding noise of a constant return).

    Examples
    --------
    >>> round(sharpe(np.array([0.01, -0.01, 0.02, 0.0]), 365), 4)
    7.3993
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return math.nan
    c = per_slot_rate(risk_free_rate, bars_per_year)
    return _sharpe(float(np.mean(r)) - c, float(np.std(r, ddof=1)), bars_per_year)


def _sharpe(mean: float, sd: float, bars_per_year: float) -> float:
    if not sd > _NO_VOLATILITY:
        return math.nan
    return mean / sd * math.sqrt(bars_per_year)


def sortino(returns: np.ndarray, bars_per_year: float, risk_free_rate: float = 0.0) -> float:
    """Annualised Sortino ratio: ``mean(r - c) / DD * sqrt(bars_per_year)``.

    ``r`` are per-slot returns, ``c`` the risk-free rate per slot (as
    :func:`sharpe`). ``DD`` is the downside deviation against the risk-free
    target over **all** slots: ``sqrt(mean(min(r - c, 0) ** 2))`` (slots above
    it count as zero shortfall). ``inf`` when no slot falls short and the mean
    excess is positive, ``nan`` when it is 0 as well or there are no returns.

    Examples
    --------
    >>> round(sortino(np.array([0.02, -0.01]), 1), 4)
    0.7071
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return math.nan
    c = per_slot_rate(risk_free_rate, bars_per_year)
    dd = math.sqrt(float(np.mean(np.minimum(r - c, 0.0) ** 2)))
    return _sortino(float(np.mean(r)) - c, dd, bars_per_year)


def _sortino(mean: float, dd: float, bars_per_year: float) -> float:
    if dd == 0:
        return math.inf if mean > 0 else math.nan
    return mean / dd * math.sqrt(bars_per_year)


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of that peak (``0.25`` = 25 %).

    ``max_t (1 - equity[t] / max(equity[:t+1]))``; 0 for a curve that never
    falls. Reported as a positive number.

    Examples
    --------
    >>> max_drawdown(np.array([100.0, 120.0, 90.0, 130.0]))
    0.25
    """
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0 or e[0] <= 0:
        return math.nan
    peak = np.maximum.accumulate(e)
    return float(max(1.0 - (e / peak).min(), 0.0))


@njit(cache=True)
def _curve_stats_nb(e, n_slots, rf):  # pragma: no cover - numba
    """Mean excess over ``rf`` (per slot) and sample standard deviation of the per-slot
    returns (:func:`bar_returns` plus ``n_slots - n`` zero returns of missing candles), their
    downside deviation below ``rf`` (:func:`sortino`) and the maximum drawdown
    (:func:`max_drawdown`; carried equity changes no drawdown), in one pass. The variance
    sums deviations from the first return (shifted data: the textbook two-pass result to
    rounding, without a second pass)."""
    n = e.shape[0] - 1
    if n == 0:
        return np.nan, np.nan, np.nan, 0.0 if e[0] > 0 else np.nan
    shift = e[1] / e[0] - 1.0 if e[0] != 0 else 0.0
    total = 0.0
    dev = 0.0
    dev2 = 0.0
    down2 = 0.0
    peak = e[0]
    mdd = 0.0
    trough = peak
    for i in range(n):
        base, now = e[i], e[i + 1]
        r = now / base - 1.0 if base != 0 and now != base else 0.0  # a flat bar: exactly 0
        total += r
        d = r - shift
        dev += d
        dev2 += d * d
        x = r - rf
        if x < 0:
            down2 += x * x
        if now > peak:  # the deepest fall under a peak is at its lowest equity
            if peak > 0:
                mdd = max(mdd, 1.0 - trough / peak)
            peak = trough = now
        elif now < trough:
            trough = now
    mdd = max(mdd, 1.0 - trough / peak) if peak > 0 else mdd
    if e[0] <= 0:
        mdd = np.nan
    extra = n_slots - n  # the missing slots' zero returns, in closed form
    if extra > 0:
        dev -= extra * shift
        dev2 += extra * shift * shift
        if rf > 0:
            down2 += extra * rf * rf
    n = n_slots
    sd = np.sqrt(max(dev2 - dev * dev / n, 0.0) / (n - 1)) if n > 1 else np.nan
    return total / n - rf, sd, np.sqrt(down2 / n), mdd


def calmar(cagr_value: float, max_drawdown_value: float) -> float:
    """``CAGR / |max drawdown|`` (both fractions); ``nan`` when there was no drawdown."""
    if not max_drawdown_value > 0 or math.isnan(cagr_value):
        return math.nan
    return cagr_value / abs(max_drawdown_value)


def win_rate(trade_pnl: np.ndarray) -> float:
    """Fraction of closed trades with a positive PnL (after fees); ``nan`` without trades."""
    pnl = np.asarray(trade_pnl, dtype=np.float64)
    if pnl.size == 0:
        return math.nan
    return float(np.count_nonzero(pnl > 0) / pnl.size)


def profit_factor(trade_pnl: np.ndarray) -> float:
    """Gross profit / gross loss over closed trades: ``sum(pnl > 0) / |sum(pnl < 0)|``.

    ``inf`` when there are winners and no loser, ``nan`` without winners and losers.

    Examples
    --------
    >>> profit_factor(np.array([30.0, -10.0, -5.0]))
    2.0
    """
    pnl = np.asarray(trade_pnl, dtype=np.float64)
    gain = float(pnl[pnl > 0].sum())
    loss = float(-pnl[pnl < 0].sum())
    if loss == 0:
        return math.inf if gain > 0 else math.nan
    return gain / loss


def exposure(in_market: np.ndarray, slots: np.ndarray | None = None) -> float:
    """Fraction of the time a position is held (``nan`` for no candles).

    ``in_market`` says whether a position is held at each candle's close; it
    counts for the slots up to the next candle (:func:`slot_weights`), over
    all the slots from the first candle to the last. Without ``slots``: the
    fraction of candles.
    """
    m = np.asarray(in_market, dtype=bool)
    if m.size == 0:
        return math.nan
    if slots is None:
        return float(np.count_nonzero(m) / m.size)
    w = slot_weights(slots)
    return float(w[m].sum() / w.sum())


def compute_metrics(
    equity: np.ndarray,
    trade_pnl: np.ndarray,
    trade_returns: np.ndarray,
    in_market: np.ndarray,
    bars_per_year: float,
    years: float,
    *,
    slots: np.ndarray | None = None,
    risk_free_rate: float = 0.0,
) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` for one run.

    Parameters
    ----------
    equity
        Equity curve starting with the initial capital (length ``n + 1`` for
        ``n`` candles).
    trade_pnl, trade_returns
        PnL (currency, after fees) and return (PnL / cost of entry, after
        fees) of each **closed** trade.
    in_market
        bool per candle: a position is held at that candle's close.
    bars_per_year
        Slots per 365-day year (``parse_timeframe("1m").per_year``).
    years
        Span from the first to the last candle in 365-day years.
    slots
        Position of each candle on the timeframe's grid (:func:`grid_slots`):
        missing candles count as slots with a zero return, and exposure is
        in time. ``None``: the candles are contiguous.
    risk_free_rate
        Annual risk-free rate for Sharpe and Sortino (``0.04`` is 4 %).

    Returns
    -------
    dict
        ``total_return``, ``cagr``, ``max_drawdown``, ``win_rate``,
        ``exposure``, ``avg_trade_return`` (fractions); ``sharpe``,
        ``sortino``, ``calmar``, ``profit_factor`` (ratios); ``n_trades``
        (closed trades, an int).

    Examples
    --------
    >>> m = compute_metrics(np.array([100.0, 110.0, 99.0, 121.0]), np.array([21.0]),
    ...                     np.array([0.21]), np.array([True, True, True]), 365.0, 3 / 365)
    >>> round(m["total_return"], 12), round(m["max_drawdown"], 12), m["n_trades"]
    (0.21, 0.1, 1)
    """
    e = np.ascontiguousarray(equity, dtype=np.float64)
    tr = np.asarray(trade_returns, dtype=np.float64)
    growth = cagr(e, years)
    n_slots = e.size - 1
    if slots is not None and len(slots):
        n_slots = int(slots[-1] - slots[0] + 1)
    rf = per_slot_rate(risk_free_rate, bars_per_year)
    # the curve's statistics in one compiled pass (the definitions above, fused)
    mean, sd, dd, mdd = _curve_stats_nb(e, n_slots, rf) if e.size else (math.nan,) * 4
    return {
        "total_return": total_return(e),
        "cagr": growth,
        "sharpe": _sharpe(mean, sd, bars_per_year) if n_slots > 1 else math.nan,
        "sortino": _sortino(mean, dd, bars_per_year) if e.size > 1 else math.nan,
        "max_drawdown": mdd,
        "calmar": calmar(growth, mdd),
        "win_rate": win_rate(trade_pnl),
        "profit_factor": profit_factor(trade_pnl),
        "n_trades": int(np.asarray(trade_pnl).size),
        "avg_trade_return": float(tr.mean()) if tr.size else math.nan,
        "exposure": exposure(in_market, slots),
    }
