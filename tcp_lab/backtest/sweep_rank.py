"""How a sweep ranks its rows, and how much its winners are worth after so many trials.

Ranking: best first by the sort metric; a row whose metric is not finite
(``inf`` Sortino when no candle lost, ``inf`` profit factor with one winning
trade, NaN) and a row with fewer than ``min_trades`` trades in the ranked
segment come after every other row, in their own order.

Deflation: the best ``top`` rows are re-run with
:func:`~tcp_lab.backtest.run_backtest` on the ranked segment, for the
skewness and kurtosis of their per-candle returns, and get the probabilistic
Sharpe ratio (``psr``: the probability that their true Sharpe ratio is above
0) and the deflated Sharpe ratio (``dsr``: the same against the best Sharpe
ratio that luck alone gives over the sweep's trials; Bailey and López de Prado
2014), from the sweep's own number of trials and the spread of their Sharpe
ratios. The other rows get NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.errors import DataError
from tcp_lab.execution import LEVEL_OPTIONS
from tcp_lab.stats import deflated_sharpe, probabilistic_sharpe, sharpe_moments
from tcp_lab.strategies import BaseStrategy

__all__ = ["rank_rows", "deflate_best"]


def rank_rows(df: pd.DataFrame, key: str, ascending: bool, min_trades: int | None,
              trades_column: str | None) -> pd.DataFrame:
    """``df`` best first by ``key`` (``ascending``: lower is better); non-finite values
    and fewer than ``min_trades`` trades (in ``trades_column``) last."""
    values = df[key].astype("float64")
    ok = np.isfinite(values.to_numpy())
    if min_trades is not None and trades_column is not None and trades_column in df:
        ok &= df[trades_column].to_numpy() >= min_trades
    order = values.where(ok)
    ranked = order.sort_values(ascending=ascending, na_position="last", kind="stable")
    return df.loc[ranked.index]


def deflate_best(df: pd.DataFrame, cls: type[BaseStrategy], candles: pd.DataFrame,
                 segment: tuple[int, int], prefix: str, bars_per_year: float, top: int,
                 options: Mapping[str, Any], params: Sequence[str],
                 **backtest_inputs: Any) -> dict[str, Any]:
    """Add ``psr`` and ``dsr`` for the first ``top`` rows of the ranked ``df`` (in place).

    ``prefix`` names the ranked segment's metric columns (``""``, ``"is_"``);
    ``options`` are the sweep's trading options and ``backtest_inputs`` what
    else :func:`run_backtest` needs (trades, timeframe…).

    Returns
    -------
    dict
        ``n_trials``, ``trials_sharpe_std`` (per candle) and the rows deflated,
        for ``df.attrs["deflated"]``.
    """
    from tcp_lab.backtest.engine import run_backtest

    per_candle = df[prefix + "sharpe"].astype("float64") / math.sqrt(bars_per_year)
    trials = per_candle[np.isfinite(per_candle)]
    n_trials = int(len(trials))
    spread = float(trials.std(ddof=1)) if n_trials > 1 else float("nan")
    df["psr"] = np.nan
    df["dsr"] = np.nan
    a, b = segment
    window = candles.iloc[a:b]
    rows = []
    for combo in df.index[:max(0, top)]:
        row = df.loc[combo]
        levels = {k: _plain(row[k]) for k in LEVEL_OPTIONS if k in row.index}
        strategy = cls({p: _plain(row[p]) for p in params})
        result = run_backtest(strategy, window, **{**options, **levels}, **backtest_inputs)
        # per-slot returns on the full grid (a missing candle: a zero return), as the
        # sweep's Sharpe ratios are
        grid = pd.date_range(window.index[0], window.index[-1], freq=result.timeframe.delta)
        returns = result.equity.reindex(grid).ffill().pct_change().dropna().to_numpy()
        psr = dsr = float("nan")
        try:
            m = sharpe_moments(returns)
            psr = float(probabilistic_sharpe(m.sharpe, m.n_obs, m.skew, m.kurtosis))
            if n_trials > 1 and spread > 0:
                dsr = float(deflated_sharpe(m.sharpe, n_trials, spread, m.n_obs, m.skew,
                                            m.kurtosis))
        except DataError:  # too few returns, or a flat curve: nothing to say
            pass
        df.loc[combo, "psr"] = psr
        df.loc[combo, "dsr"] = dsr
        rows.append({"combo": int(combo), "psr": _or_none(psr), "dsr": _or_none(dsr)})
    return {"n_trials": n_trials, "trials_sharpe_std": _or_none(spread), "rows": rows}


def _or_none(x: float) -> float | None:
    """NaN as None in ``attrs`` (NaN != NaN would make equal sweeps compare unequal)."""
    return x if math.isfinite(x) else None


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
