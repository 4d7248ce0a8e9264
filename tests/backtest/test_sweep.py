"""Parameter sweeps: agreement with vectorbt and run_backtest, segments, sampling, chunking."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_lab.backtest import run_backtest
from tcp_lab.backtest.metrics import METRIC_NAMES
from tcp_lab.backtest.param_sweep import candles_to_arrays, run_chunk, sweep
from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput, get_strategy
from tcp_lab.testing import make_candles

vbt = pytest.importorskip("vectorbt")

GRIDS = {
    "sma_cross": {"fast": [2, 5, 9, 14], "slow": [10, 15, 30, 45]},
    "ema_cross": {"fast": [3, 8, 12], "slow": [10, 26, 40]},
    "rsi_reversion": {"period": [7, 14], "lower": [25.0, 30.0], "upper": [65.0, 75.0]},
}


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return make_candles(3000, seed=21)


def vbt_columns(name: str, combos: list[dict], candles: pd.DataFrame, *, start: int = 0,
                stop: int | None = None, fees: float = 0.001, init_cash: float = 10_000.0):
    """vectorbt on the strategy's signals (computed on the whole history), bars [start, stop)."""
    outs = [get_strategy(name, c).compute(candles) for c in combos]
    entries = np.column_stack([o.entries.to_numpy() for o in outs])[start:stop]
    exits = np.column_stack([o.exits.to_numpy() for o in outs])[start:stop]
    close = candles["close"].to_numpy()[start:stop]
    return vbt.Portfolio.from_signals(close[:, None], entries=entries, exits=exits, size=np.inf,
                                      fees=fees, init_cash=init_cash)


def closed_trades(pf, m: int) -> np.ndarray:
    rec = pf.trades.records_arr
    return np.bincount(rec["col"][rec["status"] == 1], minlength=m)


@pytest.mark.parametrize("name", ["sma_cross", "ema_cross", "rsi_reversion"])
def test_every_combination_agrees_with_vectorbt(name, candles):
    df = sweep(name, candles, GRIDS[name], progress=False, chunk_size=5).sort_index()
    assert df.attrs["path"] == ("generic" if name == "rsi_reversion" else "fused")
    combos = df[list(GRIDS[name])].to_dict("records")
    pf = vbt_columns(name, combos, candles)
    np.testing.assert_allclose(df["total_return"], pf.total_return().to_numpy(), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_array_equal(df["n_trades"], closed_trades(pf, len(combos)))
    assert (df["n_trades"] > 0).all()  # the grid really trades


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion"])
@pytest.mark.parametrize(
    "options",
    [{}, {"direction": "longshort", "price": "next_open", "slippage": 0.001},
     {"size": 0.5, "fees": 0.002}, {"size": 2000.0, "size_type": "value", "init_cash": 5000.0}],
)
def test_metrics_agree_with_run_backtest(name, options, candles):
    grid = {k: v[:2] for k, v in GRIDS[name].items()}
    df = sweep(name, candles, grid, progress=False, **options)
    for _, row in df.head(3).iterrows():
        params = {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in grid}
        expected = run_backtest(name, candles, parameters=params, **options).metrics
        for metric in METRIC_NAMES:
            got, want = row[metric], expected[metric]
            if metric == "n_trades" or not np.isfinite(want):
                assert got == want or (np.isnan(got) and np.isnan(want)), (metric, got, want)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), metric


