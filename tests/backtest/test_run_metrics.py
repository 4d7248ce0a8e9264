"""Metrics on gappy candles against a plain pandas reference on the full grid, and the
run's own metrics (alpha, beta, trade durations, turnover) against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.backtest import metrics as m
from tcp_lab.backtest import run_backtest
from tcp_lab.backtest.run_metrics import RUN_METRIC_NAMES, alpha_beta, trade_durations, turnover
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.errors import ConfigError
from tcp_lab.reports.html import format_metric
from tcp_lab.testing import make_candles, make_trades


@pytest.fixture(scope="module")
def gappy() -> pd.DataFrame:
    """1m candles of a thin market (about one trade a minute): a third of the slots missing."""
    candles = aggregate_trades(make_trades(3000, seed=3, rate=0.02), "1m")
    slots = (candles.index[-1] - candles.index[0]) / pd.Timedelta(minutes=1) + 1
    assert 0.2 < 1 - len(candles) / slots < 0.5  # really gappy
    return candles


def reference(result, candles: pd.DataFrame, rf: float = 0.0) -> dict[str, float]:
    """The definitions on the full grid, materialised with pandas: every missing candle
    reindexed as a slot where nothing traded (equity, position and close carried)."""
    tf = result.timeframe
    bpy = tf.per_year
    grid = pd.date_range(candles.index[0], candles.index[-1], freq=tf.delta)
    init = result.options["init_cash"]
    equity = result.equity.reindex(grid).ffill()
    r = pd.concat([pd.Series([init]), pd.Series(equity.to_numpy())]).pct_change().iloc[1:]
    c = (1 + rf) ** (1 / bpy) - 1
    x = r - c
    down = math.sqrt((np.minimum(x, 0.0) ** 2).mean())
    position = result.position.reindex(grid).ffill()
    bench = candles["close"].reindex(grid).ffill().pct_change().fillna(0.0).to_numpy()
    beta = np.cov(r.to_numpy(), bench, ddof=1)[0, 1] / np.var(bench, ddof=1)
    trips = result.trades
    closed = trips[trips["status"] == "closed"]
    traded = (trips["size"] * trips["entry_price"]).sum() + \
        (closed["size"] * closed["exit_price"]).sum()
    held = closed["exit_time"] - closed["entry_time"]
    return {
        "sharpe": x.mean() / r.std(ddof=1) * math.sqrt(bpy),
        "sortino": x.mean() / down * math.sqrt(bpy),
        "exposure": float((position != 0).mean()),
        "beta": beta,
        "alpha": (x.mean() - beta * (bench - c).mean()) * bpy,
        "turnover": traded / equity.mean(),
        "avg_trade_duration": held.mean(),
        "max_trade_duration": held.max(),
        "max_drawdown": float((1 - equity / equity.cummax().clip(lower=init)).max()),
    }


@pytest.mark.parametrize("rf", [0.0, 0.05])
@pytest.mark.parametrize("options", [{}, {"direction": "longshort", "price": "next_open"},
                                     {"stop_loss": 0.002, "size": 0.5}])
def test_gappy_candles_metrics_equal_the_full_grid_reference(gappy, rf, options):
    result = run_backtest("sma_cross", gappy, parameters={"fast": 3, "slow": 12},
                          risk_free_rate=rf, **options)
    got = result.metrics
    assert got["n_trades"] > 10
    want = reference(result, gappy, rf)
    for key in ("sharpe", "sortino", "exposure", "beta", "alpha", "turnover", "max_drawdown"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    for key in ("avg_trade_duration", "max_trade_duration"):
        assert abs(got[key] - want[key]) < pd.Timedelta(microseconds=1), key


def test_gaps_change_annualisation_not_the_curve(gappy):
    """The same run read as if its candles were contiguous has fewer, larger returns: a
    different Sharpe ratio, while the curve's own numbers stay as they are."""
    result = run_backtest("sma_cross", gappy, parameters={"fast": 3, "slow": 12})
    e = np.concatenate(([result.options["init_cash"]], result.equity.to_numpy()))
    contiguous = m.sharpe(m.bar_returns(e), result.timeframe.per_year)
    assert result.metrics["sharpe"] != pytest.approx(contiguous, rel=1e-3)
    assert result.metrics["total_return"] == pytest.approx(e[-1] / e[0] - 1)
    # exposure in time: a position carried through missing slots counts them
    held_candles = float((result.position != 0).mean())
    assert result.metrics["exposure"] != pytest.approx(held_candles, rel=1e-3)


