"""Bots on the live trade stream: replayed trade batches and candles give exactly the
trades-resolved backtest; a gap in the stream falls back to stored trades, else the OHLC
rule, and the status says which."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pandas as pd
import pytest
from bots_helpers import (
    EXCHANGE,
    SYMBOL,
    TIMEFRAME,
    FakeStore,
    assert_same_fills,
    engine_fills,
    make_config,
)

from tcp_lab.backtest import run_backtest
from tcp_lab.bots import Bot
from tcp_lab.bots.broker import Account, Flags, PaperBroker
from tcp_lab.bots.trade_stream import TradeStream
from tcp_lab.bus import (
    CandleMessage,
    TradesMessage,
    market_channel,
    open_bus,
    status_channel,
    trades_channel,
)
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.data.emulator import MarketModel
from tcp_lab.execution import TradingOptions
from tcp_lab.store import open_store
from tcp_lab.testing import make_trades

ALL_LEVELS = {"stop_loss": 0.002, "take_profit": 0.003, "trailing_stop": 0.002}
SLOW_EXITS = {"stop_loss": 0.002, "latency_ms": 1500.0, "max_volume_share": 0.5}
STREAM = "collector:binance/test/1"


def us(trades: pd.DataFrame) -> np.ndarray:
    return pd.DatetimeIndex(trades["ts"]).as_unit("us").asi8


def collector_messages(trades: pd.DataFrame, candles: pd.DataFrame, *, seed: int,
                       max_batch: int = 60) -> list[TradesMessage | CandleMessage]:
    """What the collector publishes: batches of 1..``max_batch`` trades in arrival order, and
    each candle right after the first batch that holds a later trade (its trades first),
    that batch marked ``until`` the candle's close; the candles after the last trade close
    by the clock, after a batch without trades."""
    rng = np.random.default_rng(seed)
    ts, price, amount = us(trades), trades["price"].to_numpy(), trades["amount"].to_numpy()
    closes = candles.index.as_unit("us").asi8
    candle_messages = CandleMessage.from_candles(candles, exchange=EXCHANGE, symbol=SYMBOL,
                                                 timeframe=TIMEFRAME)
    out: list[TradesMessage | CandleMessage] = []
    cuts = np.cumsum(rng.integers(1, max_batch + 1, len(ts)))
    cuts = np.r_[0, cuts[cuts < len(ts)], len(ts), len(ts)]  # the last: the clock
    k = 0
    for seq, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        closed = len(closes) if a == b else int(np.searchsorted(closes, ts[b - 1], "left"))
        if a == b and closed <= k:
            break
        until = pd.Timestamp(closes[closed - 1], unit="us", tz="UTC") if closed > k else None
        out.append(TradesMessage.from_arrays(
            exchange=EXCHANGE, symbol=SYMBOL, stream=STREAM, seq=seq, times=ts[a:b],
            prices=price[a:b], amounts=amount[a:b], until=until))
        out += candle_messages[k:closed]
        k = max(k, closed)
    return out


def replay(bot: Bot, store, candles: pd.DataFrame, messages) -> None:
    """Feed the messages as the bus would; store each candle before it is published."""
    for m in messages:
        if isinstance(m, CandleMessage):
            store.save_candles(candles.loc[[m.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            bot.process_candle(m)
        else:
            bot.process_trades(m)


def statuses(bot: Bot) -> list[str]:
    """Record the details of every status the bot publishes."""
    details: list[str] = []
    bot.publish_status = lambda status, detail="", heartbeat=None: details.append(detail)
    return details


def trades_backtest(config, candles, trades):
    return run_backtest(config.strategy, candles, parameters=config.parameters, trades=trades,
                        **config.trading_options().to_dict())


def assert_like_backtest(store, bot: Bot, result) -> None:
    got, want = store.load_bot_trades(bot.id), engine_fills(result)
    assert {"stop_loss", "trailing_stop", "take_profit"} & set(want["reason"])
    assert list(got["reason"]) == list(want["reason"])
    assert_same_fills(got.drop(columns=[c for c in ("seq", "reason") if c in got])
                      .assign(realized_pnl=np.nan), want.drop(columns=["reason"]), rtol=0)
    perf = store.load_performance(bot.id)
    np.testing.assert_allclose(perf["equity"].to_numpy(), result.equity.to_numpy(), rtol=1e-12)


def compiled(config) -> None:
    """Compile the engine's kernels for the bot before a timed wait (a cold numba cache takes
    longer than the waits allow)."""
    broker = PaperBroker(config.trading_options())
    account, _ = broker.on_candle(Account.opening(1000.0), Flags(long_entry=True), (1.0,) * 4)
    one = (np.array([1]), np.array([1.0]), np.array([1.0]))
    broker.on_trades_candle(broker.scan_trades(account, one), Flags(long_exit=True), one, 1.0)


def emulated_trades(hours: float = 10, trade_rate: float = 1.0) -> pd.DataFrame:
    """The emulator's BTC/USDT trades: bursts and quiet stretches (at a low ``trade_rate``,
    minutes without a trade: candles missing)."""
    market = MarketModel([SYMBOL], seed=2, trade_rate=trade_rate)
    start = market.genesis_ms + 8 * 3_600_000  # the busy hours of its day
    return market.trades(SYMBOL, start, start + int(hours * 3_600_000)).to_frame()


# -- the stream alone gives the trades backtest --------------------------------------------

@pytest.mark.parametrize("levels", [ALL_LEVELS, SLOW_EXITS], ids=["levels", "latency+share"])
@pytest.mark.parametrize("direction", ["long", "longshort"])
def test_replayed_stream_gives_exactly_the_trades_backtest(levels, direction):
    trades = make_trades(60_000, seed=7, rate=1.0, volatility=1.5)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(direction=direction, **levels)
    store = FakeStore()  # holds no market trades: the stream, or the OHLC rule
    store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(config, store)
    details = statuses(bot)
    bot.catch_up()
    replay(bot, store, candles, collector_messages(trades, candles, seed=3))
    assert bot.last_candle_ts == candles.index[-1]
    assert bot.intrabar == "trades" and bot.trade_source == "stream"
    assert [d for d in details if "resolved" in d] == [
        "stops and targets resolved on market trades from the live stream (trades:BTC/USDT)"]
    assert_like_backtest(store, bot, trades_backtest(config, candles, trades))
    # exits seen on the stream before their candle closed, booked at that close (or later)
    early = [re.match(r"(\w+) hit on the live stream .* candle of (.+)$", d) for d in details
             if "hit on the live stream" in d]
    assert len(early) > 5
    fills = store.load_bot_trades(bot.id)
    for m in early:
        after = fills.loc[fills.index >= pd.Timestamp(m.group(2))]
        assert after["reason"].iloc[0] == m.group(1)


def test_emulated_market_with_quiet_minutes_gives_exactly_the_trades_backtest():
    trades = emulated_trades(hours=24, trade_rate=0.1)
    candles = aggregate_trades(trades, TIMEFRAME)
    assert (np.diff(candles.index.as_unit("us").asi8) > 60 * 10**6).sum() > 20  # no candle
    config = make_config(direction="longshort", stop_loss=0.0015, take_profit=0.002,
                         trailing_stop=0.001)
    store = FakeStore()
    store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(config, store)
    details = statuses(bot)
    bot.catch_up()
    replay(bot, store, candles, collector_messages(trades, candles, seed=5, max_batch=200))
    assert bot.trade_source == "stream" and not [d for d in details if "OHLC" in d]
    assert_like_backtest(store, bot, trades_backtest(config, candles, trades))


def test_bot_on_the_bus_gives_exactly_the_trades_backtest(bus_url):
    """Trade batches and candles published on the bus (fakeredis, then Redis), a running bot."""
    trades = make_trades(25_000, seed=7, rate=1.0, volatility=2.0)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(direction="longshort", **ALL_LEVELS)
    result = trades_backtest(config, candles, trades)  # compiles the strategy's kernels too
    compiled(config)
    store = FakeStore()
    store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
    messages = collector_messages(trades, candles, seed=4)
    with open_bus(bus_url) as bus, bus.subscribe(status_channel(config.name)) as status:
        bot = Bot(config, store, bus)
        thread = threading.Thread(target=bot.run, kwargs={"heartbeat_interval": 0.5})
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while bus.subscribers(trades_channel(SYMBOL)) == 0:
                assert time.monotonic() < deadline, "the bot did not subscribe to trades"
                time.sleep(0.02)
            for m in messages:
                if isinstance(m, CandleMessage):  # the collector stores, then publishes
                    store.save_candles(candles.loc[[m.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
                    bus.publish(market_channel(SYMBOL), m)
                else:
                    bus.publish(trades_channel(SYMBOL), m)
            deadline = time.monotonic() + 60
            while bot.last_candle_ts != candles.index[-1]:
                assert time.monotonic() < deadline and thread.is_alive(), bot.last_candle_ts
                time.sleep(0.05)
        finally:
            bot.stop()
            thread.join(10)
        details = [m.detail for m in iter(lambda: status.get(timeout=0.5), None)]
    assert not thread.is_alive()
    assert bot.trade_source == "stream" and not [d for d in details if "OHLC" in d]
    assert any("hit on the live stream" in d for d in details)
    assert_like_backtest(store, bot, result)


# -- gaps ----------------------------------------------------------------------------------

def held_candles(result, after: int) -> np.ndarray:
    """Indices of the candles from ``after`` on entered with a position (levels live)."""
    return after + np.flatnonzero(result.position.to_numpy()[after - 1:-1] != 0)


def held_candle(result, after: int) -> int:
    return int(held_candles(result, after)[0])


def drop_a_batch(messages, result, candles: pd.DataFrame, after: int = 100,
                 ) -> tuple[list, pd.Timestamp, int]:
    """The messages without a trade batch that lies inside a candle entered with a position
    (from ``after`` on): the messages, that candle, the lost batch's ``seq``."""
    for k in held_candles(result, after):
        close = candles.index[k]
        lo, hi = (close - pd.Timedelta(TIMEFRAME)).value // 1000, close.value // 1000
        for i, m in enumerate(messages):
            if isinstance(m, TradesMessage) and m.times and lo < m.times[0] \
                    and m.times[-1] <= hi:
                return messages[:i] + messages[i + 1:], close, m.seq
    raise AssertionError("no batch lies inside a candle with a position")


