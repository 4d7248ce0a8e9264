"""Bot hosts: many bots per loop, one subscription per symbol, one transaction per candle,
fencing tokens, failures and hangs that stay with their bot, late-trade corrections."""

from __future__ import annotations

import threading

import pytest
from bots_helpers import (
    EXCHANGE,
    SYMBOL,
    TIMEFRAME,
    FakeStore,
    assert_same_fills,
    caught_up,
    make_config,
    wait_until,
)

from tcp_lab.bots import Bot, BotManager, RestartPolicy
from tcp_lab.bots.host import BotHost
from tcp_lab.bus import CandleMessage, market_channel, open_bus, signals_pattern
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

CROSS = {"strategy": "sma_cross", "parameters": {"fast": 3, "slow": 8}, "window_margin": 2}
FAST = RestartPolicy(backoff=0.05, backoff_max=0.2, heartbeat_interval=0.2, hang_timeout=1.5,
                     max_lag=3, stuck_timeout=30.0)






def messages(candles):
    return CandleMessage.from_candles(candles, exchange=EXCHANGE, symbol=SYMBOL,
                                      timeframe=TIMEFRAME)


@pytest.fixture
def env(duckdb_url, memory_bus_url):
    with open_store(duckdb_url) as store, open_bus(memory_bus_url) as bus:
        yield store, bus


