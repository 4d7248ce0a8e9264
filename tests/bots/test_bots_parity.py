"""Parity: a candle history replayed through a bot gives the backtest's fills exactly."""

from __future__ import annotations

import numpy as np
import pytest
from bots_helpers import (
    EXCHANGE,
    SYMBOL,
    TIMEFRAME,
    FakeStore,
    assert_same_fills,
    backtest_fills,
    engine_fills,
    make_config,
)

from tcp_lab.backtest import run_backtest
from tcp_lab.bots import Bot
from tcp_lab.bus import CandleMessage
from tcp_lab.store import open_store
from tcp_lab.strategies import list_strategies
from tcp_lab.testing import make_candles

BUILT_INS = ["bollinger_breakout", "ema_cross", "macd", "rsi_reversion", "sma_cross"]
# (fee, slippage, size, size_type, direction): the sizing modes of run_backtest.
ACCOUNTS = {
    "all-in long": (0.001, 0.0005, 1.0, "percent", "long"),
    "half long": (0.002, 0.0, 0.5, "percent", "long"),
    "reversing": (0.001, 0.0002, 1.0, "percent", "longshort"),
    "value": (0.0015, 0.0003, 4000.0, "value", "longshort"),
    "amount": (0.001, 0.0001, 0.2, "amount", "long"),
}


def test_every_built_in_is_covered():
    assert sorted(BUILT_INS) == list_strategies()


def _replay(config, candles, store=None) -> tuple[Bot, FakeStore]:
    store = store or FakeStore()
    store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(config, store)
    steps = bot.catch_up()
    assert len(steps) == len(candles)
    return bot, store


def _check(bot, store, config, candles) -> None:
    result = run_backtest(config.strategy, candles, parameters=config.parameters,
                          **config.trading_options().to_dict())
    if config.trading_options().has_levels:
        got = store.load_bot_trades(bot.id)
        want = engine_fills(result)
        assert list(got["reason"]) == list(want["reason"])
        assert_same_fills(got.assign(realized_pnl=np.nan), want.assign(realized_pnl=np.nan))
    else:
        assert_same_fills(store.load_bot_trades(bot.id), backtest_fills(result))
    perf = store.load_performance(bot.id)
    assert list(perf.index) == list(candles.index)
    np.testing.assert_allclose(perf["equity"].to_numpy(), result.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(perf["position"].to_numpy(), result.position.to_numpy(),
                               rtol=1e-9, atol=1e-12)
    final = bot.account.equity(float(candles["close"].iat[-1]))
    assert final == pytest.approx(result.metrics["final_equity"], rel=1e-9)


# Every strategy all in, and each other sizing mode with one of the strategies (rotating):
# all 25 pairs pass too, at 4x the run time.
CASES = [(s, "all-in long") for s in BUILT_INS] + [
    (s, a) for s, a in zip(BUILT_INS, [a for a in ACCOUNTS if a != "all-in long"] * 2,
                           strict=False)]


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "account"), CASES)
def test_replay_matches_backtest(strategy, account):
    fee, slippage, size, size_type, direction = ACCOUNTS[account]
    config = make_config(strategy=strategy, parameters={}, fees=fee, slippage=slippage,
                         size=size, size_type=size_type, direction=direction)
    candles = make_candles(3000, seed=11)
    bot, store = _replay(config, candles)
    _check(bot, store, config, candles)


@pytest.mark.parametrize("strategy", BUILT_INS)
def test_replay_matches_backtest_quick(strategy):
    config = make_config(strategy=strategy, parameters={}, window_margin=5)
    candles = make_candles(900, seed=5, volatility=1.5)
    bot, store = _replay(config, candles)
    _check(bot, store, config, candles)


def test_strategy_with_its_own_short_signals_matches_backtest():
    config = make_config(strategy="bot_strategies:ShortCross", parameters={}, direction="longshort")
    candles = make_candles(1500, seed=2)
    bot, store = _replay(config, candles)
    assert (store.load_bot_trades(bot.id)["realized_pnl"].notna()).any()
    _check(bot, store, config, candles)


