"""The BaseStrategy contract: parameter validation, grids, the bot's Signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.errors import StrategyError
from tcp_lab.strategies import BaseStrategy, Parameter, Signal, StrategyOutput, get_strategy
from tcp_lab.strategies.base import check_output


def test_defaults_fill_missing_parameters_and_params_are_read_only():
    s = get_strategy("sma_cross", {"fast": 5})
    assert dict(s.params) == {"fast": 5, "slow": 30}
    with pytest.raises(TypeError):
        s.params["fast"] = 7  # type: ignore[index]


def test_unknown_parameter_names_strategy_and_suggests():
    with pytest.raises(StrategyError) as e:
        get_strategy("sma_cross", {"fsat": 5})
    msg = str(e.value)
    assert "'sma_cross'" in msg and "'fsat'" in msg and "did you mean 'fast'?" in msg
    assert "parameters: fast, slow" in msg


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"fast": "10"}, "wrong type (str), expected int"),
        ({"fast": 2.5}, "wrong type (float), expected int"),
        ({"fast": True}, "wrong type (bool), expected int"),
        ({"fast": 0}, "out of range, expected int in [1, 100000]"),
        ({"fast": 30, "slow": 30}, "'fast' = 30 must be less than 'slow' = 30"),
        ({"fast": 40, "slow": 30}, "'fast' = 40 must be less than 'slow' = 30"),
    ],
)
def test_invalid_values_name_parameter_value_and_expectation(params, needle):
    with pytest.raises(StrategyError) as e:
        get_strategy("sma_cross", params)
    msg = str(e.value)
    assert "strategy 'sma_cross'" in msg
    assert needle in msg
    assert repr(next(iter(params.values()))) in msg or "must be less" in msg


def test_float_parameter_accepts_int_and_integral_float_is_an_int():
    s = get_strategy("rsi_reversion", {"lower": 25, "upper": 75.0})
    assert s.params["lower"] == 25.0 and isinstance(s.params["lower"], float)
    assert get_strategy("sma_cross", {"fast": 5.0}).params["fast"] == 5
    assert isinstance(get_strategy("sma_cross", {"fast": np.int64(5)}).params["fast"], int)


def test_rsi_levels_out_of_range_and_order():
    with pytest.raises(StrategyError, match=r"'upper' = 120 is out of range"):
        get_strategy("rsi_reversion", {"upper": 120})
    with pytest.raises(StrategyError, match="'lower' = 80.0 must be less than 'upper' = 70.0"):
        get_strategy("rsi_reversion", {"lower": 80})


def test_choices_and_bool_parameters():
    class Choosy(BaseStrategy):
        name = "choosy"
        parameters = (
            Parameter("mode", str, "fast", choices=("fast", "slow")),
            Parameter("flag", bool, False),
        )

    assert dict(Choosy({"mode": "slow", "flag": True}).params) == {"mode": "slow", "flag": True}
    with pytest.raises(StrategyError, match="did you mean 'slow'"):
        Choosy({"mode": "slwo"})
    with pytest.raises(StrategyError, match="wrong type"):
        Choosy({"flag": 1})
    assert Choosy.parameter_grid(mode=..., flag=...) == [
        {"mode": "fast", "flag": False}, {"mode": "fast", "flag": True},
        {"mode": "slow", "flag": False}, {"mode": "slow", "flag": True},
    ]


def test_parameter_type_must_be_supported():
    with pytest.raises(StrategyError, match="type must be one of"):
        Parameter("x", list, [])


def test_parameter_grid_is_filtered_by_cross_parameter_rules():
    cls = type(get_strategy("sma_cross"))
    grid = cls.parameter_grid(fast=[5, 10, 20], slow=[10, 20, 30])
    assert grid == [
        {"fast": 5, "slow": 10}, {"fast": 5, "slow": 20}, {"fast": 5, "slow": 30},
        {"fast": 10, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 20, "slow": 30},
    ]
    assert all(p["fast"] < p["slow"] for p in grid)


def test_parameter_grid_defaults_scalars_and_errors():
    cls = type(get_strategy("macd"))
    grid = cls.parameter_grid(signal=range(5, 8))
    assert [g["signal"] for g in grid] == [5, 6, 7]
    assert all(g["fast"] == 12 and g["slow"] == 26 for g in grid)
    assert cls.parameter_grid(fast=3) == [{"fast": 3, "slow": 26, "signal": 9}]
    with pytest.raises(StrategyError, match="did you mean 'signal'"):
        cls.parameter_grid(signl=[1])
    with pytest.raises(StrategyError, match="out of range"):
        cls.parameter_grid(fast=[0, 5])


def test_parameter_default_grid_from_min_max_step():
    p = Parameter("k", float, 2.0, min=1.0, max=2.0, step=0.25)
    assert p.grid() == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert Parameter("n", int, 3, min=2, max=10, step=4).grid() == [2, 6, 10]
    with pytest.raises(StrategyError, match="no default grid"):
        Parameter("n", int, 3).grid()


def test_process_data_acts_on_the_last_candle(candles):
    s = get_strategy("sma_cross", {"fast": 3, "slow": 8})
    out = s.compute(candles)
    t = int(np.flatnonzero(out.entries.to_numpy())[5])
    window = candles.iloc[t - s.warmup + 1 : t + 1]
    sig = s.process_data(window)
    assert isinstance(sig, Signal)
    assert sig.action == "buy" and sig.confidence == 1.0
    assert sig.ts == candles.index[t] and sig.price == candles["close"].iat[t]
    assert sig.indicators["sma_slow"] == pytest.approx(out.indicators["sma_slow"].iat[t])
    t_exit = int(np.flatnonzero(out.exits.to_numpy())[5])
    assert s.process_data(candles.iloc[: t_exit + 1]).action == "sell"
    quiet = int(np.flatnonzero(~(out.entries | out.exits).to_numpy())[50])
    hold = s.process_data(candles.iloc[: quiet + 1])
    assert hold.action == "hold" and hold.confidence == 0.0


def test_process_data_uses_strategy_confidence(candles):
    s = get_strategy("rsi_reversion", {"period": 5})
    out = s.compute(candles)
    t = int(np.flatnonzero(out.entries.to_numpy())[0])
    sig = s.process_data(candles.iloc[: t + 1])
    assert sig.action == "buy"
    assert sig.confidence == pytest.approx(out.confidence.iat[t]) and 0 < sig.confidence <= 1


def test_process_data_rejects_an_empty_window(candles):
    with pytest.raises(StrategyError, match="empty window"):
        get_strategy("sma_cross").process_data(candles.iloc[:0])


def test_get_indicators_and_equality(candles):
    s = get_strategy("bollinger_breakout")
    assert sorted(s.get_indicators(candles)) == ["bb_lower", "bb_middle", "bb_upper"]
    assert s == get_strategy("bollinger_breakout", {"window": 20})
    assert s != get_strategy("bollinger_breakout", {"window": 21})
    assert repr(s) == "BollingerBreakout(window=20, k=2.0)"


def test_check_output_rejects_misaligned_and_fixes_nan_signals(candles):
    idx = candles.index
    bad = StrategyOutput(entries=pd.Series([True], dtype=bool), exits=pd.Series([False]))
    with pytest.raises(StrategyError, match="one value per candle"):
        check_output(bad, candles, "x")
    with pytest.raises(StrategyError, match="expected StrategyOutput"):
        check_output({"entries": 1}, candles, "x")
    nan_entries = pd.Series(np.where(np.arange(len(idx)) % 2, 1.0, np.nan), index=idx)
    fixed = check_output(StrategyOutput(entries=nan_entries, exits=nan_entries * 0), candles, "x")
    assert fixed.entries.dtype == bool and fixed.entries.sum() == len(idx) // 2
