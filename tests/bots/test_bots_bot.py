"""The bot: one candle at a time, exactly once, recorded in order, published on the bus."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from bots_helpers import EXCHANGE, SYMBOL, TIMEFRAME, FakeStore, make_config

from tcp_lab.bots import Bot, CandleError
from tcp_lab.bus import CandleMessage, market_channel, open_bus, signals_channel
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles


def messages(candles):
    return CandleMessage.from_candles(candles, exchange=EXCHANGE, symbol=SYMBOL,
                                      timeframe=TIMEFRAME)


@pytest.fixture
def candles():
    return make_candles(200, seed=3, volatility=2.0)


def test_each_candle_is_processed_exactly_once(fake_store, candles):
    fake_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(), fake_store)
    assert len(bot.catch_up()) == 200
    writes = fake_store.writes
    msgs = messages(candles)
    assert bot.process_candle(msgs[-1]) == []          # redelivery of the last one
    assert bot.process_candle(msgs[50]) == []          # an old one
    assert bot.catch_up() == []                        # nothing new in the store
    restarted = Bot(make_config(), fake_store)         # a restart reads the stored state
    assert restarted.catch_up() == [] and restarted.process_candle(msgs[-1]) == []
    assert fake_store.writes == writes
    assert restarted.account == bot.account
    assert len(fake_store.load_signals(bot.id)) == 200


def test_records_signal_fill_performance_then_state(fake_store, candles):
    fake_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(), fake_store)
    steps = bot.catch_up()
    fills = [s for s in steps if s.fill is not None]
    assert fills, "no trades: the test would prove nothing"
    trades = fake_store.load_bot_trades(bot.id)
    assert list(trades.index) == [s.ts for s in fills]
    sig = fake_store.load_signals(bot.id)
    assert set(sig["action"]) <= {"buy", "sell", "hold"}
    assert sig["indicators"].iloc[0]["sma_slow"] is None  # NaN during warm-up stored as null
    perf = fake_store.load_performance(bot.id)
    last = steps[-1]
    assert perf["equity"].iat[-1] == last.equity == pytest.approx(
        last.account.cash + last.account.position * candles["close"].iat[-1])
    row = fake_store.get_bot(bot.id)
    assert row["last_candle_ts"] == candles.index[-1]
    assert row["state"]["account"] == bot.account.to_dict()
    assert row["state"]["config"]["strategy"] == "sma_cross"


def test_signal_equals_the_strategys_own_process_data(fake_store, candles):
    fake_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    config = make_config(strategy="rsi_reversion", parameters={"period": 5})
    bot = Bot(config, fake_store)
    for step in bot.catch_up()[-40:]:
        window = candles.loc[:step.ts].iloc[-bot.window:]
        assert step.signal == config.build_strategy().process_data(window)


def test_candles_missed_while_down_are_processed_in_order(fake_store, candles):
    fake_store.save_candles(candles.iloc[:100], EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(), fake_store)
    bot.catch_up()
    fake_store.save_candles(candles.iloc[100:150], EXCHANGE, SYMBOL, TIMEFRAME)
    # the bus delivers candle 150 only: the 50 before it come from the store, in order
    steps = bot.process_candle(messages(candles.iloc[150:151])[0])
    assert [s.ts for s in steps] == list(candles.index[100:151])
    assert bot.last_candle_ts == candles.index[150]
    # next one is contiguous: no store reload needed
    steps = bot.process_candle(messages(candles.iloc[151:152])[0])
    assert [s.ts for s in steps] == [candles.index[151]]


def test_start_latest_trades_only_new_candles(fake_store, candles):
    fake_store.save_candles(candles.iloc[:120], EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(start="latest"), fake_store)
    assert bot.catch_up() == [] and bot.last_candle_ts == candles.index[119]
    steps = bot.process_candle(messages(candles.iloc[120:121])[0])
    assert len(steps) == 1
    # its window still reaches back into the stored history
    assert steps[0].signal.indicators["sma_slow"] == pytest.approx(
        candles["close"].iloc[101:121].mean())


def test_start_at_a_time(fake_store, candles):
    fake_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    start = candles.index[149]
    bot = Bot(make_config(start=start.isoformat()), fake_store)
    assert [s.ts for s in bot.catch_up()] == list(candles.index[150:])


def test_other_series_on_the_same_channel_are_ignored(fake_store, candles):
    fake_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(make_config(), fake_store)
    bot.catch_up()
    other = CandleMessage.from_candles(make_candles(1, "5m", start=candles.index[-1]),
                                       exchange=EXCHANGE, symbol=SYMBOL, timeframe="5m")[0]
    assert bot.process_candle(other) == []


def test_a_failing_strategy_names_the_candle_and_keeps_the_state(fake_store, candles):
    fake_store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    bad = candles.index[120]
    config = make_config(strategy="bot_strategies:FailOnCandle",
                         parameters={"fail_at": bad.isoformat()})
    bot = Bot(config, fake_store)
    with pytest.raises(CandleError, match="deliberate failure") as info:
        bot.catch_up()
    assert info.value.ts == bad and bad.isoformat() in str(info.value)
    assert bot.last_candle_ts == candles.index[119]
    assert fake_store.get_bot(bot.id)["last_candle_ts"] == candles.index[119]
    assert (bot.id, bad) not in fake_store.signals


def test_signals_are_published_after_being_recorded(memory_bus_url, candles):
    store = FakeStore()
    store.save_candles(candles.iloc[:60], EXCHANGE, SYMBOL, TIMEFRAME)
    with open_bus(memory_bus_url) as bus, bus.subscribe(signals_channel("bot1")) as sub:
        bot = Bot(make_config(), store, bus)
        bot.catch_up()
        got = [sub.get(timeout=2.0) for _ in range(60)]
    assert [m.ts for m in got] == list(candles.index[:60])
    assert all((("bot1", m.ts) in store.signals) for m in got)
    assert got[-1].price == candles["close"].iat[59]


def test_run_follows_the_bus_and_heartbeats(memory_bus_url, duckdb_url, candles):
    with open_store(duckdb_url) as store, open_bus(memory_bus_url) as bus:
        store.save_candles(candles.iloc[:100], EXCHANGE, SYMBOL, TIMEFRAME)
        bot = Bot(make_config(), store, bus)
        thread = threading.Thread(target=bot.run, kwargs={"heartbeat_interval": 0.2})
        with bus.subscribe(signals_channel("bot1")) as sub:
            thread.start()
            for _ in range(100):
                assert sub.get(timeout=10.0) is not None
            for msg in messages(candles.iloc[100:110]):
                store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
                bus.publish(market_channel(SYMBOL), msg)
            for _ in range(10):
                assert sub.get(timeout=10.0) is not None
        first = store.get_bot("bot1")["heartbeat"]
        deadline = pd.Timestamp.now("UTC") + pd.Timedelta(seconds=10)
        while store.get_bot("bot1")["heartbeat"] == first and pd.Timestamp.now("UTC") < deadline:
            threading.Event().wait(0.05)
        bot.stop()
        thread.join(10)
        assert not thread.is_alive()
        row = store.get_bot("bot1")
        assert row["heartbeat"] != first and row["status"] == "running"
        assert row["last_candle_ts"] == candles.index[109]
        assert len(store.load_signals("bot1")) == 110