def test_bus_candles_one_by_one_with_restarts_match_backtest():
    """Candles from the bus, a restart every 97 candles (a new Bot from the stored state)."""
    config = make_config(strategy="macd", parameters={}, direction="longshort")
    candles = make_candles(1200, seed=8)
    store = FakeStore()
    store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
    messages = CandleMessage.from_candles(candles, exchange=EXCHANGE, symbol=SYMBOL,
                                          timeframe=TIMEFRAME)
    bot = Bot(config, store)
    for i, msg in enumerate(messages):
        store.save_candles(candles.iloc[i:i + 1], EXCHANGE, SYMBOL, TIMEFRAME)
        if i % 97 == 96:
            bot = Bot(config, store)  # restart: state comes from the store
        bot.process_candle(msg)
    _check(bot, store, config, candles)


@pytest.mark.slow
def test_replay_through_a_real_store_with_restarts_matches_backtest(store_url):
    """Same through DuckDB / PostgreSQL: the state round-trips exactly through JSON."""
    config = make_config(strategy="sma_cross", parameters={"fast": 5, "slow": 20},
                         direction="longshort")
    candles = make_candles(400, seed=4, volatility=1.5)
    with open_store(store_url) as store:
        store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
        done = 0
        for cut in (150, 151, 300, 400):  # each chunk processed by a fresh bot
            bot = Bot(config, store)
            bot.load()
            frame = candles.iloc[:cut]
            store_latest = frame.index[-1]
            msgs = CandleMessage.from_candles(frame.iloc[done:], exchange=EXCHANGE,
                                              symbol=SYMBOL, timeframe=TIMEFRAME)
            for msg in msgs:
                if msg.ts <= store_latest:
                    bot.process_candle(msg)
            done = cut
        _check(bot, store, config, candles)


@pytest.mark.parametrize("levels", [
    {"stop_loss": 0.004, "take_profit": 0.006},
    {"trailing_stop": 0.003},
    {"stop_loss": 0.01, "trailing_stop": 0.004, "take_profit": 0.02},
])
@pytest.mark.parametrize("direction", ["long", "longshort"])
def test_replay_with_stops_matches_backtest(levels, direction):
    config = make_config(strategy="sma_cross", parameters={"fast": 5, "slow": 20},
                         direction=direction, **levels)
    candles = make_candles(2000, seed=5, volatility=2.0)
    bot, store = _replay(config, candles)
    reasons = set(store.load_bot_trades(bot.id)["reason"])
    assert reasons & {"stop_loss", "take_profit", "trailing_stop"}  # the levels did fire
    _check(bot, store, config, candles)


@pytest.mark.parametrize("levels", [
    {"stop_loss": 0.002, "take_profit": 0.003, "trailing_stop": 0.002},
    {"stop_loss": 0.002, "latency_ms": 1500.0, "max_volume_share": 0.5},
])
def test_replay_with_stored_trades_matches_the_trades_backtest(levels, tmp_path):
    from tcp_lab.data.aggregate import aggregate_trades
    from tcp_lab.testing import make_trades

    trades = make_trades(60_000, seed=7, rate=1.0, volatility=1.5)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(strategy="sma_cross", parameters={"fast": 5, "slow": 20}, **levels)
    with open_store(f"duckdb:///{tmp_path / 'bots.duckdb'}") as store:
        store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
        store.save_raw_trades(trades, EXCHANGE, SYMBOL)
        bot = Bot(config, store)
        assert len(bot.catch_up()) == len(candles)
        assert bot.intrabar == "trades"
        got = store.load_bot_trades(bot.id)
        perf = store.load_performance(bot.id)
    result = run_backtest(config.strategy, candles, parameters=config.parameters,
                          trades=trades, **config.trading_options().to_dict())
    want = engine_fills(result)
    assert {"stop_loss", "trailing_stop", "take_profit"} & set(want["reason"])
    assert list(got["reason"]) == list(want["reason"])
    assert_same_fills(got.drop(columns=["seq", "reason"]).assign(realized_pnl=np.nan),
                      want.drop(columns=["reason"]))
    np.testing.assert_allclose(perf["equity"].to_numpy(), result.equity.to_numpy(), rtol=1e-9)
