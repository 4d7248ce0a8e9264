"""Short selling from one account: the shared cash and free cash against a plain-Python
reference, and against vectorbt's ``cash_sharing``.

The reference states vectorbt's accounting (``buy_nb`` / ``sell_nb`` without
``lock_cash``) for a group that shares its cash and its free cash, with each symbol's
position and debt its own:

* a buy of ``u`` at ``p`` costs ``u p (1 + fees)``, at most the cash (it buys what the
  cash allows); it takes the cost from the cash and from the free cash, and covering a
  short gives back twice the debt of the covered part to the free cash;
* a sale of ``u`` at ``p`` brings ``u p (1 - fees)`` to the cash and the free cash; the
  part sold short adds ``u' p`` to the symbol's debt and takes ``2 u' p`` from the free
  cash. A short of a fixed value is not limited; an all-in short sells what the free
  cash (plus the long being sold) allows: ``free / (p (1 + fees))`` more than the long.

The ordering is the portfolio's: at each close time, symbols with neither a long nor a
short entry signal first, then the others by confidence (descending) then name; an
entry is an order that opens a position on a flat symbol (skipped at ``max_positions``,
recorded ``no_cash`` when nothing fills). vectorbt's signal rules: an entry with its own
exit is ignored, a long with a short entry too; a long entry on a short reverses it
(and the mirror); equity-fraction sizes are values (the value bought or sold short).
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
    ENTRY,
    EXIT,
    LE,
    LX,
    SE,
    SX,
    Coded,
    CodedLS,
    coded_candles,
    coded_universes,
)

vbt = pytest.importorskip("vectorbt")

STOP_DISTANCE = 0.5  # CodedLS's stops: 55 % to 95 % from the entry, never reached here
INIT = 10_000.0


def _flags(code: int, shorts: bool) -> tuple[bool, bool, bool, bool]:
    """(le, lx, se, sx) after routing for direction='longshort'."""
    if shorts:
        return bool(code & LE), bool(code & LX), bool(code & SE), bool(code & SX)
    return bool(code & LE), False, bool(code & LX), False  # an exit reverses to a short


class Account:
    """Shared cash and free cash; position and debt per symbol; round trips booked."""

    def __init__(self, symbols, fees):
        self.cash = self.free = INIT
        self.fees = fees
        self.pos = dict.fromkeys(symbols, 0.0)
        self.debt = dict.fromkeys(symbols, 0.0)
        self.opened: dict[str, object] = {}
        self.trips: list[tuple] = []

    def _book(self, s, before, after, t):
        if before != 0 and (after == 0 or (after > 0) != (before > 0) or abs(after) < abs(
                before)):
            self.trips.append((s, self.opened[s], t))
            if after == 0 or (after > 0) != (before > 0):
                del self.opened[s]
        if after != 0 and (before == 0 or (after > 0) != (before > 0)):
            self.opened[s] = t

    def buy(self, s, units, p, t):
        """Buy (cover, then go long) ``units``, at most what the cash allows; True if filled."""
        if self.cash <= 0:
            return False
        cost = units * p * (1 + self.fees)
        if cost > self.cash:
            units, cost = self.cash / (1 + self.fees) / p, self.cash
        if units < 1e-8:
            return False
        before = self.pos[s]
        after = before + units
        if before < 0:
            covered = units if after < 0 else -before
            debt_diff = covered * self.debt[s] / -before
            self.debt[s] -= debt_diff
            self.free += 2 * debt_diff - cost
        else:
            self.free -= cost
        self.cash -= cost
        self.pos[s] = 0.0 if abs(after) < 1e-9 * max(abs(before), units) else after
        self._book(s, before, self.pos[s], t)
        return True

    def sell(self, s, units, p, t):
        """Sell (close, then go short) ``units``; True if filled."""
        if units < 1e-8:
            return False
        before = self.pos[s]
        after = before - units
        proceeds = units * p * (1 - self.fees)
        self.cash += proceeds
        if after < 0:
            short = units if before < 0 else -after
            self.debt[s] += short * p
            self.free += proceeds - 2 * short * p
        else:
            self.free += proceeds
        self.pos[s] = 0.0 if abs(after) < 1e-9 * max(abs(before), units) else after
        self._book(s, before, self.pos[s], t)
        return True

    def sell_all_in(self, s, p, t):
        """Sell the long and short what the free cash allows (an all-in short)."""
        long = max(self.pos[s], 0.0)
        free = self.free + long * p * (1 - self.fees)
        if free <= 0:
            return self.pos[s] > 0 and self.sell(s, long, p, t)
        return self.sell(s, long + free / (p * (1 + self.fees)), p, t)


def reference(universe, shorts, sizing, size, max_positions, fees):
    """Equity per union close time, skipped entries, round trips (symbol, entry, exit)."""
    bars = {s: {ts: row for ts, row in c.iterrows()} for s, c in universe.items()}
    times = sorted(set().union(*(c.index for c in universe.values())))
    symbols = sorted(universe)
    acc = Account(symbols, fees)
    mark = dict.fromkeys(symbols, 0.0)
    cap = max_positions or len(symbols)
    equity, skipped = [], []

    def eq():
        return acc.cash + sum(acc.pos[k] * mark[k] for k in symbols)

    for t in times:
        here = [s for s in symbols if t in bars[s]]
        for s in here:
            mark[s] = bars[s][t]["close"]
        flags = {s: _flags(int(bars[s][t]["volume"]), shorts) for s in here}
        first = [s for s in here if not (flags[s][0] or flags[s][2])]
        entering = sorted((s for s in here if flags[s][0] or flags[s][2]),
                          key=lambda s: (-bars[s][t]["trade_count"], s))
        for s in first + entering:
            le, lx, se, sx = flags[s]
            if le or se:  # vectorbt's conflicts: ignored
                if le and lx:
                    le = lx = False
                if se and sx:
                    se = sx = False
                if le and se:
                    le = se = False
            p, pos = mark[s], acc.pos[s]
            opens = pos == 0 and (le or se)
            if opens and sum(v != 0 for v in acc.pos.values()) >= cap:
                skipped.append((t, s, "max_positions"))
                continue
            if sizing == "all_in":
                units = math.inf
            elif sizing == "fixed_value":
                units = size / p
            elif sizing == "risk_percent":
                distance = STOP_DISTANCE * (1 + bars[s][t]["trade_count"] / 1000)
                units = size / distance * eq() / p
            else:
                units = (size if sizing == "fixed_fraction" else 1 / cap) * eq() / p
            filled = True
            if pos > 0 and se:  # reverse to a short
                filled = (acc.sell_all_in(s, p, t) if units == math.inf
                          else acc.sell(s, pos + units, p, t))
            elif pos > 0 and lx:
                filled = acc.sell(s, pos, p, t)
            elif pos < 0 and le:  # reverse to a long
                filled = acc.buy(s, -pos + units, p, t)
            elif pos < 0 and sx:
                filled = acc.buy(s, -pos, p, t)
            elif pos == 0 and le:
                filled = acc.buy(s, units, p, t)
            elif pos == 0 and se:
                filled = (acc.sell_all_in(s, p, t) if units == math.inf
                          else acc.sell(s, units, p, t))
            if opens and not filled:
                skipped.append((t, s, "no_cash"))
        equity.append(eq())
    trips = acc.trips + [(s, e, None) for s, e in acc.opened.items()]
    return np.array(equity), skipped, trips


SHORT_CODES = [0, 0, 0, LE, LX, SE, SX, LE | SX, SE | LX, LE | LX, LE | SE]


@pytest.mark.parametrize("sizing", [("all_in", None), ("fixed_value", 3_000.0),
                                    ("fixed_fraction", 0.4), ("equal", None),
                                    ("risk_percent", 0.2)], ids=lambda s: s[0])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe=coded_universes(SHORT_CODES, step=0.03), shorts=st.booleans(),
       max_positions=st.sampled_from([None, 1, 2]),
       fees=st.sampled_from([0.0, 0.001]))
def test_short_cash_rules_match_the_reference(universe, sizing, shorts, max_positions, fees):
    name, size = sizing
    strategy = CodedLS({"shorts": shorts,
                        "stop_distance": STOP_DISTANCE if name == "risk_percent" else 0.0})
    p = run_portfolio(strategy, universe, sizing=name, size=size, max_positions=max_positions,
                      fees=fees, init_cash=INIT, timeframe="1h", direction="longshort")
    equity, skipped, trips = reference(universe, shorts, name, size, max_positions, fees)
    np.testing.assert_allclose(p.equity.to_numpy(), equity, rtol=1e-9, atol=1e-9)
    got = list(zip(p.skipped["time"], p.skipped["symbol"], p.skipped["reason"], strict=True))
    assert sorted(got) == sorted(skipped)
    got = [(s, e, None if pd.isna(x) else x) for s, e, x in
           zip(p.trades["symbol"], p.trades["entry_time"], p.trades["exit_time"], strict=True)]
    key = lambda r: (r[0], r[1], pd.Timestamp.max.tz_localize("UTC") if r[2] is None  # noqa: E731
                     else r[2])
    assert sorted(got, key=key) == sorted(trips, key=key)
    if max_positions:
        assert (p.n_open <= max_positions).all()
    gross = p.value.abs().sum(axis=1)
    np.testing.assert_allclose(p.exposure.to_numpy(), (gross / p.equity).to_numpy())


def test_all_in_short_uses_the_shared_free_cash():
    # S0 goes long with all the cash; S1's all-in short then finds no free cash: skipped.
    # Later S0 sells: its proceeds are free cash again and S1's short takes all of it.
    close = [100.0, 100.0, 100.0, 100.0, 100.0]
    a = coded_candles(close, [0, LE, 0, LX, 0], [0.5] * 5)
    b = coded_candles(close, [0, SE, 0, 0, SE], [0.1] * 5)
    p = run_portfolio(CodedLS(), {"S0": a, "S1": b}, fees=0.0, direction="longshort")
    assert list(zip(p.skipped["symbol"], p.skipped["reason"], strict=True)) == [("S1",
                                                                                "no_cash")]
    short = p.orders[p.orders["symbol"] == "S1"]
    assert list(short["side"]) == [-1.0] and short["size"].iat[0] == pytest.approx(100.0)
    assert p.value["S1"].iat[-1] == pytest.approx(-INIT)
    assert p.cash.iat[-1] == pytest.approx(2 * INIT) and p.equity.iat[-1] == pytest.approx(INIT)
    assert p.exposure.iat[-1] == pytest.approx(1.0)


def test_entries_go_after_exits_and_shorts_count_as_entries():
    # at one close time B's long exit goes first (no entry signal: it frees the cash), then
    # the entries by confidence: C's long (0.9) before A's short (0.1), names aside
    close = [100.0, 100.0, 100.0]
    a = coded_candles(close, [0, SE, 0], [0.1] * 3)
    b = coded_candles(close, [LE, LX, 0], [0.5] * 3)
    c = coded_candles(close, [0, LE, 0], [0.9] * 3)
    p = run_portfolio(CodedLS(), {"A": a, "B": b, "C": c}, fees=0.0,
                      direction="longshort", sizing="fixed_fraction", size=0.6)
    at = p.orders[p.orders["time"] == p.equity.index[1]]
    assert list(at["symbol"]) == ["B", "C", "A"]
    assert list(at["side"]) == [-1.0, 1.0, -1.0]
    # C buys 0.6 of the equity, A sells 0.6 of it short (not limited by the cash left)
    assert list(at["size"] * at["price"]) == pytest.approx([6_000.0, 6_000.0, 6_000.0])
    assert p.exposure.iat[1] == pytest.approx(1.2)


def test_short_proceeds_fund_longs_without_margin_rules():
    # vectorbt's cash sharing without lock_cash, pinned: A's all-in short leaves no free cash
    # but doubles the cash, B's all-in long buys with all of it (gross exposure 3), and A's
    # cover finds no cash and does not fill. Margin rules would change this deliberately.
    close_a, close_b = [100.0, 100.0, 100.0, 120.0, 120.0], [100.0] * 5
    a = coded_candles(close_a, [0, SE, 0, SX, 0], [0.9] * 5)
    b = coded_candles(close_b, [0, LE, 0, 0, 0], [0.1] * 5)
    p = run_portfolio(CodedLS(), {"A": a, "B": b}, fees=0.0, direction="longshort")
    assert list(zip(p.orders["symbol"], p.orders["side"], p.orders["size"], strict=True)) == [
        ("A", -1.0, 100.0), ("B", 1.0, 200.0)]
    assert list(p.exposure) == [0.0, 3.0, 3.0, 4.0, 4.0]
    assert list(p.cash) == [INIT, 0.0, 0.0, 0.0, 0.0]
    codes = np.array([[0, 0], [SE, LE], [0, 0], [SX, 0], [0, 0]])
    pf = vbt.Portfolio.from_signals(
        np.array([close_a, close_b]).T, entries=(codes & LE) != 0, exits=(codes & LX) != 0,
        short_entries=(codes & SE) != 0, short_exits=(codes & SX) != 0, size=np.inf,
        fees=0.0, init_cash=INIT, group_by=True, cash_sharing=True)
    np.testing.assert_allclose(p.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-12)


def test_risk_percent_short_needs_a_stop_above_the_price():
    # Coded's stops are below the close: right for its longs, no stop for a short entry
    close = [100.0, 100.0, 100.0, 100.0]
    a = coded_candles(close, [0, EXIT, 0, ENTRY], [0.5] * 4)
    p = run_portfolio(Coded({"stop_distance": 0.1}), {"A": a}, direction="longshort",
                      sizing="risk_percent", size=0.01, fees=0.0)
    assert list(zip(p.skipped["symbol"], p.skipped["reason"], strict=True)) == [("A",
                                                                                "no_stop")]
    assert list(p.orders["side"]) == [1.0]
    # with the long's own stop 15 % below (0.1 * (1 + 0.5)): 1 % of equity at risk buys 1/0.15 of it
    assert p.orders["size"].iat[0] * 100.0 == pytest.approx(0.01 / 0.15 * INIT)
    # stop_loss= puts a short's stop above its entry: the short is taken
    b = coded_candles(close, [0, EXIT, 0, 0], [0.5] * 4)
    p = run_portfolio(Coded(), {"B": b}, direction="longshort", sizing="risk_percent",
                      size=0.01, stop_loss=0.05, fees=0.0)
    assert p.skipped.empty and list(p.orders["side"]) == [-1.0]
    assert p.orders["size"].iat[0] * 100.0 == pytest.approx(0.01 / 0.05 * INIT)


@pytest.mark.parametrize("shorts", [True, False], ids=["short_signals", "reversing"])
@pytest.mark.parametrize("sizing,size,vbt_size,vbt_type", [
    ("all_in", None, np.inf, "amount"), ("fixed_value", 4_000.0, 4_000.0, "value")])
def test_matches_vectorbt_cash_sharing(shorts, sizing, size, vbt_size, vbt_type):
    """One group with ``cash_sharing=True``; at most one symbol has a signal at each close
    time (so the order within a time cannot matter) but the cash and free cash are shared."""
    rng = np.random.default_rng(5)
    n, m = 600, 4
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    who = rng.integers(0, m, n)
    codes = np.zeros((n, m), dtype=np.int64)
    pick = rng.choice([LE, LX, SE, SX] if shorts else [LE, LX], n)
    active = rng.random(n) < 0.3
    codes[np.arange(n)[active], who[active]] = pick[active]
    universe = {f"S{k}": coded_candles(close[:, k], codes[:, k], np.full(n, 0.5))
                for k in range(m)}
    p = run_portfolio(CodedLS({"shorts": shorts}), universe, sizing=sizing, size=size,
                      fees=0.001, direction="longshort", init_cash=INIT)
    signals = {"entries": (codes & LE) != 0, "exits": (codes & LX) != 0}
    if shorts:
        signals |= {"short_entries": (codes & SE) != 0, "short_exits": (codes & SX) != 0}
    else:
        signals["direction"] = "both"
    pf = vbt.Portfolio.from_signals(close, **signals, size=vbt_size, size_type=vbt_type,
                                    fees=0.001, init_cash=INIT, group_by=True,
                                    cash_sharing=True)
    np.testing.assert_allclose(p.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(p.cash.to_numpy(), pf.cash().to_numpy(), rtol=1e-10)
    assets = pf.assets().to_numpy()
    np.testing.assert_allclose(p.value.to_numpy(), assets * close, rtol=1e-10, atol=1e-9)
    assert (assets < 0).any() and (assets > 0).any()
    assert len(p.orders) == len(pf.orders.records_arr)