def test_holdout_reports_in_and_out_of_sample_side_by_side(candles):
    grid = GRIDS["sma_cross"]
    df = sweep("sma_cross", candles, grid, holdout=0.25, progress=False).sort_index()
    assert [c for c in df.columns if c.endswith("total_return")] == [
        "is_total_return", "oos_total_return"]
    split = 3000 - 750
    combos = df[["fast", "slow"]].to_dict("records")
    for prefix, start, stop in (("is_", 0, split), ("oos_", split, None)):
        pf = vbt_columns("sma_cross", combos, candles, start=start, stop=stop)
        np.testing.assert_allclose(df[prefix + "total_return"], pf.total_return().to_numpy(),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(df[prefix + "n_trades"], closed_trades(pf, len(combos)))
    # a timestamp splits at the same candle, and rows are sorted by the in-sample metric
    by_time = sweep("sma_cross", candles, grid, holdout=candles.index[split], progress=False)
    pd.testing.assert_frame_equal(by_time.sort_index(), df)
    assert by_time.attrs["sort_by"] == "is_sharpe"
    assert by_time["is_sharpe"].is_monotonic_decreasing


def test_holdout_metrics_use_each_parts_own_span(candles):
    df = sweep("sma_cross", candles, {"fast": [5], "slow": [30]}, holdout=0.5, progress=False)
    row = df.iloc[0]
    for prefix in ("is_", "oos_"):
        years = 1499 / 525_600  # 1500 one-minute candles span 1499 minutes
        growth = 1 + row[prefix + "total_return"]
        assert row[prefix + "cagr"] == pytest.approx(growth ** (1 / years) - 1, rel=1e-9)


def test_walk_forward_folds(candles):
    grid = {"fast": [3, 6, 10], "slow": [20, 40]}
    with pytest.warns(FutureWarning, match=r"tcp_lab.walk_forward\("):
        df = sweep("ema_cross", candles, grid, walk_forward=3, metric="total_return",
                   progress=False).sort_index()
    combos = df[["fast", "slow"]].to_dict("records")
    bounds = [(0, 1000), (1000, 2000), (2000, 3000)]
    for k, (a, b) in enumerate(bounds, start=1):
        pf = vbt_columns("ema_cross", combos, candles, start=a, stop=b)
        np.testing.assert_allclose(df[f"wf{k}_total_return"], pf.total_return().to_numpy(),
                                   rtol=1e-9, atol=1e-12)
    folds = df[[f"wf{k}_total_return" for k in (1, 2, 3)]]
    np.testing.assert_allclose(df["wf_mean_total_return"], folds.mean(axis=1))
    with pytest.warns(FutureWarning):
        table = sweep("ema_cross", candles, grid, walk_forward=3, metric="total_return",
                      progress=False).attrs["walk_forward"]
    assert [r["fold"] for r in table] == [2, 3]
    best = df["wf1_total_return"].idxmax()
    assert table[0]["params"] == {"fast": df.at[best, "fast"], "slow": df.at[best, "slow"]}
    assert table[0]["oos_total_return"] == df.at[best, "wf2_total_return"]


def test_random_sample_is_reproducible(candles):
    grid = {"fast": range(2, 20), "slow": range(10, 60, 5)}
    a = sweep("sma_cross", candles, grid, n_random=15, seed=3, progress=False)
    b = sweep("sma_cross", candles, grid, n_random=15, seed=3, progress=False)
    c = sweep("sma_cross", candles, grid, n_random=15, seed=4, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 15 and (a["fast"] < a["slow"]).all()
    assert set(a.index) != set(c.index)
    full = sweep("sma_cross", candles, grid, progress=False)
    ranked = ["psr", "dsr"]  # given to the best rows of each sweep
    pd.testing.assert_frame_equal(a.drop(columns=ranked).sort_index(),
                                  full.loc[sorted(a.index)].drop(columns=ranked).sort_index(),
                                  check_like=True)
    assert len(sweep("sma_cross", candles, {"fast": [2], "slow": [10]}, n_random=9,
                     progress=False)) == 1


@pytest.mark.parametrize(
    "grid,match",
    [({"fast": ["a"], "slow": [10]}, "fast"), ({"fast": [0], "slow": [10]}, "out of range"),
     ({"fsat": [3]}, "did you mean 'fast'"), ({"fast": [20], "slow": [10]}, "no valid")],
)
def test_invalid_grids_raise_strategy_error(grid, match, candles):
    with pytest.raises(StrategyError, match=match):
        sweep("sma_cross", candles, grid, progress=False)


def test_invalid_options_raise_config_error(candles):
    with pytest.raises(ConfigError, match="did you mean 'fees'"):
        sweep("sma_cross", candles, GRIDS["sma_cross"], fee=0.1, progress=False)
    with pytest.raises(ConfigError, match="did you mean 'sharpe'"):
        sweep("sma_cross", candles, GRIDS["sma_cross"], metric="sharp", progress=False)
    with pytest.raises(ConfigError, match="holdout"):
        sweep("sma_cross", candles, GRIDS["sma_cross"], holdout=1.5, progress=False)
    with pytest.raises(ConfigError, match="combined"):
        sweep("sma_cross", candles, GRIDS["sma_cross"], holdout=0.3, walk_forward=3,
              progress=False)


class Fragile(BaseStrategy):
    """Breaks for one parameter value (to check that the error names it)."""

    name = "fragile_test"
    parameters = (Parameter("n", int, 3, min=1, max=100, step=1),)

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        if self.params["n"] == 7:
            raise ZeroDivisionError("n=7 is cursed")
        close = candles["close"]
        up = close > close.rolling(self.params["n"]).mean()
        return StrategyOutput(entries=up, exits=~up)


def test_a_failing_combination_is_named(candles):
    with pytest.raises(StrategyError, match=r"\{'n': 7\}.*cursed"):
        sweep(Fragile, candles, {"n": [3, 5, 7, 9]}, progress=False)
    df = sweep(Fragile, candles, {"n": [3, 5]}, progress=False)
    assert df.attrs["path"] == "generic" and len(df) == 2


def test_run_chunk_is_picklable_and_pure(candles):
    df = sweep("rsi_reversion", candles, GRIDS["rsi_reversion"], progress=False,
               deflate=0).sort_index().drop(columns=["psr", "dsr"])
    options = {**df.attrs["options"], "segments": [(0, len(candles))], "prefixes": [""],
               "years": [2999 / 525_600], "bars_per_year": 525_600.0}
    combos = df[list(GRIDS["rsi_reversion"])].to_dict("records")
    args = pickle.loads(pickle.dumps(("rsi_reversion", candles_to_arrays(candles), combos,
                                      options)))
    func = pickle.loads(pickle.dumps(run_chunk))
    out = func(*args)
    pd.testing.assert_frame_equal(out, df.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(func(*args), out)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_size=st.integers(1, 30), name=st.sampled_from(["sma_cross", "rsi_reversion"]))
def test_chunking_does_not_change_results(chunk_size, name, candles):
    reference = sweep(name, candles, GRIDS[name], progress=False)
    chunked = sweep(name, candles, GRIDS[name], chunk_size=chunk_size, progress=False)
    assert chunked.attrs["n_chunks"] == -(-len(reference) // chunk_size)
    pd.testing.assert_frame_equal(chunked, reference)


def test_progress_bar_and_attrs(candles, capsys):
    df = sweep("sma_cross", candles, GRIDS["sma_cross"], progress=True, chunk_size=4)
    assert "sweep sma_cross" in capsys.readouterr().err
    assert df.attrs["strategy"] == "sma_cross" and df.attrs["n_combos"] == len(df)
    assert df.attrs["options"]["fees"] == 0.001
    assert list(df.columns[:2]) == ["fast", "slow"]
    assert df.index.name == "combo"


def test_sweep_heatmap_builds(candles):
    from tcp_lab.reports.sweep_figures import sweep_heatmap

    df = sweep("rsi_reversion", candles, GRIDS["rsi_reversion"], progress=False)
    fig = sweep_heatmap(df, "lower", "upper", "sharpe")
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (2, 2)
    best = df.groupby(["upper", "lower"])["sharpe"].max()
    assert np.asarray(heat.z)[0][0] == pytest.approx(best.iloc[0])
    with pytest.raises(ConfigError, match="did you mean 'sharpe'"):
        sweep_heatmap(df, "lower", "upper", "sharp")


class Momentum(BaseStrategy):
    """Long above the n-bar mean, short below it (explicit short signals)."""

    name = "momentum_test"
    parameters = (Parameter("n", int, 10, min=2, max=500, step=1),)

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        close = candles["close"]
        mean = close.rolling(self.params["n"]).mean()
        up, down = close > mean * 1.0005, close < mean * 0.9995
        return StrategyOutput(entries=up, exits=~up, short_entries=down, short_exits=~down)


def test_explicit_short_signals_agree_with_run_backtest(candles):
    df = sweep(Momentum, candles, {"n": [5, 20, 60]}, direction="longshort", progress=False)
    for _, row in df.iterrows():
        expected = run_backtest(Momentum({"n": int(row["n"])}), candles,
                                direction="longshort").metrics
        assert row["n_trades"] == expected["n_trades"] > 0
        for metric in ("total_return", "sharpe", "max_drawdown", "profit_factor",
                       "avg_trade_return", "exposure"):
            assert row[metric] == pytest.approx(expected[metric], rel=1e-9), metric


def test_sweep_checks_the_close_grid_as_run_backtest_does():
    from tcp_lab.errors import DataError
    from tcp_lab.testing import make_candles

    off = make_candles(500)
    off.index = off.index + pd.Timedelta(seconds=30)
    with pytest.raises(DataError, match="not on the 1m close grid"):
        sweep("sma_cross", off, {"fast": [5], "slow": [20]}, progress=False)


def test_non_finite_metrics_and_too_few_trades_rank_last():
    import numpy as np

    from tcp_lab.backtest.sweep_rank import rank_rows

    df = pd.DataFrame({"sortino": [1.0, np.inf, np.nan, 3.0, -np.inf, 2.0],
                       "n_trades": [20, 1, 0, 5, 12, 30]}, index=pd.Index(range(6), name="combo"))
    ranked = rank_rows(df, "sortino", False, None, "n_trades")
    assert list(ranked.index) == [3, 5, 0, 1, 2, 4]  # inf is not "best": it ranks last
    ranked = rank_rows(df, "sortino", False, 10, "n_trades")
    assert list(ranked.index) == [5, 0, 1, 2, 3, 4]  # 3 has only 5 trades
    assert list(rank_rows(df, "sortino", True, None, "n_trades").index) == [0, 5, 3, 1, 2, 4]


def test_the_best_rows_get_the_probabilistic_and_deflated_sharpe_of_their_returns():
    from tcp_lab.backtest import run_backtest
    from tcp_lab.stats import deflated_sharpe, probabilistic_sharpe, sharpe_moments

    candles = make_candles(4000, seed=9)
    grid = {"fast": [5, 10, 20], "slow": [30, 50, 80]}
    df = sweep("sma_cross", candles, grid, progress=False, holdout=0.25, fees=0.0005,
               min_trades=5, deflate=2)
    assert df["psr"].notna().sum() == 2 and df["dsr"].notna().sum() == 2
    assert df["psr"].iloc[:2].notna().all()  # the two best, in order
    best = df.iloc[0]
    a, b = 0, int(len(candles) * 0.75)
    result = run_backtest("sma_cross", candles.iloc[a:b], fees=0.0005,
                          parameters={"fast": int(best["fast"]), "slow": int(best["slow"])})
    m = sharpe_moments(result.equity.pct_change().dropna().to_numpy())
    per_candle = df["is_sharpe"] / (525_600 ** 0.5)  # 1m candles per year
    spread = per_candle.std(ddof=1)
    assert best["psr"] == pytest.approx(probabilistic_sharpe(m.sharpe, m.n_obs, m.skew,
                                                             m.kurtosis), rel=1e-9)
    assert best["dsr"] == pytest.approx(deflated_sharpe(m.sharpe, len(df), spread, m.n_obs,
                                                        m.skew, m.kurtosis), rel=1e-9)
    assert best["dsr"] <= best["psr"]  # selection out of 9 trials can only cost
    info = df.attrs["deflated"]
    assert info["n_trials"] == len(df) and info["trials_sharpe_std"] == pytest.approx(spread)
    assert df.attrs["min_trades"] == 5


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), missing=st.sampled_from([0.0, 0.3, 0.7]),
       name=st.sampled_from(["sma_cross", "ema_cross", "rsi_reversion"]),
       options=st.sampled_from([{}, {"direction": "longshort", "price": "next_open"},
                                {"stop_loss": 0.003, "take_profit": 0.004},
                                {"size": 0.5, "fees": 0.002}]),
       holdout=st.sampled_from([None, 0.3]))
def test_sweep_metrics_equal_run_backtest_on_gappy_candles(seed, missing, name, options,
                                                            holdout):
    """Every combination's metrics equal run_backtest's, also when candles are missing
    (slots of the grid with a zero return; exposure in time), also in-sample of a holdout
    (the in-sample part is a prefix: causal signals are the same)."""
    candles = make_candles(1500, seed=seed)
    keep = np.random.default_rng(seed).random(len(candles)) >= missing
    keep[[0, -1]] = True
    candles = candles[keep]
    grid = {k: v[:2] for k, v in GRIDS[name].items()}
    df = sweep(name, candles, grid, progress=False, deflate=0, holdout=holdout,
               timeframe="1m", **options)
    prefix, part = "", candles
    if holdout is not None:
        prefix, part = "is_", candles.iloc[:len(candles) - int(round(len(candles) * holdout))]
    for _, row in df.iterrows():
        params = {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in grid}
        expected = run_backtest(name, part, parameters=params, timeframe="1m",
                                **options).metrics
        for metric in METRIC_NAMES:
            got, want = row[prefix + metric], expected[metric]
            if metric == "n_trades" or not np.isfinite(want):
                assert got == want or (np.isnan(got) and np.isnan(want)), (metric, got, want)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), metric


def test_run_backtest_only_metrics_are_named_as_such(candles):
    with pytest.raises(ConfigError, match="run_backtest's own metrics"):
        sweep("sma_cross", candles, {"fast": [5], "slow": [20]}, metric="beta", progress=False)
