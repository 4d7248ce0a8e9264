"""The look-ahead guard and warm-up check: built-ins pass, broken fixtures are caught."""

from __future__ import annotations

import pytest

from tcp_lab.errors import DataError, StrategyError
from tcp_lab.strategies import check_lookahead, get_strategy, list_strategies
from tcp_lab.testing import make_candles

CASES = [(name, None) for name in ["bollinger_breakout", "ema_cross", "macd", "rsi_reversion",
                                   "sma_cross"]] + [
    ("sma_cross", {"fast": 2, "slow": 3}),
    ("ema_cross", {"fast": 5, "slow": 60}),
    ("rsi_reversion", {"period": 3, "lower": 20, "upper": 80}),
    ("macd", {"fast": 3, "slow": 10, "signal": 4}),
    ("bollinger_breakout", {"window": 5, "k": 0.5}),
]


def test_every_registered_builtin_is_covered():
    assert {name for name, _ in CASES} >= set(list_strategies())


@pytest.mark.parametrize(("name", "params"), CASES)
def test_builtins_pass_lookahead_and_warmup(name, params):
    strategy = get_strategy(name, params)
    candles = make_candles(max(1200, 3 * strategy.warmup), seed=7)
    report = check_lookahead(strategy, candles, points=16)
    assert report.ok, report.message
    assert report.message.startswith("OK")
    report.raise_for_failure()  # no exception


def test_peeking_strategy_fails_at_the_first_sampled_bar(fixtures_on_path):
    strategy = get_strategy("peeking_strategies:PeekingStrategy")
    candles = make_candles(600, seed=1)
    report = check_lookahead(strategy, candles, points=12)
    assert not report and not report.lookahead_ok
    first_point = report.points[0]
    assert report.lookahead_bar == candles.index[first_point]
    assert report.lookahead_column in {"entries", "exits", "indicator next_close"}
    assert "look-ahead at" in report.message and "shift(-1)" in report.message
    with pytest.raises(StrategyError, match="FAILED PeekingStrategy"):
        report.raise_for_failure()


def test_a_peeking_indicator_is_caught_even_with_clean_signals(fixtures_on_path):
    strategy = get_strategy("peeking_strategies:PeekingIndicatorStrategy")
    report = check_lookahead(strategy, make_candles(300), points=8, warmup=False)
    assert report.lookahead_column == "indicator centred"
    assert report.warmup_ok  # warm-up check was skipped


def test_short_warmup_is_caught(fixtures_on_path):
    strategy = get_strategy("peeking_strategies:ShortWarmupSma")
    report = check_lookahead(strategy, make_candles(800, seed=2))
    assert report.lookahead_ok and not report.warmup_ok
    assert report.warmup_bar is not None
    assert "warm-up too short" in report.message
    # the same strategy with a margin that covers the gap passes
    assert check_lookahead(strategy, make_candles(800, seed=2), margin=6).ok


def test_too_few_candles():
    with pytest.raises(DataError, match="need at least 33"):
        check_lookahead(get_strategy("sma_cross"), make_candles(20))


def test_a_peek_at_crosses_only_is_caught_by_the_default_check(fixtures_on_path):
    # Entering one candle before each cross changes a row only when the prefix ends on
    # the candle before a cross: the default checks every candle next to a signal change.
    strategy = get_strategy("peeking_strategies:EarlyCross")
    candles = make_candles(6000, seed=3)
    report = check_lookahead(strategy, candles)
    assert not report.lookahead_ok and report.lookahead_column == "entries"
    full = strategy.compute(candles).entries.to_numpy()
    pos = candles.index.get_loc(report.lookahead_bar)
    assert full[pos]  # the first early entry: its cross is one candle later
    assert len(report.points) >= 500


def test_full_checks_every_candle():
    strategy = get_strategy("sma_cross", {"fast": 2, "slow": 3})
    candles = make_candles(200, seed=4)
    report = check_lookahead(strategy, candles, full=True)
    assert report.ok
    assert report.points == tuple(range(strategy.warmup - 1, len(candles) - 1))
