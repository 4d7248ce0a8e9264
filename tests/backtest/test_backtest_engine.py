"""run_backtest: fills, fees, directions, sizes, and agreement with vectorbt's own stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.backtest import BacktestResult, run_backtest
from tcp_lab.backtest.engine import infer_timeframe
from tcp_lab.backtest.result import TRADE_COLUMNS
from tcp_lab.errors import ConfigError, DataError, StrategyError
from tcp_lab.strategies import get_strategy
from tcp_lab.testing import make_candles

vbt = pytest.importorskip("vectorbt")


@pytest.fixture(scope="module")
def candles():
    return make_candles(3000, "1m", seed=11)


def test_matches_vectorbt_stats(candles):
    s = get_strategy("sma_cross", {"fast": 5, "slow": 20})
    r = run_backtest(s, candles, fees=0.002, init_cash=1000.0)
    out = s.compute(candles)
    pf = vbt.Portfolio.from_signals(
        candles["close"].to_numpy(), out.entries.to_numpy(), out.exits.to_numpy(),
        fees=0.002, init_cash=1000.0, freq="1min",
    )
    stats = pf.stats()
    assert r.metrics["total_return"] * 100 == pytest.approx(stats["Total Return [%]"], rel=1e-9)
    assert r.metrics["n_trades"] == stats["Total Closed Trades"]
    assert r.metrics["n_trades"] + r.metrics["n_open_trades"] == stats["Total Trades"]
    assert r.metrics["fees_paid"] == pytest.approx(stats["Total Fees Paid"], rel=1e-9)
    assert r.metrics["max_drawdown"] * 100 == pytest.approx(stats["Max Drawdown [%]"], rel=1e-6)
    assert r.metrics["win_rate"] * 100 == pytest.approx(stats["Win Rate [%]"], rel=1e-9)
    assert r.metrics["profit_factor"] == pytest.approx(stats["Profit Factor"], rel=1e-9)
    np.testing.assert_allclose(r.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(r.position.to_numpy(), pf.assets().to_numpy(), atol=1e-9)


def test_result_is_indexed_like_the_candles_in_utc(candles):
    r = run_backtest("sma_cross", candles)
    assert isinstance(r, BacktestResult)
    assert r.equity.index.equals(candles.index) and str(r.equity.index.tz) == "UTC"
    assert list(r.trades.columns) == list(TRADE_COLUMNS)
    assert str(r.trades["entry_time"].dtype) == "datetime64[us, UTC]"
    assert str(r.trades["exit_time"].dtype) == "datetime64[us, UTC]"
    assert set(r.trades["status"]) <= {"open", "closed"} and set(r.trades["direction"]) == {"long"}
    assert r.trades["fees"].to_numpy() == pytest.approx(
        (r.trades["entry_fees"] + r.trades["exit_fees"]).to_numpy())
    assert list(r.signals.columns) == ["entries", "exits", "action"]
    sig = r.signals
    assert (sig.loc[sig["entries"], "action"] == "buy").all()
    assert (sig.loc[sig["exits"], "action"] == "sell").all()
    assert r.strategy_name == "sma_cross" and r.parameters == {"fast": 10, "slow": 30}
    assert r.options["fees"] == 0.001 and r.timeframe.name == "1m"
    assert "sma_fast" in r.indicators and r.label == "sma_cross(fast=10, slow=30) on 1m"
    assert "BacktestResult" in repr(r)


def test_fees_reduce_return_by_the_expected_amount(hand_candles, fixed_strategy):
    c = hand_candles([100.0, 100.0, 110.0, 110.0])
    s = fixed_strategy([1, 0, 0, 0], [0, 0, 1, 0])
    free = run_backtest(s, c, fees=0.0)
    assert free.metrics["total_return"] == pytest.approx(0.10)
    f = 0.001
    paid = run_backtest(s, c, fees=f)
    # all-in buy: units = cash / (100 (1 + f)); sell: units * 110 (1 - f)
    assert paid.metrics["total_return"] == pytest.approx(1.1 * (1 - f) / (1 + f) - 1, rel=1e-12)
    units = 10_000 / (100 * (1 + f))
    assert paid.metrics["fees_paid"] == pytest.approx(units * 100 * f + units * 110 * f)
    t = paid.trades.iloc[0]
    assert t["status"] == "closed" and t["entry_price"] == 100.0 and t["exit_price"] == 110.0
    assert t["pnl"] == pytest.approx(paid.metrics["final_equity"] - 10_000)


def test_fill_at_close_vs_next_open(hand_candles, fixed_strategy):
    close = [100.0, 102.0, 104.0, 106.0, 108.0]
    opens = [100.0, 101.0, 103.0, 105.0, 107.0]
    c = hand_candles(close, opens)
    s = fixed_strategy([1, 0, 0, 0, 0], [0, 0, 1, 0, 0])
    at_close = run_backtest(s, c, fees=0.0).trades.iloc[0]
    assert at_close["entry_time"] == c.index[0] and at_close["entry_price"] == 100.0
    assert at_close["exit_time"] == c.index[2] and at_close["exit_price"] == 104.0
    nxt = run_backtest(s, c, fees=0.0, price="next_open").trades.iloc[0]
    assert nxt["entry_time"] == c.index[1] and nxt["entry_price"] == 101.0
    assert nxt["exit_time"] == c.index[3] and nxt["exit_price"] == 105.0
    # a signal on the last candle has no next open: nothing is filled
    last = run_backtest(fixed_strategy([0, 0, 0, 0, 1], [0] * 5), c, price="next_open")
    assert len(last.trades) == 0 and last.metrics["n_trades"] == 0


def test_slippage_moves_fills_against_us(hand_candles, fixed_strategy):
    c = hand_candles([100.0, 100.0, 110.0])
    t = run_backtest(fixed_strategy([1, 0, 0], [0, 0, 1]), c, fees=0.0, slippage=0.01).trades
    assert t["entry_price"].iat[0] == pytest.approx(101.0)
    assert t["exit_price"].iat[0] == pytest.approx(108.9)


def test_long_short_reversal(hand_candles, fixed_strategy):
    c = hand_candles([100.0, 110.0, 100.0, 90.0, 100.0])
    s = fixed_strategy([1, 0, 0, 1, 0], [0, 1, 0, 0, 0])
    long_only = run_backtest(s, c, fees=0.0)
    assert list(long_only.trades["direction"]) == ["long", "long"]
    both = run_backtest(s, c, fees=0.0, direction="longshort")
    t = both.trades
    assert list(t["direction"]) == ["long", "short", "long"]
    assert list(t["status"]) == ["closed", "closed", "open"]
    # short from 110 to 90 earns money
    assert t["pnl"].iat[1] > 0 and t["entry_price"].iat[1] == 110.0 and t["exit_price"].iat[1] == 90
    assert (both.position.to_numpy()[1:3] < 0).all()
    assert both.metrics["exposure"] == 1.0
    assert both.metrics["total_return"] == pytest.approx(1.1 * (1 + 20 / 110) * (100 / 90) - 1)


def test_explicit_short_signals(hand_candles, fixed_strategy):
    c = hand_candles([100.0, 110.0, 100.0, 90.0, 100.0])
    s = fixed_strategy([0] * 5, [0] * 5, short_entries=[0, 1, 0, 0, 0], short_exits=[0, 0, 0, 1, 0])
    r = run_backtest(s, c, fees=0.0, direction="longshort")
    assert list(r.trades["direction"]) == ["short"] and r.trades["pnl"].iat[0] > 0
    assert r.signals.loc[c.index[1], "action"] == "sell"
    assert r.signals.loc[c.index[3], "action"] == "buy"
    assert len(run_backtest(s, c, fees=0.0, direction="long").trades) == 0


def test_size_options(hand_candles, fixed_strategy):
    c = hand_candles([100.0, 100.0, 110.0])
    s = fixed_strategy([1, 0, 0], [0, 0, 1])
    half = run_backtest(s, c, fees=0.0, size=0.5)
    assert half.trades["size"].iat[0] == pytest.approx(50.0)
    assert half.metrics["total_return"] == pytest.approx(0.05)
    value = run_backtest(s, c, fees=0.0, size=2_000.0, size_type="value")
    assert value.trades["size"].iat[0] == pytest.approx(20.0)
    amount = run_backtest(s, c, fees=0.0, size=3.0, size_type="amount")
    assert amount.trades["size"].iat[0] == pytest.approx(3.0)
    assert amount.metrics["exposure"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"direction": "short"}, "direction='short'"),
        ({"price": "open"}, "price='open'"),
        ({"size_type": "shares"}, "size_type='shares'"),
        ({"fees": -0.1}, "fees=-0.1"),
        ({"init_cash": 0}, "init_cash=0"),
        ({"size": 1.5}, "size=1.5"),
        ({"size": 0.5, "direction": "longshort"}, "cannot reverse"),
    ],
)
def test_invalid_options(candles, kwargs, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        run_backtest("sma_cross", candles, **kwargs)


def test_strategy_and_candle_errors(candles):
    with pytest.raises(StrategyError, match="unknown strategy"):
        run_backtest("nope", candles)
    with pytest.raises(ConfigError, match="parameters= given with a strategy object"):
        run_backtest(get_strategy("sma_cross"), candles, parameters={"fast": 3})
    naive = candles.tz_localize(None)
    with pytest.raises(DataError, match="no time zone"):
        run_backtest("sma_cross", naive)
    with pytest.raises(DataError, match="not on the 5m close grid"):
        run_backtest("sma_cross", candles, timeframe="5m")
    with pytest.raises(DataError, match="at least 2"):
        run_backtest("sma_cross", candles.iloc[:1], timeframe="1m")


def test_name_and_parameters(candles):
    r = run_backtest("ema_cross", candles, parameters={"fast": 4, "slow": 9}, symbol="BTC/USDT",
                     exchange="binance")
    assert r.parameters == {"fast": 4, "slow": 9}
    assert r.label == "ema_cross(fast=4, slow=9) on binance BTC/USDT 1m"


def test_infer_timeframe():
    assert infer_timeframe(make_candles(10, "5m").index).name == "5m"
    assert infer_timeframe(make_candles(10, "1d").index).name == "1d"
    c = make_candles(10, "1h")
    gappy = c.drop(c.index[[3, 4]])
    assert infer_timeframe(gappy.index).name == "1h"
    r = run_backtest("sma_cross", make_candles(200, "1h"), parameters={"fast": 2, "slow": 5})
    assert r.timeframe.name == "1h"
    idx = pd.DatetimeIndex(["2024-01-01 00:00:30", "2024-01-01 00:01:00"], tz="UTC")
    with pytest.raises(DataError, match="not a whole number of minutes"):
        infer_timeframe(idx)
