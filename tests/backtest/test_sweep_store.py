"""Saved sweeps: the table and its attributes come back as they were saved."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tcp_lab.backtest import list_sweeps, load_sweep, save_sweep, sweep
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.testing import make_candles


def test_a_saved_sweep_loads_back_with_its_attributes(tmp_path):
    candles = make_candles(1500, "1m", seed=3)
    df = sweep("sma_cross", candles, {"fast": [5, 10], "slow": [30, 60]}, holdout=0.3,
               timeframe="1m", progress=False)
    first = save_sweep(df, home=tmp_path, series="synthetic 1m", label="first")
    second = save_sweep(df.head(2), home=tmp_path)  # attrs survive head()
    listed = list_sweeps(tmp_path)
    assert listed["sweep_id"].tolist() == [second, first]  # newest first
    assert listed["n_combos"].tolist() == [4, 4]

    back = load_sweep(first, home=tmp_path)
    pd.testing.assert_frame_equal(back, df, check_like=False)
    assert back.attrs["strategy"] == "sma_cross"
    assert back.attrs["metric"] == df.attrs["metric"]
    assert back.attrs["segments"] == [list(s) for s in df.attrs["segments"]]
    assert back.attrs["series"] == "synthetic 1m" and back.attrs["label"] == "first"
    assert load_sweep(home=tmp_path).attrs["sweep_id"] == second
    fees = back.attrs["options"]["fees"]
    assert math.isclose(fees, 0.001)


def test_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="no saved sweeps in"):
        load_sweep(home=tmp_path)
    with pytest.raises(ConfigError, match="no sweep attributes"):
        save_sweep(pd.DataFrame({"a": [1]}), home=tmp_path)
    with pytest.raises(DataError, match="no sweep 'nope'"):
        load_sweep("nope", home=tmp_path)
