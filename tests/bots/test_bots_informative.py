"""A bot whose strategy reads informative series gives the backtest's fills: its own hourly
candles from its window, ETH/USDT's from the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from bots_helpers import assert_same_fills, backtest_fills, make_config

from tcp_lab.backtest import run_backtest
from tcp_lab.bots import Bot
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_replayed_bot_equals_the_backtest_with_informative_series(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    btc = make_candles(1500, "5m", start="2024-01-01", seed=11)
    eth = make_candles(1500, "5m", start="2024-01-01", seed=12, start_price=2000.0)
    eth = eth.drop(eth.index[300:330])
    config = make_config(strategy="informative_strategies:HourTrend", parameters={},
                         timeframe="5m")
    with open_store(f"duckdb:///{tmp_path / 'lab.duckdb'}") as store:
        store.save_candles(btc, "binance", "BTC/USDT", "5m")
        store.save_candles(eth, "binance", "ETH/USDT", "5m")
        bot = Bot(config, store)
        assert len(bot.catch_up()) == len(btc)
        result = run_backtest(config.strategy, btc, informative={"ETH/USDT": eth},
                              symbol="BTC/USDT", **config.trading_options().to_dict())
        assert_same_fills(store.load_bot_trades(bot.id), backtest_fills(result))
        perf = store.load_performance(bot.id)
        assert perf["equity"].to_numpy() == pytest.approx(result.equity.to_numpy(), rel=1e-9)


def test_a_bot_without_the_other_symbol_says_what_to_collect(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    config = make_config(strategy="informative_strategies:HourTrend", parameters={},
                         timeframe="5m")
    with open_store(f"duckdb:///{tmp_path / 'lab.duckdb'}") as store:
        store.save_candles(make_candles(200, "5m", seed=1), "binance", "BTC/USDT", "5m")
        with pytest.raises(Exception, match=r"reads ETH/USDT 1h candles.*collect ETH/USDT"):
            Bot(config, store).catch_up()