class Running:
    """A host in a thread, with the events it reported."""

    def __init__(self, store, bus, interval=0.2) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.host = BotHost(store, bus, heartbeat_interval=interval,
                            on_event=lambda *e: self.events.append(e))
        self.thread = threading.Thread(target=self.host.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.host.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def kinds(self, bot_id):
        return [k for k, b, _ in self.events if b == bot_id]


def like_alone(store, config, candles):
    """The bot's fills and equity equal the same bot run alone over the same candles."""
    fake = FakeStore()
    fake.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    Bot(config.model_copy(update={"start": "earliest"}), fake).catch_up()
    assert_same_fills(store.load_bot_trades(config.name), fake.load_bot_trades(config.name),
                      rtol=0)
    assert (list(store.load_performance(config.name)["equity"])
            == list(fake.load_performance(config.name)["equity"]))


def test_bots_of_a_symbol_share_a_subscription_and_each_candle_is_one_transaction(
        env, monkeypatch):
    store, bus = env
    candles = make_candles(40, seed=11, volatility=2.0)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    configs = [make_config(f"b{i}", start="earliest", **CROSS) for i in range(4)]
    configs += [make_config(f"s{i}", start="earliest", stop_loss=0.01, **CROSS)
                for i in range(2)]
    subscribed, writes, pipelines = [], [], []
    subscribe, write, publish_many = bus.subscribe, store.write_bot_candles, bus.publish_many
    monkeypatch.setattr(bus, "subscribe",
                        lambda *c, **kw: subscribed.append(c) or subscribe(*c, **kw))
    monkeypatch.setattr(store, "write_bot_candles",
                        lambda records, tokens=None: writes.append(len(records))
                        or write(records, tokens))
    monkeypatch.setattr(bus, "publish_many", lambda items: (
        pipelines.append(sum(1 for c, _ in items if c.startswith("signals:")))
        or publish_many(items)))
    with Running(store, bus) as run, bus.subscribe(patterns=[signals_pattern()]) as signals:
        for c in configs:
            run.host.add(c, store.claim_bot(c.name))
        wait_until(lambda: all(caught_up(store, c.name, candles.index[19]) for c in configs),
                   what="catch-up")
        wait_until(lambda: all("running" in run.kinds(c.name) for c in configs), what="running")
        # one subscription for the symbol, with its trades once a bot with a stop joined
        assert [c for c in subscribed if c] == [(market_channel(SYMBOL),),
                                                (market_channel(SYMBOL), f"trades:{SYMBOL}")]
        assert bus.subscribers(market_channel(SYMBOL)) == 1
        while signals.get(timeout=0.3) is not None:
            pass
        writes.clear()
        pipelines.clear()
        for msg in messages(candles.iloc[20:]):
            store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            bus.publish(market_channel(SYMBOL), msg)
            got = {signals.get(timeout=10).bot_id for _ in configs}
            assert got == {c.name for c in configs}
    assert writes == [len(configs)] * 20  # one transaction per candle for all six bots
    assert [n for n in pipelines if n] == [len(configs)] * 20  # and one pipeline
    for c in configs:
        like_alone(store, c, candles)


def test_a_raising_strategy_fails_its_own_bot_only(env):
    store, bus = env
    candles = make_candles(40, seed=12, volatility=2.0)
    bad = candles.index[30]
    failing = make_config("failing", strategy="bot_strategies:FailOnCandle", window_margin=2,
                          parameters={"fail_at": bad.isoformat()}, start="earliest")
    healthy = make_config("healthy", start="earliest", **CROSS)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    with Running(store, bus) as run:
        for c in (failing, healthy):
            run.host.add(c)
        wait_until(lambda: caught_up(store, "healthy", candles.index[19]), what="start")
        for msg in messages(candles.iloc[20:]):
            store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            bus.publish(market_channel(SYMBOL), msg)
        wait_until(lambda: caught_up(store, "healthy", candles.index[-1]), what="healthy")
        assert run.kinds("failing") == ["running", "crashed"]
        assert run.kinds("healthy") == ["running"]
        assert run.host.bots == ["healthy"]
    row = store.get_bot("failing")
    assert row["status"] == "crashed" and bad.isoformat() in row["last_error"]
    assert row["last_candle_ts"] == candles.index[29]  # all before the bad candle stands
    like_alone(store, healthy, candles)


def test_a_host_never_writes_for_a_bot_claimed_since(env):
    store, bus = env
    candles = make_candles(30, seed=13, volatility=2.0)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    configs = [make_config(n, start="earliest", **CROSS) for n in ("kept", "taken")]
    with Running(store, bus) as run:
        for c in configs:
            run.host.add(c, store.claim_bot(c.name))
        wait_until(lambda: all(caught_up(store, c.name, candles.index[19]) for c in configs),
                   what="start")
        store.claim_bot("taken", host="another host")  # e.g. after this host was given up
        for msg in messages(candles.iloc[20:]):
            store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            bus.publish(market_channel(SYMBOL), msg)
        wait_until(lambda: caught_up(store, "kept", candles.index[-1]), what="kept")
        wait_until(lambda: "fenced" in run.kinds("taken"), what="fenced")
        assert run.host.bots == ["kept"]
    assert store.get_bot("taken")["last_candle_ts"] == candles.index[19]
    assert len(store.load_signals("taken")) == 20  # nothing after the claim
    assert len(store.load_signals("kept")) == 30


def test_a_corrected_candle_is_recorded_as_a_correction_event(env):
    store, bus = env
    candles = make_candles(30, seed=14, volatility=2.0)
    store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    config = make_config("fixme", start="earliest", **CROSS)
    with Running(store, bus) as run:
        run.host.add(config)
        wait_until(lambda: caught_up(store, "fixme", candles.index[-1]), what="start")
        fills = store.load_bot_trades("fixme")
        ts = candles.index[-2]
        late = candles.loc[[ts]].copy()
        late["close"] = late["close"] * 1.2  # late trades moved the close a lot
        late["high"] = late[["high", "close"]].max(axis=1)
        store.save_candles(late, EXCHANGE, SYMBOL, TIMEFRAME)
        (msg,) = CandleMessage.from_candles(late, exchange=EXCHANGE, symbol=SYMBOL,
                                            timeframe=TIMEFRAME)
        bus.publish(market_channel(SYMBOL), msg.model_copy(update={"corrected": True}))
        (corrections,) = wait_until(lambda: (c := store.load_corrections("fixme")).size > 0
                                    and (c,), what="a correction event")
    (row,) = corrections.itertuples()
    then = store.load_signals("fixme").loc[ts]
    assert row.Index == ts and row.action == then["action"]
    assert row.close == then["price"] and row.corrected_close == pytest.approx(late["close"].iat[0])
    assert row.corrected_action in ("buy", "sell", "hold")
    assert store.load_bot_trades("fixme").equals(fills)  # what it traded stands


def test_a_hung_bot_is_restarted_and_its_neighbours_move_without_a_restart(env, tmp_path):
    store, bus = env
    candles = make_candles(40, seed=15)
    store.save_candles(candles.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    flag = tmp_path / "hang"
    sleepy = make_config("sleepy", strategy="bot_strategies:HangWhileFlag",
                         parameters={"flag_file": str(flag)}, window_margin=2)
    neighbour = make_config("neighbour", **CROSS)
    with BotManager(store, bus, policy=FAST, poll_interval=0.1) as manager:
        manager.start_bot(sleepy)
        manager.start_bot(neighbour)
        assert manager.runner.host_of() == {"sleepy": "host-1", "neighbour": "host-1"}
        # started: caught up and its first heartbeat written (the hang timer runs from there)
        wait_until(lambda: all(caught_up(store, n, candles.index[19])
                               and store.get_bot(n)["heartbeat"] is not None
                               for n in ("sleepy", "neighbour")), what="both started")
        flag.touch()
        for msg in messages(candles.iloc[20:21]):
            store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            bus.publish(market_channel(SYMBOL), msg)
        row = wait_until(lambda: (r := store.get_bot("sleepy"))["restart_count"] >= 1 and r,
                         what="hang detected")
        assert "hung" in row["last_error"]
        flag.unlink()
        for msg in messages(candles.iloc[21:]):
            store.save_candles(candles.loc[[msg.ts]], EXCHANGE, SYMBOL, TIMEFRAME)
            bus.publish(market_channel(SYMBOL), msg)
        for name in ("sleepy", "neighbour"):
            wait_until(lambda n=name: caught_up(store, n, candles.index[-1]), what=name)
        assert store.get_bot("neighbour")["restart_count"] == 0
        assert manager.runner.host_of()["neighbour"] != "host-1"
    for name in ("sleepy", "neighbour"):  # every candle, once
        assert list(store.load_signals(name).index) == list(candles.index)


def test_placement_keeps_a_symbol_on_one_host_until_it_is_big(env):
    """Bots of a symbol share a host; a symbol with many bots spreads over the hosts."""
    from collections import Counter

    from tcp_lab.bots.runners import SPLIT_AT, HostRunner

    store, bus = env
    runner = HostRunner("thread", store, bus, hosts=2, heartbeat_interval=5.0)
    try:
        small = [make_config(f"s{s}_{j}", symbol=f"S{s}/USDT", **CROSS)
                 for s in range(4) for j in range(SPLIT_AT // 2)]
        big = [make_config(f"big{j}", symbol="BIG/USDT", **CROSS) for j in range(50)]
        for c in small + big:
            store.upsert_bot(c.name, strategy=c.strategy)
            runner.launch(c)
        where = runner.host_of()
        for s in range(4):  # a small symbol: one host
            assert len({where[f"s{s}_{j}"] for j in range(SPLIT_AT // 2)}) == 1
        per_host = Counter(where[c.name] for c in big)
        assert len(per_host) == 2 and abs(per_host["host-1"] - per_host["host-2"]) <= 1
        totals = Counter(where.values())
        assert abs(totals["host-1"] - totals["host-2"]) <= SPLIT_AT // 2
    finally:
        runner.stop_all(10.0)