def test_contiguous_candles_are_unchanged():
    candles = make_candles(2000, seed=4)
    result = run_backtest("sma_cross", candles, parameters={"fast": 5, "slow": 20})
    e = np.concatenate(([result.options["init_cash"]], result.equity.to_numpy()))
    r = m.bar_returns(e)
    assert result.metrics["sharpe"] == pytest.approx(m.sharpe(r, 525_600.0), rel=1e-9)
    assert result.metrics["sortino"] == pytest.approx(m.sortino(r, 525_600.0), rel=1e-9)
    assert result.metrics["exposure"] == pytest.approx(float((result.position != 0).mean()))


@settings(max_examples=60, deadline=None)
@given(e=st.lists(st.floats(50.0, 200.0), min_size=2, max_size=40).map(np.array),
       data=st.data(), rf=st.sampled_from([0.0, 0.03, -0.01]))
def test_closed_form_equals_materialised_grid(e, data, rf):
    """compute_metrics with slots = the plain definitions on the zero-filled grid."""
    n = len(e) - 1
    steps = data.draw(st.lists(st.integers(1, 5), min_size=n - 1, max_size=n - 1))
    slots = np.concatenate(([0], np.cumsum(steps, dtype=np.int64)))
    held = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    out = m.compute_metrics(e, np.array([1.0]), np.array([0.1]), held, 365.0, 1.0,
                            slots=slots, risk_free_rate=rf)
    # materialise: each candle's return after its slots' zero returns
    r = m.bar_returns(e)
    grid = np.zeros(slots[-1] + 1)
    grid[slots] = r
    in_market = np.zeros(slots[-1] + 1, dtype=bool)
    for i in range(n):
        in_market[slots[i]:(slots[i + 1] if i + 1 < n else slots[i] + 1)] = held[i]
    assert out["sharpe"] == pytest.approx(m.sharpe(grid, 365.0, rf), rel=1e-9, abs=1e-12,
                                          nan_ok=True)
    assert out["sortino"] == pytest.approx(m.sortino(grid, 365.0, rf), rel=1e-9, abs=1e-12,
                                           nan_ok=True)
    assert out["exposure"] == pytest.approx(in_market.mean())
    assert out["max_drawdown"] == pytest.approx(m.max_drawdown(e), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(r=st.lists(st.floats(-0.05, 0.05), min_size=2, max_size=40).map(np.array),
       data=st.data(), rf=st.sampled_from([0.0, 0.04]))
def test_alpha_beta_equal_the_regression_on_the_grid(r, data, rf):
    b = np.array(data.draw(st.lists(st.floats(-0.05, 0.05), min_size=len(r),
                                    max_size=len(r))))
    extra = data.draw(st.integers(0, 30))
    alpha, beta = alpha_beta(r, b, len(r) + extra, 365.0, rf)
    x, y = np.r_[r, np.zeros(extra)], np.r_[b, np.zeros(extra)]
    if np.std(y, ddof=1) <= 1e-13:
        assert math.isnan(alpha) and math.isnan(beta)
        return
    c = (1 + rf) ** (1 / 365) - 1
    slope, intercept = np.polyfit(y - c, x - c, 1)
    assert beta == pytest.approx(slope, rel=1e-6, abs=1e-9)
    assert alpha == pytest.approx(intercept * 365, rel=1e-6, abs=1e-7)


def test_alpha_beta_of_buy_and_hold_itself():
    from tcp_lab.strategies import BaseStrategy, StrategyOutput

    candles = make_candles(3000, seed=8)

    class AlwaysIn(BaseStrategy):
        name = "always_in_test"
        parameters = ()

        def compute(self, c):
            first = pd.Series(False, index=c.index)
            first.iloc[0] = True
            return StrategyOutput(entries=first, exits=pd.Series(False, index=c.index))

    result = run_backtest(AlwaysIn(), candles, fees=0.0)
    assert result.metrics["beta"] == pytest.approx(1.0, rel=1e-9)
    assert result.metrics["alpha"] == pytest.approx(0.0, abs=1e-9)
    assert result.metrics["exposure"] == 1.0
    assert result.metrics["turnover"] == pytest.approx(
        10_000.0 / result.equity.mean(), rel=1e-9)  # one fill of all the cash
    assert result.metrics["avg_trade_duration"] is pd.NaT  # the trip is still open


def test_trade_durations_and_turnover_definitions():
    avg, longest = trade_durations(np.array([0, 60]) * 1_000_000, np.array([300, 180]) * 1_000_000)
    assert avg == pd.Timedelta(minutes=3.5) and longest == pd.Timedelta(minutes=5)
    assert all(v is pd.NaT for v in trade_durations(np.zeros(0), np.zeros(0)))
    # the equity before a gap counts for the gap's slots
    assert turnover(300.0, np.array([100.0, 200.0]), np.array([0, 2])) == pytest.approx(
        300.0 / ((100 * 2 + 200) / 3))
    assert math.isnan(turnover(1.0, np.array([0.0]), np.array([0])))


def test_risk_free_rate_lowers_sharpe_and_is_checked():
    candles = make_candles(3000, seed=2)
    base = run_backtest("sma_cross", candles, parameters={"fast": 5, "slow": 20})
    rf = run_backtest("sma_cross", candles, parameters={"fast": 5, "slow": 20},
                      risk_free_rate=0.05)
    assert rf.metrics["sharpe"] < base.metrics["sharpe"]
    assert rf.metrics["total_return"] == base.metrics["total_return"]
    assert rf.options["risk_free_rate"] == 0.05 and base.options["risk_free_rate"] == 0.0
    for bad in (-1.0, float("nan"), "4%", True):
        with pytest.raises(ConfigError, match="risk_free_rate"):
            run_backtest("sma_cross", candles, parameters={"fast": 5, "slow": 20},
                         risk_free_rate=bad)


def test_summary_and_report_show_the_new_metrics(tmp_path):
    result = run_backtest("sma_cross", make_candles(3000, seed=2),
                          parameters={"fast": 5, "slow": 20})
    summary = result.summary()
    assert all(k in summary.index for k in RUN_METRIC_NAMES)
    assert isinstance(summary["max_trade_duration"], pd.Timedelta)
    assert format_metric("turnover", summary["turnover"]).endswith("x")
    assert format_metric("alpha", 0.1234) == "12.34%"
    assert format_metric("avg_trade_duration", pd.Timedelta(minutes=90)) == "1h 30m"
    assert format_metric("avg_trade_duration", pd.NaT) == "n/a"
    page = result.to_html(tmp_path / "r.html").read_text()
    text = format_metric("max_trade_duration", summary["max_trade_duration"])
    assert f"<td>{text}</td>" in page


def test_durations_survive_a_stored_run(tmp_path):
    from tcp_lab.backtest.runs import list_runs, load_run

    result = run_backtest("sma_cross", make_candles(3000, seed=2),
                          parameters={"fast": 5, "slow": 20})
    run_id = result.save(home=tmp_path)
    loaded = load_run(run_id, home=tmp_path)
    for key in ("avg_trade_duration", "max_trade_duration"):
        assert loaded.metrics[key] == result.metrics[key]
    assert list_runs(tmp_path)["max_trade_duration"].iat[0] == result.metrics[
        "max_trade_duration"]
