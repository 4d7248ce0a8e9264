"""Bad input: one clear error naming the value."""

from __future__ import annotations

import pytest

from tcp_lab import ConfigError, DataError, run_portfolio
from tcp_lab.testing import make_candles

SMA = {"fast": 5, "slow": 20}


@pytest.fixture(scope="module")
def universe():
    return {"A/USDT": make_candles(100, seed=1), "B/USDT": make_candles(100, seed=2)}


def test_unknown_sizing_suggests(universe):
    with pytest.raises(ConfigError, match=r"sizing='fixed_valu'.*did you mean 'fixed_value'"):
        run_portfolio("sma_cross", universe, parameters=SMA, sizing="fixed_valu", size=10)


@pytest.mark.parametrize("sizing,size,match", [
    ("fixed_value", None, "size=None"), ("fixed_value", -5, "size=-5"),
    ("fixed_fraction", 1.5, "size=1.5"), ("all_in", 0.5, "takes no size"),
    ("equal", 3, "takes no size"), ("risk_percent", 2, "size=2"),
    ("risk_percent", None, "size=None"), ("volatility_target", 0, "size=0")])
def test_bad_size(universe, sizing, size, match):
    with pytest.raises(ConfigError, match=match):
        run_portfolio("sma_cross", universe, parameters=SMA, sizing=sizing, size=size)


def test_empty_mapping():
    with pytest.raises(ConfigError, match="candles_by_symbol is empty"):
        run_portfolio("sma_cross", {}, parameters=SMA)


def test_one_frame_is_not_a_universe():
    with pytest.raises(ConfigError, match="for one symbol use run_backtest"):
        run_portfolio("sma_cross", make_candles(50), parameters=SMA)


def test_mismatched_timeframes():
    u = {"A/USDT": make_candles(100, "1m"), "B/USDT": make_candles(100, "5m")}
    with pytest.raises(DataError, match=r"timeframes differ \(A/USDT: 1m, B/USDT: 5m\)"):
        run_portfolio("sma_cross", u, parameters=SMA)


def test_naive_timestamps_name_the_symbol(universe):
    naive = universe["B/USDT"].tz_localize(None)
    with pytest.raises(DataError, match="B/USDT"):
        run_portfolio("sma_cross", {"A/USDT": universe["A/USDT"], "B/USDT": naive},
                      parameters=SMA)


@pytest.mark.parametrize("kw,match", [
    ({"direction": "short"}, r"run_portfolio: direction='short', expected one of \('long', "
                             r"'longshort'\)"),
    ({"leverage": 0.5}, "leverage=0.5, expected a number >= 1"),
    ({"leverage": 3, "maintenance_margin": 1.5}, "maintenance_margin=1.5"),
    ({"sizing": "fixed_fraction", "size": 2.5, "leverage": 2}, r"in \(0, 2\], got size=2.5"),
    ({"max_positions": 0}, "max_positions=0"),
    ({"fees": 2}, "fees=2"),
])
def test_unsupported_options(universe, kw, match):
    with pytest.raises(ConfigError, match=match):
        run_portfolio("sma_cross", universe, parameters=SMA, **kw)


def test_risk_percent_needs_a_stop(universe):
    with pytest.raises(ConfigError, match="risk_percent' needs a stop.*stop_loss is not set"):
        run_portfolio("sma_cross", universe, parameters=SMA, sizing="risk_percent", size=0.01)


@pytest.mark.parametrize("kw,match", [
    ({"sizing": "equal", "vol_window": 20}, "vol_window= is an option of sizing='volatility"),
    ({"sizing": "volatility_target", "size": 0.2, "vol_window": 1}, "vol_window=1"),
])
def test_bad_vol_window(universe, kw, match):
    with pytest.raises(ConfigError, match=match):
        run_portfolio("sma_cross", universe, parameters=SMA, **kw)
