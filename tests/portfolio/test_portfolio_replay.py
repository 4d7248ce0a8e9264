"""The portfolio driver run in pieces, each going on from where the last ended, gives the run in
one piece: equity, fills, round trips, skipped entries and the final account. This is what a
bot stepping one close time at a time through the same loop relies on."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcp_lab.portfolio.run as portfolio_run
from tcp_lab import run_portfolio
from tcp_lab.execution.portfolio import run_portfolio_nb
from tests.portfolio.portfolio_support import LE, LX, SE, SX, CodedLS, coded_universes

CODES = [0, 0, LE, LX, SE, SX, LE | SX, SE | LX]
_ROWS = 11  # open_ … sx, stop_price, target_price: (T, S) or (0, S)
_CONFIDENCE, _FRACTION = 12, 16  # (T, S) or (1, 1)


def _captured(monkeypatch, universe, **options):
    """The driver's arguments of one run_portfolio call (and that call's result)."""
    calls = []

    def spy(*args):
        calls.append(args)
        return run_portfolio_nb(*args)

    monkeypatch.setattr(portfolio_run, "run_portfolio_nb", spy)
    run_portfolio(CodedLS({"stop_distance": 0.01}), universe, timeframe="1h", **options)
    return calls[0]


def _rows(args, a, b):
    """The arguments with only rows a:b of the per-row arrays."""
    out = list(args)
    for k, x in enumerate(args):
        per_row = (k < _ROWS or k in (_CONFIDENCE, _FRACTION)) and isinstance(x, np.ndarray)
        if per_row and x.ndim == 2 and x.shape[0] == len(args[3]) and x.shape[0] > 1:
            out[k] = x[a:b]
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(universe=coded_universes(CODES, step=0.04), data=st.data(),
       sizing=st.sampled_from([("all_in", None), ("fixed_fraction", 0.6), ("equal", None),
                               ("risk_percent", 0.05)]),
       direction=st.sampled_from(["long", "longshort"]), leverage=st.sampled_from([1.0, 3.0]),
       price=st.sampled_from(["close", "next_open"]))
def test_pieces_equal_one_run(monkeypatch, universe, data, sizing, direction, leverage, price):
    name, size = sizing
    args = _captured(monkeypatch, universe, sizing=name, size=size, direction=direction,
                     leverage=leverage, maintenance_margin=0.3, price=price, max_positions=2,
                     fees=0.001, slippage=0.001, trailing_stop=0.02)
    whole = run_portfolio_nb(*args)
    n_t = len(args[3])
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n_t - 1), max_size=4))))
    bounds = [0, *cuts, n_t]
    carry: tuple = (None, None, None)
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        part = run_portfolio_nb(*_rows(args, a, b), *carry, a)
        parts.append(part)
        carry = (part[10], part[12], part[13])
    for k in range(5):  # equity, cash, value, pnl, n_open
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
    for k in (5, 6, 9):  # orders, their symbols, skipped entries
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
    closed = [p[7][p[7][:, 10] == 1.0] for p in parts]
    np.testing.assert_array_equal(np.concatenate(closed), whole[7][whole[7][:, 10] == 1.0])
    last = parts[-1]
    np.testing.assert_array_equal(last[7][last[7][:, 10] == 0.0], whole[7][whole[7][:, 10] == 0.0])
    for k in (10, 12, 13):  # states, book, account
        np.testing.assert_array_equal(last[k], whole[k])


def test_one_close_time_at_a_time(monkeypatch):
    """The bot's case: every piece is one row."""
    universe = {"A": _coded(7, seed=1), "B": _coded(7, seed=2)}
    args = _captured(monkeypatch, universe, direction="longshort", sizing="equal")
    whole = run_portfolio_nb(*args)
    carry: tuple = (None, None, None)
    equity = []
    for t in range(len(args[3])):
        part = run_portfolio_nb(*_rows(args, t, t + 1), *carry, t)
        carry = (part[10], part[12], part[13])
        equity.append(part[0][0])
    np.testing.assert_array_equal(np.array(equity), whole[0])
    np.testing.assert_array_equal(carry[0], whole[10])


def _coded(n, seed):
    from tests.portfolio.portfolio_support import coded_candles

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    codes = rng.choice(CODES, n)
    return coded_candles(close, codes, rng.choice([0.1, 0.5, 0.9], n))


def test_the_comparison_can_fail(monkeypatch):
    """Starting the second piece afresh instead of from the first one's account breaks the
    equality the tests above check."""
    universe = {"A": _coded(9, seed=3), "B": _coded(9, seed=4)}
    args = _captured(monkeypatch, universe, direction="longshort", sizing="equal")
    whole = run_portfolio_nb(*args)
    first = run_portfolio_nb(*_rows(args, 0, 5), None, None, None, 0)
    second = run_portfolio_nb(*_rows(args, 5, 9), None, None, None, 5)
    assert len(first[5]) and not np.array_equal(np.concatenate([first[0], second[0]]), whole[0])
