"""The metrics of :mod:`tcp_lab.backtest.metrics`, from the sweep kernels' running sums.

:func:`tcp_lab.backtest.metrics.compute_metrics` needs a run's equity curve
and trade list; a sweep keeps neither for thousands of combinations. The
kernels (:mod:`tcp_lab.backtest.kernels`) keep the sums each definition needs
(:data:`~tcp_lab.backtest.kernels.ACC_FIELDS`), and :func:`finalize_metrics`
applies the same definitions to them, vectorized over combinations. The tests
hold the two to 1e-9 on the same runs, gaps in the candles included: ``n_r``
counts the slots of the timeframe's grid (the missing candles' zero returns
change no sum), ``bars_in_market`` the slots a position was held.

The sweep reports :data:`~tcp_lab.backtest.metrics.METRIC_NAMES` at a
risk-free rate of 0; the metrics of a run's own series (alpha, beta, trade
durations, turnover: :mod:`tcp_lab.backtest.run_metrics`) are
:func:`~tcp_lab.backtest.run_backtest`'s only.
"""

from __future__ import annotations

import numpy as np

from tcp_lab.backtest.kernels import ACC_FIELDS
from tcp_lab.backtest.metrics import _NO_VOLATILITY, METRIC_NAMES

__all__ = ["finalize_metrics"]

_F = {name: i for i, name in enumerate(ACC_FIELDS)}


def finalize_metrics(acc: np.ndarray, bars_per_year: float, years: float) -> dict[str, np.ndarray]:
    """Metrics per combination from accumulators ``(n_combos, N_ACC)`` of one segment.

    Parameters
    ----------
    acc
        One segment's accumulators, one row per combination.
    bars_per_year
        Slots (candles of the timeframe) per 365-day year.
    years
        Span from the segment's first to its last candle in 365-day years.

    Returns
    -------
    dict
        :data:`~tcp_lab.backtest.metrics.METRIC_NAMES` -> array per combination
        (``n_trades`` as int64).
    """
    def col(name: str) -> np.ndarray:
        return acc[:, _F[name]]

    e0, e1, n = col("equity_start"), col("equity_end"), col("n_r")
    sum_r, sum_r2, sum_down2 = col("sum_r"), col("sum_r2"), col("sum_down2")
    mdd = col("max_dd")
    nt, nw = col("n_trades"), col("n_wins")
    gain, loss = col("gross_profit"), col("gross_loss")
    ann = np.sqrt(bars_per_year)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        valid = e0 > 0
        total = np.where(valid, e1 / e0 - 1.0, np.nan)
        growth = e1 / e0
        if years > 0:
            cagr = np.where(growth > 0, np.exp(np.log(np.where(growth > 0, growth, 1.0)) / years)
                            - 1.0, -1.0)
            cagr = np.where(valid, cagr, np.nan)
        else:
            cagr = np.full(len(acc), np.nan)
        mean = np.where(n > 0, sum_r / n, np.nan)
        var = (sum_r2 - n * mean * mean) / (n - 1)
        sd = np.sqrt(np.maximum(var, 0.0))
        sharpe = np.where((n >= 2) & (sd > _NO_VOLATILITY), mean / sd * ann, np.nan)
        dd = np.sqrt(sum_down2 / n)
        sortino = np.where(dd > 0, mean / dd * ann, np.where(mean > 0, np.inf, np.nan))
        sortino = np.where(n > 0, sortino, np.nan)
        calmar = np.where((mdd > 0) & ~np.isnan(cagr), cagr / np.abs(mdd), np.nan)
        win_rate = np.where(nt > 0, nw / nt, np.nan)
        pf = np.where(loss == 0, np.where(gain > 0, np.inf, np.nan), gain / loss)
        avg_ret = np.where(nt > 0, col("sum_trade_ret") / nt, np.nan)
        exposure = np.where(n > 0, col("bars_in_market") / n, np.nan)
    out = {
        "total_return": total,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": np.where(n > 0, mdd, np.nan),
        "calmar": calmar,
        "win_rate": win_rate,
        "profit_factor": pf,
        "n_trades": nt.astype(np.int64),
        "avg_trade_return": avg_ret,
        "exposure": exposure,
    }
    return {name: out[name] for name in METRIC_NAMES}
