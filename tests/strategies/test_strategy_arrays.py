"""The NumPy path of strategies: compute_arrays, ArrayOutput and the last-row decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.errors import StrategyError
from tcp_lab.strategies import (
    ArrayOutput,
    BaseStrategy,
    StrategyOutput,
    candle_arrays,
    check_output,
    get_strategy,
    list_strategies,
)
from tcp_lab.strategies.decision import Decision, frame_of, last_decision
from tcp_lab.testing import make_candles


def _assert_same_output(a: StrategyOutput, b: StrategyOutput) -> None:
    for key in ("entries", "exits", "short_entries", "short_exits", "confidence"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            pd.testing.assert_series_equal(x, y, check_names=False)
    assert a.indicators.keys() == b.indicators.keys()
    for k in a.indicators:
        pd.testing.assert_series_equal(a.indicators[k], b.indicators[k], check_names=False)


@pytest.mark.parametrize("name", list_strategies())
def test_builtins_compute_is_their_array_path(name):
    strategy = get_strategy(name)
    assert strategy.has_array_path
    candles = make_candles(600, seed=3)
    out = strategy.compute(candles)
    arrays = strategy.compute_arrays(candle_arrays(candles))
    _assert_same_output(out, arrays.to_output(candles.index))
    assert out.entries.index.equals(candles.index)


@pytest.mark.parametrize("name", list_strategies())
@settings(max_examples=15, deadline=None)
@given(n=st.integers(min_value=1, max_value=120), seed=st.integers(0, 10_000))
def test_last_decision_is_the_same_from_a_frame_or_its_arrays(name, n, seed):
    strategy = get_strategy(name)
    window = make_candles(n, seed=seed)
    from_frame = last_decision(strategy, window)
    from_arrays = last_decision(strategy, candle_arrays(window))
    assert from_frame == from_arrays or _nan_equal(from_frame, from_arrays)
    via_output = Decision.of_output(check_output(strategy.compute(window), window, name))
    assert _nan_equal(from_frame, via_output)
    signal = strategy.process_data(window)
    assert signal.action == from_frame.action and signal.ts == window.index[-1]


def _nan_equal(a: Decision, b: Decision) -> bool:
    same = (a.entry, a.exit, a.short_entry, a.short_exit, a.confidence) == \
        (b.entry, b.exit, b.short_entry, b.short_exit, b.confidence)
    return same and a.indicators.keys() == b.indicators.keys() and all(
        np.isnan(v) and np.isnan(b.indicators[k]) or v == b.indicators[k]
        for k, v in a.indicators.items())


class OnlyCompute(BaseStrategy):
    name = "only_compute"

    def compute(self, candles):
        up = candles["close"].diff() > 0
        return StrategyOutput(entries=up, exits=~up,
                              indicators={"close": candles["close"]})


class Neither(BaseStrategy):
    name = "neither"


class BadLength(BaseStrategy):
    name = "bad_length"

    def compute_arrays(self, candles):
        return ArrayOutput(entries=np.zeros(2, bool), exits=np.zeros(len(candles["ts"]), bool))


class NumericSignals(BaseStrategy):
    name = "numeric_signals"

    def compute_arrays(self, candles):
        n = len(candles["ts"])
        entries = np.full(n, np.nan)
        exits = np.ones(n)
        return ArrayOutput(entries=entries, exits=exits)


def test_a_strategy_with_only_compute_is_decided_through_a_frame():
    strategy = OnlyCompute()
    assert not strategy.has_array_path
    candles = make_candles(30, seed=1)
    d = last_decision(strategy, candle_arrays(candles))  # the bot's arrays -> a frame
    assert d == last_decision(strategy, candles)
    assert d.indicators == {"close": float(candles["close"].iat[-1])}


def test_a_strategy_with_neither_method_says_so():
    with pytest.raises(NotImplementedError, match="neither compute"):
        Neither().compute(make_candles(5))


def test_a_malformed_array_output_names_the_strategy_and_the_array():
    with pytest.raises(StrategyError, match=r"BadLength\(\).*entries has shape \(2,\)"):
        last_decision(BadLength(), make_candles(5))


def test_numeric_signals_read_nan_as_false():
    d = last_decision(NumericSignals(), make_candles(5))
    assert (d.entry, d.exit, d.action) == (False, True, "sell")


def test_frame_of_inverts_candle_arrays():
    candles = make_candles(20, seed=2)
    pd.testing.assert_frame_equal(frame_of(candle_arrays(candles)), candles,
                                  check_freq=False)