def test_a_missed_batch_is_resolved_from_stored_trades(tmp_path):
    trades = make_trades(15_000, seed=7, rate=1.0, volatility=1.5)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(**ALL_LEVELS)
    result = trades_backtest(config, candles, trades)
    messages, gap, lost = drop_a_batch(collector_messages(trades, candles, seed=6), result,
                                       candles)
    with open_store(f"duckdb:///{tmp_path / 'bots.duckdb'}") as store:
        store.save_raw_trades(trades, EXCHANGE, SYMBOL)  # collect --store-raw
        store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
        bot = Bot(config, store)
        details = statuses(bot)
        bot.catch_up()
        replay(bot, store, candles, messages)
        assert_like_backtest(store, bot, result)  # the same trades, from the store
    resolved = [d for d in details if "resolved" in d]
    assert resolved == [
        "stops and targets resolved on market trades from the live stream (trades:BTC/USDT)",
        f"stops and targets resolved on market trades from the store from the candle of {gap} "
        f"on: the live stream has a gap (batch {lost + 1} of stream '{STREAM}' followed batch "
        f"{lost - 1} of '{STREAM}')",
        "stops and targets resolved on market trades from the live stream (trades:BTC/USDT)",
    ]
    assert bot.trade_source == "stream"


def test_a_gap_without_stored_trades_falls_back_to_the_ohlc_rule():
    trades = make_trades(15_000, seed=7, rate=1.0, volatility=1.5)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(**ALL_LEVELS)
    messages, gap, _ = drop_a_batch(collector_messages(trades, candles, seed=6),
                                    trades_backtest(config, candles, trades), candles)
    store = FakeStore()
    store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
    bot = Bot(config, store)
    details = statuses(bot)
    bot.catch_up()
    rules = {}
    for m in messages:
        if isinstance(m, CandleMessage):
            store.save_candles(candles.loc[[m.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            if bot.process_candle(m):
                rules[m.ts] = (bot.intrabar, bot.trade_source)
        else:
            bot.process_trades(m)
    assert rules[gap] == ("ohlc", None)
    ohlc = [d for d in details if "OHLC" in d]
    assert len(ohlc) == 1
    assert ohlc[0].startswith(f"stops and targets resolved on candles (OHLC rule) from the "
                              f"candle of {gap} on: the live stream has a gap (batch ")
    assert ohlc[0].endswith(", and the store has no trades for it; collect with --store-raw")
    back = [i for i, d in enumerate(details) if "from the live stream" in d]
    assert back[0] < details.index(ohlc[0]) < back[-1]  # and then on the stream again


class StoreWithTrades(FakeStore):
    """The fake store with the market trades ``collect --store-raw`` would have stored."""

    def __init__(self, trades: pd.DataFrame) -> None:
        super().__init__()
        self.market = (us(trades), trades["price"].to_numpy(), trades["amount"].to_numpy())

    def load_trade_prices(self, exchange, symbol, start=None, end=None):
        ts, price, amount = self.market
        lo, hi = (int(np.searchsorted(ts, t.value // 1000, "right")) for t in (start, end))
        return ts[lo:hi], price[lo:hi], amount[lo:hi]


def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_bus_reconnect_resolves_the_candles_it_hid_from_the_store(own_redis):
    """Redis restarts while a position is open: what was published meanwhile is lost; the
    bot catches up from the store, on stored trades, then goes back to the stream."""
    trades = make_trades(10_000, seed=7, rate=1.0, volatility=2.0)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(**ALL_LEVELS)
    result = trades_backtest(config, candles, trades)
    compiled(config)
    k = held_candle(result, after=60)
    messages = collector_messages(trades, candles, seed=3)
    first, last = (next(i for i, m in enumerate(messages)  # lost: after candle k-1 up to k
                        if isinstance(m, CandleMessage) and m.ts == candles.index[j])
                   for j in (k - 1, k))
    first += 1
    store = StoreWithTrades(trades)
    store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
    channel = trades_channel(SYMBOL)

    def publish(part):
        for m in part:
            if isinstance(m, CandleMessage):
                store.save_candles(candles.loc[[m.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
                bus.publish(market_channel(SYMBOL), m)
            else:
                bus.publish(channel, m)

    with open_bus(own_redis.url) as bus:
        bot = Bot(config, store, bus)
        details = statuses(bot)
        thread = threading.Thread(target=bot.run, kwargs={"heartbeat_interval": 60.0})
        thread.start()
        try:
            wait_until(lambda: bus.subscribers(channel) == 1, "the bot to subscribe")
            publish(messages[:first])
            wait_until(lambda: bot.last_candle_ts == candles.index[k - 1], "the live candles")
            own_redis.stop()
            for m in messages[first:last + 1]:  # the collector stores; the bus is down
                if isinstance(m, CandleMessage):
                    store.save_candles(candles.loc[[m.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            own_redis.start()
            wait_until(lambda: bus.subscribers(channel) == 1, "the bot to resubscribe")
            publish(messages[last + 1:])
            wait_until(lambda: bot.last_candle_ts == candles.index[-1], "the last candle")
        finally:
            bot.stop()
            thread.join(10)
    assert not thread.is_alive()
    assert [d for d in details if "resolved" in d] == [
        "stops and targets resolved on market trades from the live stream (trades:BTC/USDT)",
        f"stops and targets resolved on market trades from the store from the candle of "
        f"{candles.index[k]} on: the live stream has a gap (the bus connection was lost and "
        f"restored)",
        "stops and targets resolved on market trades from the live stream (trades:BTC/USDT)",
    ]
    assert_like_backtest(store, bot, result)


def test_missing_trades_with_an_unbroken_sequence_are_taken_from_the_store(tmp_path):
    """A candle none of whose trades came (seq intact) is no proof of a quiet minute."""
    trades = make_trades(15_000, seed=9, rate=1.0, volatility=1.5)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(**ALL_LEVELS)
    result = trades_backtest(config, candles, trades)
    quiet = candles.index[held_candle(result, after=100)]
    t = us(trades)
    inside = (t > (quiet - pd.Timedelta(TIMEFRAME)).value // 1000) & (t <= quiet.value // 1000)
    messages = collector_messages(trades.loc[~inside], candles, seed=2)
    with open_store(f"duckdb:///{tmp_path / 'bots.duckdb'}") as store:
        store.save_raw_trades(trades, EXCHANGE, SYMBOL)
        store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
        bot = Bot(config, store)
        details = statuses(bot)
        bot.catch_up()
        replay(bot, store, candles, messages)
        assert_like_backtest(store, bot, result)
    assert (f"stops and targets resolved on market trades from the store from the candle of "
            f"{quiet} on: none of its trades came on the live stream") in details


def test_a_candle_read_before_its_trades_arrived_is_taken_from_the_store(tmp_path):
    """A heartbeat's catch-up may read a stored candle before the batch that completes its
    trades has arrived: the stream is not trusted for it, the store is."""
    trades = make_trades(15_000, seed=9, rate=1.0, volatility=1.5)
    candles = aggregate_trades(trades, TIMEFRAME)
    config = make_config(**ALL_LEVELS)
    result = trades_backtest(config, candles, trades)
    early = candles.index[held_candle(result, after=100)]
    messages = collector_messages(trades, candles, seed=8)
    closing = next(i for i, m in enumerate(messages)  # the batch that completes its trades
                   if isinstance(m, TradesMessage) and m.until is not None and m.until >= early)
    with open_store(f"duckdb:///{tmp_path / 'bots.duckdb'}") as store:
        store.save_raw_trades(trades, EXCHANGE, SYMBOL)
        store.save_candles(candles.iloc[:1], EXCHANGE, SYMBOL, TIMEFRAME)
        bot = Bot(config, store)
        details = statuses(bot)
        bot.catch_up()
        replay(bot, store, candles, messages[:closing])
        store.save_candles(candles.loc[[early]], EXCHANGE, SYMBOL, TIMEFRAME)
        assert [s.ts for s in bot.catch_up()] == [early]  # before its trades are all in
        replay(bot, store, candles, messages[closing:])
        assert_like_backtest(store, bot, result)
    assert (f"stops and targets resolved on market trades from the store from the candle of "
            f"{early} on: its trades were not all on the live stream yet") in details
    assert bot.trade_source == "stream"


# -- the pieces ----------------------------------------------------------------------------

def test_trade_stream_keeps_trades_until_their_candle_and_marks_gaps():
    def batch(seq, times, until=None, stream="s1"):
        return TradesMessage.from_arrays(
            exchange=EXCHANGE, symbol=SYMBOL, stream=stream, seq=seq, times=times,
            prices=[1.0] * len(times), amounts=[1.0] * len(times),
            until=None if until is None else pd.Timestamp(until, unit="us", tz="UTC"))

    s = TradeStream()
    s.add(batch(0, [5, 12], until=10))
    assert s.candle(0, 10) is None and "no trade batch" in s.gap  # started mid-candle
    s.add(batch(1, [15, 20]))
    assert s.candle(10, 20) is None  # the batch saying "all trades up to 20" is not in
    s.add(batch(2, [20, 25, 31], until=20))  # 20 belongs to the candle processed
    s.add(batch(3, [], until=30))
    assert s.candle(20, 30)[0].tolist() == [25]  # ts <= close: this candle; 31 the next
    s.add(batch(5, [35, 38], until=40))  # batch 4 is lost
    assert s.candle(30, 40) is None and "batch 5 of stream 's1' followed batch 3" in s.gap
    s.add(batch(6, [45], until=50))
    assert s.candle(40, 50)[0].tolist() == [45]  # after the gap's end: whole again
    s.add(batch(0, [52], stream="s2"))  # the collector restarted
    s.add(batch(1, [61, 70], until=70, stream="s2"))
    assert s.candle(50, 60) is None and "new trade stream 's2'" in s.gap
    assert s.candle(60, 70)[0].tolist() == [61, 70]
    s.interrupt("reconnected")
    s.add(batch(2, [75], until=80, stream="s2"))
    assert s.candle(70, 80) is None and s.gap == "reconnected"
    s.add(batch(3, [85, 90], until=90, stream="s2"))
    assert s.candle(80, 90)[0].tolist() == [85, 90]


@pytest.mark.parametrize("seed", range(5))
def test_scanning_in_batches_then_closing_equals_the_candle_at_once(seed):
    """The early scan (batch by batch) ends where the close's scan does (all at once)."""
    rng = np.random.default_rng(seed)
    trades = emulated_trades(hours=1)
    ts, price, amount = us(trades), trades["price"].to_numpy(), trades["amount"].to_numpy()
    for opts in (TradingOptions(stop_loss=0.001, take_profit=0.001, trailing_stop=0.0005),
                 TradingOptions(stop_loss=0.0005, latency_ms=800.0, max_volume_share=0.2)):
        broker = PaperBroker(opts)
        start, _ = broker.on_candle(Account.opening(1000.0), Flags(long_entry=True),
                                    (price[0],) * 4)
        whole = broker.scan_trades(start, (ts, price, amount))
        assert not np.isnan(whole.exit_ready)  # an exit did trigger
        acct, cuts = start, np.sort(rng.choice(np.arange(1, len(ts)), 30, replace=False))
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ts)], strict=True):
            acct = broker.scan_trades(acct, (ts[lo:hi], price[lo:hi], amount[lo:hi]))
        assert acct == whole
        closed = broker.on_trades_candle(start, Flags(), (ts, price, amount), price[-1])
        assert closed == broker.on_trades_candle(acct, Flags(), ((), (), ()), price[-1])
