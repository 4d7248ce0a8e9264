"""Walk-forward: folds by their definition, selection rules, one carried account, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcp_lab
from tcp_lab.backtest.engine import run_backtest
from tcp_lab.backtest.metrics import compute_metrics
from tcp_lab.backtest.walk_forward_analysis import select_combination, walk_forward
from tcp_lab.backtest.walk_forward_folds import fold_windows
from tcp_lab.backtest.walk_forward_result import WalkForwardResult, efficiency_ratio
from tcp_lab.errors import ConfigError
from tcp_lab.execution import TradingOptions, route_signals
from tcp_lab.execution.account import N_STATE, open_account_nb
from tcp_lab.execution.simulate import run_bars_nb
from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput, get_strategy
from tcp_lab.strategies.base import candle_arrays
from tcp_lab.strategies.sma_cross import SmaCross
from tcp_lab.testing import make_candles
from tcp_lab.timeframes import parse_timeframe

NO_TRADES = (np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
             np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
GRID = {"fast": [5, 10, 20], "slow": [30, 60]}


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    """Realistic 1m candles (BTC-like volatility), enough for a few folds."""
    return make_candles(12_000, seed=11)


# -- folds -----------------------------------------------------------------------------
def reference_folds(ts_us: np.ndarray, tf_us: int, train, test, step, anchored):
    """Folds by their written definition, one candle at a time (no searchsorted)."""
    step = test if step is None else step
    out = []
    if isinstance(train, int):
        s = 0
        while s + train + test <= len(ts_us):
            out.append((0 if anchored else s, s + train, s + train, s + train + test))
            s += step
        return out
    t0 = int(ts_us[0]) - tf_us
    us = [int(x / pd.Timedelta(microseconds=1)) for x in (train, test, step)]
    i = 0
    while t0 + i * us[2] + us[0] + us[1] <= ts_us[-1]:
        s = t0 + i * us[2]
        lo = t0 if anchored else s

        def inside(a, b):
            return [j for j, t in enumerate(ts_us) if a < t <= b]

        tr, te = inside(lo, s + us[0]), inside(s + us[0], s + us[0] + us[1])
        if len(tr) >= 2 and te:
            out.append((tr[0], tr[-1] + 1, te[0], te[-1] + 1))
        i += 1
    return out


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 80), train=st.integers(2, 40), test=st.integers(1, 30),
       extra=st.one_of(st.none(), st.integers(0, 20)), anchored=st.booleans())
def test_count_folds_match_the_definition(n, train, test, extra, anchored):
    index = make_candles(n).index
    step = None if extra is None else test + extra
    if train + test > n:
        with pytest.raises(ConfigError, match="more than the"):
            fold_windows(index, train=train, test=test, step=step, anchored=anchored)
        return
    got = fold_windows(index, train=train, test=test, step=step, anchored=anchored)
    assert got == reference_folds(index.asi8, 60_000_000, train, test, step, anchored)
    assert got[0][:2] == (0, train)


@settings(max_examples=120, deadline=None)
@given(n=st.integers(3, 120), tf=st.sampled_from(["1m", "5m", "1h"]),
       train=st.integers(2, 50), test=st.integers(1, 30), extra=st.integers(0, 20),
       use_step=st.booleans(), anchored=st.booleans(), drop=st.integers(0, 2**32 - 1))
def test_duration_folds_match_the_definition(n, tf, train, test, extra, use_step, anchored,
                                             drop):
    """Durations in minutes (not always a multiple of the timeframe); some candles missing."""
    index = make_candles(n, tf).index
    keep = np.random.default_rng(drop).random(n) > 0.15
    keep[[0, 1, -1]] = True
    index = index[keep]
    tr, te = pd.Timedelta(minutes=train * 7), pd.Timedelta(minutes=test * 7)
    step = pd.Timedelta(minutes=(test + extra) * 7) if use_step else None
    us = parse_timeframe(tf).us
    want = reference_folds(index.as_unit("us").asi8, us, tr, te, step, anchored)
    span = index[-1] - (index[0] - parse_timeframe(tf).delta)
    if tr + te > span:
        with pytest.raises(ConfigError, match="longer than the candles"):
            fold_windows(index, train=tr, test=te, step=step, anchored=anchored, timeframe=tf)
        return
    if not want:
        with pytest.raises(Exception, match="no fold"):
            fold_windows(index, train=tr, test=te, step=step, anchored=anchored, timeframe=tf)
        return
    assert fold_windows(index, train=tr, test=te, step=step, anchored=anchored,
                        timeframe=tf) == want


def test_duration_strings_and_timedeltas_agree():
    index = make_candles(3 * 24 * 60).index  # three days of 1m candles
    by_str = fold_windows(index, train="1D", test="12h")
    assert by_str == fold_windows(index, train=pd.Timedelta(days=1), test=pd.Timedelta("12h"))
    assert by_str == fold_windows(index, train=1440, test=720)  # complete data: same candles
    assert [f[1] - f[0] for f in by_str] == [1440] * 4
    anchored = fold_windows(index, train="1D", test="12h", step="1D", anchored=True)
    assert [(a, b) for a, b, _, _ in anchored] == [(0, 1440), (0, 2880)]


@pytest.mark.parametrize("kwargs, match", [
    ({"train": 0, "test": 10}, r"train=0 must be at least 1 candle"),
    ({"train": 100, "test": -5}, r"test=-5 must be at least 1 candle"),
    ({"train": 1, "test": 10}, r"train=1: a train window needs at least 2"),
    ({"train": "abc", "test": "1h"}, r"train='abc' is not a duration"),
    ({"train": "-2h", "test": "1h"}, r"train='-2h' must be a positive duration"),
    ({"train": 1.5, "test": 10}, r"train=1.5 is neither a candle count nor a duration"),
    ({"train": True, "test": 10}, r"train=True is neither"),
    ({"train": "1D", "test": 60}, r"mix candle counts and durations"),
    ({"train": 100, "test": 50, "step": 20}, r"step=20 is shorter than test=50"),
    ({"train": 900, "test": 200}, r"train=900 \+ test=200 candles is more than the 1000"),
    ({"train": "10h", "test": "8h"}, r"train='10h' \+ test='8h' is longer than the candles"),
])
def test_window_errors_name_the_argument(kwargs, match):
    index = make_candles(1000).index
    with pytest.raises(ConfigError, match=match) as e:
        fold_windows(index, **kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "sharp"}, r"unknown metric 'sharp'; did you mean 'sharpe'\?"),
    ({"min_trades": -1}, r"min_trades=-1 must be an integer >= 0"),
    ({"min_trades": 2.5}, r"min_trades=2.5"),
    ({"fess": 0.001}, r"walk_forward: unknown trading option 'fess'.*did you mean 'fees'"),
    ({"latency_ms": 100}, r"latency_ms and max_volume_share act on market trades"),
    ({"train": 5000, "test": 6000}, r"train=5000 \+ test=6000 candles is more than"),
])
def test_walk_forward_errors(kwargs, match):
    c = make_candles(3000)
    args = {"train": 1000, "test": 500} | kwargs
    with pytest.raises(ConfigError, match=match):
        walk_forward("sma_cross", c, GRID, progress=False, **args)


# -- selection -------------------------------------------------------------------------
def sweep_table(rows: list[tuple[int, float, int]], prefix: str = "") -> pd.DataFrame:
    """A sweep-like frame: (fast, metric, n_trades) rows, index = grid position."""
    df = pd.DataFrame({"fast": [r[0] for r in rows], "slow": 50,
                       prefix + "total_return": 0.0, prefix + "sharpe": [r[1] for r in rows],
                       prefix + "max_drawdown": [abs(r[1]) for r in rows],
                       prefix + "n_trades": [r[2] for r in rows]})
    return df.iloc[::-1]  # sweeps sort best first: selection must not depend on row order


def test_selection_respects_min_trades_and_ignores_non_finite():
    table = sweep_table([(5, 9.0, 3), (6, np.nan, 50), (7, np.inf, 50), (8, 1.5, 10),
                         (9, 2.0, 12), (10, 2.0, 40)])
    sel = select_combination(table, "sharpe", 10)
    assert sel.combo == 4 and sel.params == {"fast": 9, "slow": 50}  # tie: first in grid order
    assert sel.in_sample == 2.0
    assert (sel.n_combos, sel.n_too_few_trades, sel.n_not_finite) == (6, 1, 2)
    assert select_combination(table, "sharpe", 0).combo == 0  # 9.0 qualifies without a minimum
    assert select_combination(table, "max_drawdown", 10).combo == 3  # smaller is better


def test_selection_with_no_qualifying_row_is_flat():
    sel = select_combination(sweep_table([(5, 1.0, 2), (6, np.nan, 30)], "oos_"), "sharpe",
                             10, "oos_")
    assert sel.combo is None and sel.params == {}
    assert "flat" in sel.note and "1 with fewer trades, 1 without a finite sharpe" in sel.note


def test_every_fold_flat_without_enough_trades(candles):
    wf = walk_forward("sma_cross", candles, GRID, train=3000, test=3000, min_trades=10**6,
                      progress=False)
    assert (wf.folds["note"].str.startswith("flat")).all()
    assert wf.folds["fast"].isna().all() and wf.folds["n_too_few_trades"].eq(6).all()
    assert (wf.equity == 10_000.0).all() and len(wf.trades) == 0
    assert math.isnan(wf.efficiency["overall"]) and wf.metrics["n_flat_folds"] == 3


class Bursts(BaseStrategy):
    """Enters every ``period`` minutes and exits half-way, only before ``CUTOFF`` (causal:
    it reads the candle's own time). With 20, its last entry (minute 3580) never exits."""

    name = "bursts_test"
    parameters = (Parameter("period", int, 20, min=2, max=1000),)
    CUTOFF = pd.Timestamp("2024-01-03 11:45", tz="UTC")  # minute 3585 of the candles

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        minute = (candles.index.asi8 // 60_000_000) % self.params["period"]
        early = candles.index < self.CUTOFF
        idx = candles.index
        return StrategyOutput(entries=pd.Series((minute == 0) & early, index=idx),
                              exits=pd.Series((minute == self.params["period"] // 2) & early,
                                              index=idx), indicators={})


def test_flat_fold_closes_the_carried_position_and_trades_nothing(candles):
    # fold 2 enters at candle 3579 and never exits; folds 3 and 4 still train on closed
    # trades and hold it; fold 5 trains after the cutoff: flat, it closes the position on
    # its first candle (6000) and trades nothing
    wf = walk_forward(Bursts, candles, {"period": [20]}, train=2000, test=1000,
                      metric="total_return", min_trades=1, progress=False)
    assert list(wf.folds.index[wf.folds["note"] != ""]) == [5, 6, 7, 8, 9, 10]
    assert wf.folds.loc[1:4, "period"].eq(20).all() and wf.folds.loc[5:, "period"].isna().all()
    start = wf.folds.at[5, "test_start"]
    assert start == candles.index[6000]
    assert wf.position.loc[candles.index[3579]:wf.folds.at[4, "test_end"]].gt(0).all()
    assert wf.position.loc[start:].eq(0).all()
    last = wf.trades.iloc[-1]
    assert (last["fold"], last["entry_time"], last["exit_time"]) == (2, candles.index[3579],
                                                                      start)
    assert wf.trades.iloc[:-1]["exit_time"].lt(candles.index[3600]).all()


# -- the one account -------------------------------------------------------------------
def _positions(candles, folds):
    idx = candles.index
    return [(idx.get_loc(r.test_start), idx.get_loc(r.test_end) + 1, r)
            for r in folds.itertuples()]


def manual_close(candles, wf, opts: TradingOptions) -> np.ndarray:
    """Window by window with the engine's driver, the account carried (fills at close)."""
    state = np.empty(N_STATE)
    open_account_nb(state, opts.init_cash)
    bars = [candles[c].to_numpy() for c in ("open", "high", "low", "close")]
    out, entry = [], -1
    for sa, sb, r in _positions(candles, wf.folds):
        s = get_strategy("sma_cross", {"fast": int(r.fast), "slow": int(r.slow)})
        o = s.compute(candles.iloc[:sb])
        flags = route_signals(opts.direction, o.entries.to_numpy(), o.exits.to_numpy())
        eq, pos = np.empty(sb - sa), np.empty(sb - sa)
        _, _, entry = run_bars_nb(state, entry, sa, *(b[sa:sb] for b in bars),
                                  *(np.ascontiguousarray(f[sa:sb]) for f in flags),
                                  np.zeros(0), np.zeros(0), False, opts.kernel_options(),
                                  NO_TRADES, eq, pos)
        out.append(eq)
    return np.concatenate(out)


def manual_next_open(candles, wf, opts: TradingOptions) -> np.ndarray:
    """The fold signals laid side by side over the test span, moved one bar, one run."""
    pos = _positions(candles, wf.folds)
    first, last = pos[0][0], pos[-1][1]
    stitched = np.zeros((4, last - first), dtype=bool)
    for sa, sb, r in pos:
        o = get_strategy("sma_cross", {"fast": int(r.fast), "slow": int(r.slow)}).compute(
            candles.iloc[:sb])
        flags = route_signals(opts.direction, o.entries.to_numpy(), o.exits.to_numpy())
        for j, f in enumerate(flags):
            stitched[j, sa - first:sb - first] = f[sa:sb]
    act = np.zeros_like(stitched)
    act[:, 1:] = stitched[:, :-1]
    state = np.empty(N_STATE)
    open_account_nb(state, opts.init_cash)
    eq, p = np.empty(last - first), np.empty(last - first)
    run_bars_nb(state, -1, first, *(candles[c].to_numpy()[first:last] for c in
                                    ("open", "high", "low", "close")),
                *act, np.zeros(0), np.zeros(0), True, opts.kernel_options(), NO_TRADES, eq, p)
    return eq


@pytest.mark.parametrize("opts", [
    {"price": "close"},
    {"price": "close", "direction": "longshort", "stop_loss": 0.004},
    {"price": "next_open", "fees": 0.0005},
    {"price": "next_open", "direction": "longshort"},
])
def test_stitched_equity_equals_a_manual_loop_carrying_the_account(candles, opts):
    wf = walk_forward("sma_cross", candles.iloc[:9000], GRID, train=3000, test=2000,
                      min_trades=1, progress=False, **opts)
    assert len(wf.folds) == 3 and (wf.folds["note"] == "").all()
    to = TradingOptions(**opts)
    manual = manual_close if to.price == "close" else manual_next_open
    np.testing.assert_array_equal(wf.equity.to_numpy(), manual(candles, wf, to))
    # the per-fold out-of-sample metric is that window's slice of the one account
    wf2 = walk_forward("sma_cross", candles.iloc[:9000], GRID, train=3000, test=2000,
                       min_trades=1, progress=False, metric="total_return", **opts)
    e = wf2.equity.to_numpy()
    ends = np.cumsum(wf2.folds["n_test"].to_numpy())
    starts = np.r_[to.init_cash, e[ends[:-1] - 1]]
    np.testing.assert_allclose(wf2.folds["oos_total_return"], e[ends - 1] / starts - 1,
                               rtol=1e-12)


def test_a_position_carries_across_a_fold_boundary(candles):
    wf = walk_forward("sma_cross", candles, GRID, train=2000, test=1000, min_trades=1,
                      progress=False)
    crossed = 0
    for k, t in wf.folds["test_start"].iloc[1:].items():
        if wf.position.iat[wf.position.index.get_loc(t) - 1] == 0:
            continue
        crossed += 1  # one round trip across the boundary, entered in the fold before
        trip = wf.trades[(wf.trades["entry_time"] < t)
                         & ~(wf.trades["exit_time"] < t)]
        assert len(trip) == 1 and trip["fold"].iat[0] == k - 1
    assert crossed  # this history holds a position over at least one boundary


class MaskedCross(SmaCross):
    """``sma_cross`` that ignores its signals before ``start`` (the same account otherwise)."""

    name = "masked_cross_test"
    start = pd.Timestamp.min.tz_localize("UTC")

    def compute(self, candles):
        out = self.compute_arrays(candle_arrays(candles)).to_output(candles.index)
        late = pd.Series(candles.index >= self.start, index=candles.index)
        return StrategyOutput(entries=out.entries & late, exits=out.exits & late,
                              indicators=out.indicators)


@pytest.mark.parametrize("opts", [
    {"price": "close"},
    {"price": "next_open"},
    {"direction": "longshort", "stop_loss": 0.005, "take_profit": 0.01},
    {"size": 0.5, "fees": 0.002, "slippage": 0.0005},
])
def test_one_choice_everywhere_is_one_backtest(candles, opts):
    """Every fold picks the only combination: the stitched account is run_backtest's, bit for
    bit, once the signals before the first test candle are ignored (the account starts there)."""
    grid = {"fast": [10], "slow": [40]}
    wf = walk_forward("sma_cross", candles, grid, train=2500, test=1900, min_trades=0,
                      progress=False, **opts)
    first, last = wf.equity.index[0], wf.equity.index[-1]
    masked = MaskedCross({"fast": 10, "slow": 40})
    masked.start = first
    rb = run_backtest(masked, candles.loc[:last], **opts)
    np.testing.assert_array_equal(wf.equity.to_numpy(), rb.equity.loc[first:].to_numpy())
    assert len(wf.trades) == len(rb.trades) > 50
    np.testing.assert_array_equal(wf.trades["pnl"], rb.trades["pnl"])


class LevelCross(MaskedCross):
    """``MaskedCross`` that sets its own stop and target per bar (read at the entry bar)."""

    name = "level_cross_test"

    def compute(self, candles):
        out = super().compute(candles)
        close = candles["close"]
        return StrategyOutput(entries=out.entries, exits=out.exits, indicators={},
                              stop_price=close * 0.997, target_price=close * 1.004)


@pytest.mark.parametrize("price", ["close", "next_open"])
def test_strategy_levels_carry_across_windows(candles, price):
    """Per-bar stop and target levels: a window's first bar (next_open) enters with the
    level of the bar before, from the previous window, as in one run."""
    entries = SmaCross({"fast": 10, "slow": 40}).compute(candles).entries.to_numpy()
    e = 3500 + int(np.argmax(entries[3500:]))  # an entry on the first window's last candle
    wf = walk_forward(LevelCross, candles, {"fast": [10], "slow": [40]}, train=2500,
                      test=e + 1 - 2500, min_trades=0, progress=False, price=price)
    assert wf.folds["test_end"].iat[0] == candles.index[e]
    first, last = wf.equity.index[0], wf.equity.index[-1]
    masked = LevelCross({"fast": 10, "slow": 40})
    masked.start = first
    rb = run_backtest(masked, candles.loc[:last], price=price)
    assert {"stop_loss", "take_profit"} <= set(rb.trades["exit_reason"])
    entered = rb.trades["entry_time"] == candles.index[e + (price == "next_open")]
    assert entered.sum() == 1 and wf.trades.loc[entered.to_numpy(), "fold"].iat[0] == 1
    np.testing.assert_array_equal(wf.equity.to_numpy(), rb.equity.loc[first:].to_numpy())


def test_one_choice_everywhere_is_the_whole_history_backtest_rebased(candles):
    """Against run_backtest on the whole history: equal (to rounding: the all-in account
    scales) from a first test candle where that run holds nothing. It is not equal in
    general: where the full run holds a position there, the walk-forward starts flat."""
    rb = run_backtest("sma_cross", candles, parameters={"fast": 10, "slow": 40})
    pos = rb.position.to_numpy()
    p = next(i for i in range(2000, 4000) if pos[i - 1] == 0)
    wf = walk_forward("sma_cross", candles, {"fast": [10], "slow": [40]}, train=p, test=2000,
                      min_trades=0, progress=False)
    span = rb.equity.loc[wf.equity.index[0]:wf.equity.index[-1]]
    rebased = span.to_numpy() * 10_000.0 / rb.equity.iat[p - 1]
    np.testing.assert_allclose(wf.equity.to_numpy(), rebased, rtol=1e-9)


def test_in_sample_metric_is_the_train_window_own_account_with_warm_indicators(candles):
    wf = walk_forward("sma_cross", candles, GRID, train=3000, test=3000, min_trades=0,
                      progress=False)
    row = wf.folds.loc[2]
    masked = MaskedCross({"fast": int(row["fast"]), "slow": int(row["slow"])})
    masked.start = row["train_start"]
    a = candles.index.get_loc(row["train_start"])
    warm = candles.iloc[a - wf.settings["warmup"]:candles.index.get_loc(row["train_end"]) + 1]
    rb = run_backtest(masked, warm)
    e = rb.equity.loc[row["train_start"]:].to_numpy()
    closed = rb.trades[rb.trades["status"] == "closed"]
    m = compute_metrics(np.r_[10_000.0, e], closed["pnl"], closed["return"], e * 0 != 0,
                        rb.timeframe.per_year, 0.0)
    assert row["is_sharpe"] == pytest.approx(m["sharpe"], rel=1e-9)


def test_step_longer_than_test_leaves_gaps_traded_flat(candles):
    wf = walk_forward("sma_cross", candles, GRID, train=2000, test=1500, step=2500,
                      min_trades=1, progress=False)
    assert len(wf.equity) == wf.folds["n_test"].sum() == 4 * 1500
    gaps = wf.folds["test_start"].iloc[1:].to_numpy() - wf.folds["test_end"].iloc[:-1].to_numpy()
    assert (gaps == pd.Timedelta(minutes=1001)).all()
    for end in wf.folds["test_end"].iloc[:-1]:
        assert wf.position.loc[end] == 0  # closed on the window's last candle
    assert (wf.trades["exit_time"].dropna().isin(wf.equity.index)).all()


def test_anchored_durations_and_result_fields(candles, tmp_path):
    # the public names are the function and the class (no submodule shadows them)
    assert tcp_lab.walk_forward is walk_forward and tcp_lab.WalkForwardResult is WalkForwardResult
    wf = tcp_lab.walk_forward("sma_cross", candles, GRID, train="2D", test="1D", anchored=True,
                              min_trades=1, progress=False)
    assert isinstance(wf, WalkForwardResult)
    f = wf.folds
    assert (f["train_start"] == candles.index[0]).all() and list(f["n_test"]) == [1440] * 6
    assert list(f["n_train"]) == [2880 + 1440 * i for i in range(6)]
    assert list(f.columns[:8]) == ["train_start", "train_end", "test_start", "test_end",
                                   "n_train", "n_test", "fast", "slow"]
    assert {"is_sharpe", "oos_sharpe", "efficiency", "n_combos", "n_too_few_trades",
            "n_not_finite", "note"} <= set(f.columns)
    assert wf.equity.index.equals(candles.index[2880:2880 + 6 * 1440])
    assert list(wf.trades.columns[:3]) == ["fold", "fast", "slow"]
    assert wf.trades["fold"].between(1, 6).all()
    assert wf.metrics["n_trades"] == (wf.trades["status"] == "closed").sum()
    assert wf.metrics["final_equity"] == wf.equity.iat[-1]
    assert list(wf.efficiency.index) == [1, 2, 3, 4, 5, 6, "overall"]
    fig = wf.plot()
    assert len(fig.layout.shapes) == 6 and [t.type for t in fig.data] == ["scattergl", "bar", "bar"]
    assert "fold 1: fast=" in fig.data[0].customdata[0]
    page = wf.to_html(tmp_path / "wf.html").read_text()
    assert "Folds" in page and "efficiency (sharpe)" in page and "plotly" in page


def test_efficiency_ratio_definition():
    assert efficiency_ratio(1.0, 2.0) == 0.5
    assert efficiency_ratio(-1.0, 2.0) == -0.5
    assert efficiency_ratio(-0.5, -1.0) == 1.5 and efficiency_ratio(-1.0, -1.0) == 1.0
    assert efficiency_ratio(-2.0, -1.0) == 0.0 and efficiency_ratio(1.0, -1.0) == 3.0
    assert math.isnan(efficiency_ratio(1.0, 0.0))
    assert math.isnan(efficiency_ratio(np.nan, 1.0)) and math.isnan(efficiency_ratio(1.0, np.inf))
    assert efficiency_ratio(0.2, 0.1, "max_drawdown") == 0.5
    assert math.isnan(efficiency_ratio(0.0, 0.1, "max_drawdown"))
