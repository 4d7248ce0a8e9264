"""Backtests resolved on market trades: from a frame or streamed from the store, and the
intrabar report that compares them with the candle (OHLC) rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.backtest import run_backtest, trade_source
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.store import open_store
from tcp_lab.testing import make_trades

LEVELS = dict(parameters={"fast": 5, "slow": 20}, stop_loss=0.001, take_profit=0.002,
              trailing_stop=0.001, fees=0.001, slippage=0.0002)


@pytest.fixture(scope="module")
def market():
    trades = make_trades(100_000, seed=3, rate=2.0, volatility=1.5)
    return trades, aggregate_trades(trades, "1m")


def test_store_trades_stream_in_chunks_with_the_frames_result(market, monkeypatch):
    trades, candles = market
    with open_store() as store:
        store.save_raw_trades(trades, "binance", "BTC/USDT")
    ref = run_backtest("sma_cross", candles, trades=trades, **LEVELS)
    assert ref.options["intrabar"] == "trades" and ref.metrics["n_trades"] > 20
    monkeypatch.setattr(trade_source, "CHUNK_TRADES", 997)  # ~60 chunks of candles
    chunks = trade_source.TradeChunks("store", candles, exchange="binance", symbol="BTC/USDT")
    assert len(chunks._bounds()) > 40
    got = run_backtest("sma_cross", candles, trades="store", exchange="binance",
                       symbol="BTC/USDT", **LEVELS)
    pd.testing.assert_frame_equal(got.trades, ref.trades)
    np.testing.assert_array_equal(got.equity.to_numpy(), ref.equity.to_numpy())
    np.testing.assert_array_equal(got.orders, ref.orders)


def test_intrabar_report_compares_candles_with_trades(market, tmp_path):
    trades, candles = market
    on_trades = run_backtest("sma_cross", candles, trades=trades, **LEVELS)
    report = on_trades.intrabar_report()
    on_candles = run_backtest("sma_cross", candles, **LEVELS)
    assert report.ohlc.metrics == on_candles.metrics
    assert report.trades.metrics == on_trades.metrics
    assert report.ambiguous_bars == on_candles.metrics["ambiguous_bars"]
    assert report.return_difference == pytest.approx(
        on_trades.metrics["total_return"] - on_candles.metrics["total_return"])
    # every changed round trip really differs, every other one is the same
    assert len(report.changed) > 0 and len(report.disagreements) > 0
    same = on_candles.trades.set_index("entry_time").drop(report.changed.index, errors="ignore")
    other = on_trades.trades.set_index("entry_time").loc[same.index]
    pd.testing.assert_series_equal(same["exit_time"], other["exit_time"])
    # from a candle run, given the trades: the same report
    again = on_candles.intrabar_report(trades)
    pd.testing.assert_frame_equal(again.changed, report.changed)
    html = on_trades.to_html(tmp_path / "r.html").read_text()
    assert "Stops and targets: candles vs trades" in html and "ambiguous_bars (ohlc)" in html


def test_trade_backtest_errors_say_what_to_do(market):
    trades, candles = market
    with pytest.raises(ConfigError, match="needs exchange= and symbol="):
        run_backtest("sma_cross", candles, trades="store")
    with pytest.raises(ConfigError, match="price='next_open' is not supported with trades"):
        run_backtest("sma_cross", candles, trades=trades, price="next_open")
    with pytest.raises(ConfigError, match="intrabar='trades' needs trades="):
        run_backtest("sma_cross", candles, intrabar="trades")
    with pytest.raises(ConfigError, match="resolved on candles only"):
        run_backtest("sma_cross", candles, stop_loss=0.01).intrabar_report()
    with pytest.raises(DataError, match="no stored trades for binance ETH/USDT"):
        run_backtest("sma_cross", candles, trades="store", exchange="binance",
                     symbol="ETH/USDT", stop_loss=0.01)
    bad = trades.assign(price=trades["price"].where(trades.index != 7, -1.0))
    with pytest.raises(DataError, match=r"negative price in 1 row\(s\): row 7 .*price=-1.0"):
        run_backtest("sma_cross", candles, trades=bad, stop_loss=0.01)


@pytest.mark.parametrize("strategy", ["sma_cross", "rsi_reversion"])  # fused and generic
def test_sweep_on_trades_equals_run_backtest_for_every_combination(market, strategy):
    from tcp_lab import sweep

    trades, candles = market
    grid = ({"fast": [3, 5], "slow": [12, 20]} if strategy == "sma_cross" else
            {"period": [7, 14]})
    grid |= {"stop_loss": [0.001, 0.003], "take_profit": [0.002], "trailing_stop": [0.001]}
    df = sweep(strategy, candles, grid, trades=trades, progress=False, fees=0.001)
    assert len(df) == (8 if strategy == "sma_cross" else 4)
    for _, row in df.iterrows():
        params = {k: row[k] for k in grid if k not in ("stop_loss", "take_profit",
                                                       "trailing_stop")}
        r = run_backtest(strategy, candles, parameters={k: int(v) for k, v in params.items()},
                         stop_loss=row["stop_loss"], take_profit=row["take_profit"],
                         trailing_stop=row["trailing_stop"], trades=trades, fees=0.001)
        for m in ("total_return", "max_drawdown", "n_trades", "exposure"):
            assert row[m] == pytest.approx(r.metrics[m], rel=1e-9, abs=1e-12), m
