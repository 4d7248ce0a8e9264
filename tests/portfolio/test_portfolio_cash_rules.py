"""The cash rules against a plain-Python reference on small random universes with gaps.

The reference states the rules of :func:`tcp_lab.run_portfolio` directly: at each close
time of the union, symbols without an entry signal first (exits free cash), then those
with one by confidence (descending) then name; an entry of a flat symbol is skipped at
``max_positions`` open positions, sized by the sizing rule from the equity before its
bar (positions at their last close), bought with what the cash allows (fees on top).
Risk-percent buys ``size / distance`` of that equity (distance: the stop's share of the
close), volatility-target ``min(size / sigma, 1)`` of it (sigma: the symbol's annualised
standard deviation of its last ``VOL_WINDOW`` log returns; unknown: skipped).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_lab import run_portfolio
from tests.portfolio.portfolio_support import (
    BOTH,
    ENTRY,
    EXIT,
    Coded,
    coded_candles,
    coded_universes,
)

VOL_WINDOW = 3
STOP_DISTANCE = 0.5  # Coded's stops: 55 % to 95 % below the entry, never reached here
HOURS_PER_YEAR = 365 * 24


def _sigma(closes, k):
    """Annualised sample standard deviation of the last VOL_WINDOW log returns up to k."""
    if k < VOL_WINDOW:
        return math.nan
    r = [math.log(closes[j] / closes[j - 1]) for j in range(k - VOL_WINDOW + 1, k + 1)]
    mean = sum(r) / len(r)
    return math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1) * HOURS_PER_YEAR)


def reference(universe, sizing, size, max_positions, init_cash, fees, leverage=1.0,
              maintenance=0.0):
    """Equity per union close time, skipped entries and trades (symbol, entry, exit time).

    With ``leverage`` an entry may borrow up to ``leverage - 1`` times the equity, and at
    each close time an account whose equity is below ``maintenance`` times its positions'
    value sells them all at their closes (``"liquidation"``); at zero equity it stops."""
    bars = {s: {ts: row for ts, row in c.iterrows()} for s, c in universe.items()}
    sigma = {s: {ts: _sigma(c["close"].tolist(), k) for k, ts in enumerate(c.index)}
             for s, c in universe.items()}
    times = sorted(set().union(*(c.index for c in universe.values())))
    symbols = sorted(universe)
    cash, pos, mark = init_cash, dict.fromkeys(symbols, 0.0), dict.fromkeys(symbols, 0.0)
    opened, equity, skipped, trades = {}, [], [], []
    cap = max_positions or len(symbols)
    blown = False
    for t in times:
        here = [s for s in symbols if t in bars[s]]
        for s in here:
            mark[s] = bars[s][t]["close"]
        code = {s: int(bars[s][t]["volume"]) for s in here}
        for s in here:  # 1. no entry signal: exits
            if code[s] == EXIT and pos[s] > 0:
                cash += pos[s] * mark[s] * (1 - fees)
                pos[s] = 0.0
                trades.append((s, opened.pop(s), t))
        entering = sorted((s for s in here if code[s] & ENTRY),
                          key=lambda s: (-bars[s][t]["trade_count"], s))
        for s in entering:  # 2. entries
            if code[s] == BOTH or pos[s] > 0:  # conflicting signals, or holding: no order
                continue
            if blown:
                skipped.append((t, s, "no_cash"))
                continue
            if sum(p > 0 for p in pos.values()) >= cap:
                skipped.append((t, s, "max_positions"))
                continue
            eq = cash + sum(pos[k] * mark[k] for k in symbols)
            if sizing == "all_in":
                value = math.inf
            elif sizing == "fixed_value":
                value = size
            elif sizing == "risk_percent":
                distance = STOP_DISTANCE * (1 + bars[s][t]["trade_count"] / 1000)
                value = size / distance * eq
            elif sizing == "volatility_target":
                sig = sigma[s][t]
                if math.isnan(sig):
                    skipped.append((t, s, "no_volatility"))
                    continue
                value = (min(size / sig, leverage) if sig > 0 else leverage) * eq
            else:
                value = (size if sizing == "fixed_fraction" else leverage / cap) * eq
            available = cash + max((leverage - 1) * eq, 0.0)  # the cash and the credit
            spend = min(value * (1 + fees), available)
            units = spend / (1 + fees) / mark[s]
            if units < 1e-8:
                skipped.append((t, s, "no_cash"))
                continue
            cash -= spend
            pos[s] = units
            opened[s] = t
        gross = sum(pos[k] * mark[k] for k in symbols)
        if leverage > 1 and gross > 0 and cash + gross < maintenance * gross:
            for k in symbols:
                if pos[k] > 0:
                    cash += pos[k] * mark[k] * (1 - fees)
                    pos[k] = 0.0
                    trades.append((k, opened.pop(k), t))
            blown = cash <= 0
        equity.append(cash + sum(pos[k] * mark[k] for k in symbols))
    trades += [(s, e, None) for s, e in opened.items()]
    return np.array(equity), skipped, trades


@pytest.mark.parametrize("sizing", [("all_in", None), ("fixed_value", 3_000.0),
                                    ("fixed_fraction", 0.4), ("equal", None),
                                    ("risk_percent", 0.2), ("volatility_target", 0.5)],
                         ids=lambda s: s[0])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe=coded_universes([0, 0, 1, 2, 3]),
       max_positions=st.sampled_from([None, 1, 2]),
       fees=st.sampled_from([0.0, 0.001]))
def test_cash_rules_match_the_reference(universe, sizing, max_positions, fees):
    name, size = sizing
    strategy = Coded({"stop_distance": STOP_DISTANCE if name == "risk_percent" else 0.0})
    extra = {"vol_window": VOL_WINDOW} if name == "volatility_target" else {}
    p = run_portfolio(strategy, universe, sizing=name, size=size, max_positions=max_positions,
                      fees=fees, init_cash=10_000.0, timeframe="1h", **extra)
    equity, skipped, trades = reference(universe, name, size, max_positions, 10_000.0, fees)
    np.testing.assert_allclose(p.equity.to_numpy(), equity, rtol=1e-9, atol=1e-9)
    got = list(zip(p.skipped["time"], p.skipped["symbol"], p.skipped["reason"], strict=True))
    assert sorted(got) == sorted(skipped)
    got = {(s, e, None if pd.isna(x) else x) for s, e, x in
           zip(p.trades["symbol"], p.trades["entry_time"], p.trades["exit_time"], strict=True)}
    assert got == set(trades)
    assert (p.cash >= -1e-9).all()
    if max_positions:
        assert (p.n_open <= max_positions).all()


def test_risk_percent_reentry_after_a_stop_in_the_same_bar():
    # the stop (2 % below) of the first long fills in bar 2, whose entry signal then buys at
    # the close, sized by its own stop 2 % below: size 0.01 / 0.02, half the equity
    close = [100.0, 100.0, 98.5, 98.5]
    a = coded_candles(close, [0, ENTRY, ENTRY, 0], [0.0] * 4)
    p = run_portfolio(Coded({"stop_distance": 0.02}), {"A": a}, sizing="risk_percent",
                      size=0.01, fees=0.0)
    assert list(p.orders["reason"]) == ["signal", "stop_loss", "signal"]
    assert list(p.orders["side"]) == [1.0, -1.0, 1.0]
    # 50 units bought at 100, sold at the stop 98; the equity before the bar is 5_000 of
    # cash and the 50 units at this close (98.5): half of 9_925 is bought again
    np.testing.assert_allclose((p.orders["size"] * p.orders["price"]).to_numpy(),
                               [5_000.0, 4_900.0, 4_962.5], rtol=1e-12)


@pytest.mark.parametrize("sizing", [("all_in", None), ("fixed_fraction", 1.5), ("equal", None),
                                    ("volatility_target", 0.5)], ids=lambda s: s[0])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe=coded_universes([0, 0, 1, 2, 3]), leverage=st.sampled_from([1.5, 3.0]),
       maintenance=st.sampled_from([0.05, 0.5]), max_positions=st.sampled_from([None, 2]),
       fees=st.sampled_from([0.0, 0.001]))
def test_leverage_and_liquidation_match_the_reference(universe, sizing, leverage, maintenance,
                                                      max_positions, fees):
    name, size = sizing
    extra = {"vol_window": VOL_WINDOW} if name == "volatility_target" else {}
    p = run_portfolio(Coded(), universe, sizing=name, size=size, max_positions=max_positions,
                      fees=fees, init_cash=10_000.0, timeframe="1h", leverage=leverage,
                      maintenance_margin=maintenance, **extra)
    equity, skipped, trades = reference(universe, name, size, max_positions, 10_000.0, fees,
                                        leverage, maintenance)
    np.testing.assert_allclose(p.equity.to_numpy(), equity, rtol=1e-9, atol=1e-6)
    got = list(zip(p.skipped["time"], p.skipped["symbol"], p.skipped["reason"], strict=True))
    assert sorted(got) == sorted(skipped)
    got = {(s, e, None if pd.isna(x) else x) for s, e, x in
           zip(p.trades["symbol"], p.trades["entry_time"], p.trades["exit_time"], strict=True)}
    assert got == set(trades)
