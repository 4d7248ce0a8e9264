"""The portfolio bot: several symbols from one account; replaying history gives the portfolio
backtest exactly (fills with their symbols, equity at every close time), whether the candles
come from the store or one at a time from the bus, in any order within a close time, and
across a restart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_lab import run_portfolio
from tcp_lab.bots import BotConfig
from tcp_lab.bots.portfolio_bot import PortfolioBot, complete_until
from tcp_lab.bus import CandleMessage
from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.errors import ConfigError
from tcp_lab.store import open_store
from tcp_lab.testing import make_trades

EXCHANGE, TIMEFRAME = "binance", "1m"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "PEPE/USDT")
CODED = "tests.portfolio.portfolio_support.CodedLS"


def _market(seed: int, hours: float = 4.0) -> dict[str, pd.DataFrame]:
    """1m candles of three symbols over about ``hours`` from synthetic trades: busy and quiet
    symbols (quiet minutes are gaps), a sub-cent coin with 8-decimal prices."""
    out = {}
    for k, (sym, price, tick, rate) in enumerate([("BTC/USDT", 40_000.0, 0.01, 0.2),
                                                  ("ETH/USDT", 2_000.0, 0.01, 0.05),
                                                  ("PEPE/USDT", 0.00001234, 1e-8, 0.01)]):
        trades = make_trades(int(rate * hours * 3600), seed=seed * 10 + k, start_price=price,
                             rate=rate, tick=tick, volatility=3.0)
        out[sym] = aggregate_trades(trades, TIMEFRAME)
    return out


def _complete(candles: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The candles of the complete close times: the newest one only when every symbol has
    it (else the bot waits for a later candle, which a history does not have)."""
    last = max(c.index[-1] for c in candles.values())
    if all(c.index[-1] == last for c in candles.values()):
        return candles
    return {s: c[c.index < last] for s, c in candles.items()}


def _split(candles: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
    """The candles up to the middle close time of the union, and those after it (as a
    collector stores them: every symbol up to the same time)."""
    times = sorted(set().union(*(c.index for c in candles.values())))
    cut = times[len(times) // 2]
    return ({s: c[c.index <= cut] for s, c in candles.items()},
            {s: c[c.index > cut] for s, c in candles.items()})


def _config(name: str = "pf", **kw) -> BotConfig:
    values = dict(name=name, strategy="sma_cross", parameters={"fast": 3, "slow": 8},
                  exchange=EXCHANGE, symbols=list(SYMBOLS), timeframe=TIMEFRAME,
                  start="earliest", fees=0.001, slippage=0.0005)
    values.update(kw)
    return BotConfig(**values)


def _backtest(config: BotConfig, candles: dict[str, pd.DataFrame]):
    extra = {k: getattr(config, k) for k in ("max_positions", "vol_window")
             if getattr(config, k) is not None}
    size = config.size if "size" in config.model_fields_set else None
    return run_portfolio(config.strategy, candles, parameters=config.parameters,
                         sizing=config.sizing or "all_in", size=size,
                         init_cash=config.init_cash, fees=config.fees,
                         slippage=config.slippage, direction=config.direction,
                         stop_loss=config.stop_loss, take_profit=config.take_profit,
                         trailing_stop=config.trailing_stop, leverage=config.leverage,
                         maintenance_margin=config.maintenance_margin, **extra)


def _assert_replays_backtest(store, config, candles) -> None:
    result = _backtest(config, candles)
    perf = store.load_performance(config.name)
    assert list(perf.index) == list(result.equity.index)
    np.testing.assert_array_equal(perf["equity"].to_numpy(), result.equity.to_numpy())
    np.testing.assert_array_equal(perf["cash"].to_numpy(), result.cash.to_numpy())
    fills = store.load_bot_trades(config.name)
    orders = result.orders
    assert list(fills.index) == list(orders["time"])
    assert list(fills["symbol"]) == list(orders["symbol"])
    assert list(fills["side"]) == ["buy" if s > 0 else "sell" for s in orders["side"]]
    np.testing.assert_array_equal(fills["amount"].to_numpy(), orders["size"].to_numpy())
    np.testing.assert_array_equal(fills["price"].to_numpy(), orders["price"].to_numpy())
    np.testing.assert_array_equal(fills["fee"].to_numpy(), orders["fees"].to_numpy())
    assert list(fills["reason"]) == list(orders["reason"])
    closed = result.trades[result.trades["status"] == "closed"] if "status" in \
        result.trades else result.trades
    realized = fills["realized_pnl"].dropna().to_numpy()
    np.testing.assert_allclose(np.sort(realized), np.sort(closed["pnl"].to_numpy()), rtol=0,
                               atol=0)


@pytest.fixture
def store(tmp_path):
    s = open_store(f"duckdb:///{tmp_path / 'pf.duckdb'}")
    yield s
    s.close()


def _save(store, candles) -> None:
    for sym, c in candles.items():
        store.save_candles(c, EXCHANGE, sym, TIMEFRAME)


CONFIGS = {
    "all in, long": {},
    "equal, cap 2, long/short": dict(sizing="equal", max_positions=2, direction="longshort"),
    "fixed fraction, stops": dict(sizing="fixed_fraction", size=0.4, stop_loss=0.003,
                                  trailing_stop=0.004),
    "volatility target": dict(sizing="volatility_target", size=0.5, vol_window=10),
    "risk percent": dict(sizing="risk_percent", size=0.01, stop_loss=0.002),
    "leverage 3, liquidation": dict(sizing="fixed_fraction", size=2.5, leverage=3.0,
                                    maintenance_margin=0.3, direction="longshort"),
}


@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_replay_from_the_store_is_the_portfolio_backtest(store, options):
    candles = _market(seed=1)
    _save(store, candles)
    config = _config(**options)
    bot = PortfolioBot(config, store)
    steps = bot.catch_up()
    done = _complete(candles)
    union = done["BTC/USDT"].index.union(done["ETH/USDT"].index).union(done["PEPE/USDT"].index)
    assert [s.ts for s in steps] == list(union)
    assert sum(len(s.fills) for s in steps) > 0
    _assert_replays_backtest(store, config, done)


def _messages(candles: dict[str, pd.DataFrame], rng: np.random.Generator):
    """Every candle as a bus message: close times in order, symbols shuffled within each."""
    rows = [(ts, sym, row) for sym, c in candles.items() for ts, row in c.iterrows()]
    order = {sym: k for k, sym in enumerate(rng.permutation(list(candles)))}
    rows.sort(key=lambda r: (r[0], order[r[1]] + rng.random()))
    for ts, sym, row in rows:
        yield CandleMessage(ts=ts, exchange=EXCHANGE, symbol=sym, timeframe=TIMEFRAME,
                            open=row["open"], high=row["high"], low=row["low"],
                            close=row["close"], volume=row["volume"],
                            trade_count=int(row["trade_count"]))


@settings(max_examples=10, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), restart=st.integers(10, 200),
       lag=st.sampled_from([0.0, 0.5, 0.9]))
def test_live_candles_in_any_order_and_a_restart_give_the_backtest(tmp_path_factory, seed,
                                                                   restart, lag):
    """Candles from the bus (none stored beforehand) as a collector and Redis deliver them:
    the collector stores then publishes, close times in order and the symbols of one close
    time in any order; each symbol has a subscription of its own, so the bot receives each
    symbol's candles in order but the symbols interleaved arbitrarily, up to everything
    published before any is received (``lag``: how often a delivery waits). A new bot
    instance resumes halfway from the stored state. The result: the backtest."""
    rng = np.random.default_rng(seed)
    candles = _market(seed=seed % 7, hours=1.5)
    path = tmp_path_factory.mktemp("live") / "pf.duckdb"
    config = _config(sizing="equal", max_positions=2, direction="longshort")
    published = list(_messages(candles, rng))
    queues: dict[str, list[CandleMessage]] = {s: [] for s in SYMBOLS}
    with open_store(f"duckdb:///{path}") as store:
        bot = PortfolioBot(config, store)
        received = 0

        def deliver(symbol: str) -> None:
            nonlocal bot, received
            if received == restart:
                bot = PortfolioBot(config, store)  # a restart: state from the store
            bot.process_candle(queues[symbol].pop(0))
            received += 1

        for message in published:
            store.save_candles(candles[message.symbol].loc[[message.ts]], EXCHANGE,
                               message.symbol, TIMEFRAME)
            queues[message.symbol].append(message)
            while rng.random() >= lag and any(queues.values()):
                deliver(rng.choice([s for s, q in queues.items() if q]))
        while any(queues.values()):
            deliver(rng.choice([s for s, q in queues.items() if q]))
        bot.catch_up()
        _assert_replays_backtest(store, config, _complete(candles))


def test_a_close_time_waits_for_every_symbol_or_a_later_candle(store):
    candles = _market(seed=3, hours=1)
    times = sorted(set().union(*(c.index for c in candles.values())))
    bot = PortfolioBot(_config(), store)
    t0, t1 = times[0], times[1]
    first = [s for s, c in candles.items() if t0 in c.index]

    def msg(sym, ts):
        row = candles[sym].loc[ts]
        return CandleMessage(ts=ts, exchange=EXCHANGE, symbol=sym, timeframe=TIMEFRAME,
                             open=row["open"], high=row["high"], low=row["low"],
                             close=row["close"], volume=row["volume"],
                             trade_count=int(row["trade_count"]))

    if len(first) < len(SYMBOLS):  # one symbol is missing at t0: t0 waits for a later candle
        for sym in first:
            assert bot.process_candle(msg(sym, t0)) == []
        later = next(s for s, c in candles.items() if (c.index > t0).any())
        nxt = candles[later].index[candles[later].index > t0][0]
        done = bot.process_candle(msg(later, nxt))
        assert [d.ts for d in done][:1] == [t0]
    else:
        for sym in first[:-1]:
            assert bot.process_candle(msg(sym, t0)) == []
        assert [d.ts for d in bot.process_candle(msg(first[-1], t0))] == [t0]
    assert t1 > t0


def test_complete_until():
    assert complete_until([None, None]) is None
    assert complete_until([5, 5, 5]) == 5
    assert complete_until([5, 4, 5]) == 4
    assert complete_until([5, None]) == 4


def test_signals_and_fills_name_their_symbol(store):
    candles = _market(seed=2, hours=2)
    _save(store, candles)
    config = _config()
    PortfolioBot(config, store).catch_up()
    signals = store.load_signals(config.name)
    assert set(signals["symbol"]) == set(SYMBOLS)
    for sym, c in _complete(candles).items():  # one signal per symbol and candle, at its close
        mine = signals[signals["symbol"] == sym]
        assert list(mine.index) == list(c.index)
        np.testing.assert_array_equal(mine["price"].to_numpy(), c["close"].to_numpy())


def test_changed_symbols_are_refused_at_load(store):
    candles = _market(seed=4, hours=1)
    _save(store, candles)
    PortfolioBot(_config(), store).catch_up()
    bot = PortfolioBot(_config(symbols=["BTC/USDT", "ETH/USDT"]), store)
    with pytest.raises(ConfigError, match="new bot name"):
        bot.catch_up()


@pytest.mark.parametrize("bad, field", [
    (dict(symbol="BTC/USDT"), "symbol"),
    (dict(symbols=["BTC/USDT", "BTC/USDT"]), "symbols"),
    (dict(sizing="eqal"), "sizing"),
    (dict(sizing="fixed_value"), "size"),
    (dict(vol_window=10), "vol_window"),
    (dict(latency_ms=5), "latency_ms"),
])
def test_config_errors_name_the_field(bad, field):
    values = dict(name="pf", strategy="sma_cross", exchange=EXCHANGE, symbols=list(SYMBOLS),
                  timeframe=TIMEFRAME)
    values.update(bad)
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        BotConfig.from_mapping(values, source="pf.json")


@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_stored_config_reads_back_the_same(options):
    """The store keeps ``to_json()`` (every key); the manager restores the bot from it."""
    config = _config(**options)
    again = BotConfig.from_mapping(config.to_json(), source="stored")
    assert again == config
    assert again.portfolio_sizing() == config.portfolio_sizing()
    single = BotConfig(name="b", strategy="sma_cross", exchange=EXCHANGE, symbol="BTC/USDT",
                       timeframe=TIMEFRAME)
    assert BotConfig.from_mapping(single.to_json(), source="stored") == single


def test_a_single_symbol_bot_refuses_portfolio_keys():
    with pytest.raises(ConfigError, match="field 'max_positions'"):
        BotConfig.from_mapping(dict(name="b", strategy="sma_cross", exchange=EXCHANGE,
                                    symbol="BTC/USDT", timeframe=TIMEFRAME, max_positions=2),
                               source="b.json")


def test_coded_strategy_with_levels_and_confidence(store):
    """Entry conflicts resolved by confidence and strategy stop levels, as in the backtest."""
    from tests.portfolio.portfolio_support import LE, LX, SE, SX, coded_candles

    rng = np.random.default_rng(5)
    n = 300
    codes = [0, 0, LE, LX, SE, SX, LE | SX, SE | LX]
    candles = {}
    for sym in SYMBOLS:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        candles[sym] = coded_candles(close, rng.choice(codes, n), rng.choice([0.1, 0.5, 0.9], n),
                                     keep=rng.random(n) > 0.15, timeframe="1min")
    _save(store, candles)
    config = _config(strategy=CODED, parameters={"stop_distance": 0.01}, sizing="equal",
                     max_positions=2, direction="longshort")
    PortfolioBot(config, store).catch_up()
    _assert_replays_backtest(store, config, _complete(candles))


def test_a_host_feeds_a_portfolio_bot_every_symbol_of_it(duckdb_url, memory_bus_url, tmp_path):
    """A portfolio bot beside a bot of one of its symbols in one host: it takes the candles
    of its three symbols from the bus, publishes one signal per symbol, and its records are
    the replay's (hence the backtest's)."""
    import threading

    from bots_helpers import make_config, wait_until

    from tcp_lab.bots.host import BotHost
    from tcp_lab.bus import market_channel, open_bus, signals_pattern

    candles = _market(seed=6, hours=1)
    half, rest = _split(candles)
    config = _config(sizing="equal", direction="longshort")
    single = make_config("one", symbol="BTC/USDT", strategy="sma_cross",
                         parameters={"fast": 3, "slow": 8})
    with open_store(duckdb_url) as store, open_bus(memory_bus_url) as bus:
        _save(store, half)
        host = BotHost(store, bus, heartbeat_interval=0.2)
        thread = threading.Thread(target=host.run, daemon=True)
        thread.start()
        try:
            with bus.subscribe(patterns=[signals_pattern()]) as signals:
                host.add(config, store.claim_bot(config.name))
                host.add(single, store.claim_bot(single.name))
                wait_until(lambda: sorted(host.bots) == ["one", "pf"], what="bots")
                wait_until(lambda: (store.get_bot("pf") or {}).get("status") == "running",
                           what="running")
                for message in _messages(rest, np.random.default_rng(0)):
                    store.save_candles(candles[message.symbol].loc[[message.ts]], EXCHANGE,
                                       message.symbol, TIMEFRAME)
                    bus.publish(market_channel(message.symbol), message)
                done = _complete(candles)
                last = max(c.index[-1] for c in done.values())
                wait_until(lambda: (store.get_bot("pf") or {}).get("last_candle_ts") == last,
                           what="the portfolio bot's last close time")
                got = []
                while (m := signals.get(timeout=0.5)) is not None:
                    got.append(m)
        finally:
            host.stop()
            thread.join(10)
        mine = {m.symbol for m in got if m.bot_id == "pf"}
        assert mine == set(SYMBOLS)
        assert {m.symbol for m in got if m.bot_id == "one"} == {None}
        replay = open_store(f"duckdb:///{tmp_path / 'replay.duckdb'}")
        with replay:
            _save(replay, candles)
            PortfolioBot(config, replay).catch_up()
            for load in ("load_performance", "load_bot_trades"):
                pd.testing.assert_frame_equal(getattr(store, load)("pf"),
                                              getattr(replay, load)("pf"))


def _run_under_a_manager(store, bus, manager_args, tmp_path, **manager_kw) -> None:
    """``majors.json`` with ``symbols``: started by name, fed by the bus, stopped; its records
    are the replay's."""
    import json

    from bots_helpers import wait_until

    from tcp_lab.bots import BotManager, RestartPolicy
    from tcp_lab.bus import market_channel

    policy = RestartPolicy(backoff=0.05, backoff_max=0.2, heartbeat_interval=0.3,
                           hang_timeout=15.0, max_lag=3, stuck_timeout=60.0)
    candles = _market(seed=8, hours=1)
    half, rest = _split(candles)
    (tmp_path / "majors.json").write_text(json.dumps(
        {"strategy": "sma_cross", "parameters": {"fast": 3, "slow": 8}, "exchange": EXCHANGE,
         "symbols": list(SYMBOLS), "timeframe": TIMEFRAME, "start": "earliest",
         "sizing": "fixed_fraction", "size": 0.3, "max_positions": 2}))
    _save(store, half)
    with BotManager(*manager_args, policy=policy, poll_interval=0.1, config_dir=tmp_path,
                    **manager_kw) as manager:
        assert manager.start_bot("majors") == "majors"
        wait_until(lambda: store.get_bot("majors")["status"] == "running", timeout=60,
                   what="running")
        for message in _messages(rest, np.random.default_rng(1)):
            store.save_candles(candles[message.symbol].loc[[message.ts]], EXCHANGE,
                               message.symbol, TIMEFRAME)
            bus.publish(market_channel(message.symbol), message)
        last = max(c.index[-1] for c in _complete(candles).values())
        wait_until(lambda: store.get_bot("majors")["last_candle_ts"] == last, timeout=60,
                   what="the last close time")
        manager.stop_bot("majors")
        wait_until(lambda: store.get_bot("majors")["status"] == "stopped", timeout=60,
                   what="stopped")
    config = BotConfig.from_mapping(store.get_bot("majors")["state"]["config"], source="stored")
    _assert_replays_backtest(store, config, _complete(candles))


def test_the_manager_runs_a_portfolio_bot_from_its_config_file(duckdb_url, memory_bus_url,
                                                                tmp_path):
    from tcp_lab.bus import open_bus

    with open_store(duckdb_url) as store, open_bus(memory_bus_url) as bus:
        _run_under_a_manager(store, bus, (store, bus), tmp_path)


@pytest.mark.services
@pytest.mark.slow
def test_a_host_process_runs_a_portfolio_bot(postgres_url, redis_url, tmp_path):
    """Production: PostgreSQL + Redis, the bot in a host process of the manager."""
    from tcp_lab.bus import open_bus

    with open_store(postgres_url) as store, open_bus(redis_url) as bus:
        _run_under_a_manager(store, bus, (postgres_url, redis_url), tmp_path,
                             log_dir=tmp_path / "logs")


def test_cli_lists_a_portfolio_bot_and_its_positions(tmp_path, capsys):
    from tcp_lab.cli import main

    url = f"duckdb:///{tmp_path / 'home' / 'tcp_lab.duckdb'}"
    candles = _market(seed=9, hours=1)
    with open_store(url) as store:
        _save(store, candles)
        bot = PortfolioBot(_config(name="pf-cli", direction="longshort"), store)
        bot.catch_up()
        positions = bot.positions()
    assert main(["bots", "list"]) == 0
    assert "binance BTC/USDT,ETH/USDT,PEPE/USDT 1m" in capsys.readouterr().out
    assert main(["bots", "status", "pf-cli"]) == 0
    out = capsys.readouterr().out
    assert "market       binance BTC/USDT,ETH/USDT,PEPE/USDT 1m" in out
    for symbol, position in positions.items():
        assert f"position     {symbol} {position:.8g}" in out
    assert main(["bots", "logs", "pf-cli", "-n", "6"]) == 0
    out = capsys.readouterr().out
    assert "last 6 signals" in out and sum(out.count(s) for s in SYMBOLS) >= 6


def test_without_a_bus_the_store_checks_trade_every_stored_close_time(duckdb_url):
    """No bus (or Redis down): the host's store checks find the close times stored since."""
    import threading

    from bots_helpers import wait_until

    from tcp_lab.bots.host import BotHost

    candles = _market(seed=10, hours=1)
    half, rest = _split(candles)
    config = _config(direction="longshort")
    with open_store(duckdb_url) as store:
        _save(store, half)
        host = BotHost(store, None, heartbeat_interval=0.1)
        thread = threading.Thread(target=host.run, daemon=True)
        thread.start()
        try:
            host.add(config, store.claim_bot(config.name))
            first = max(c.index[-1] for c in _complete(half).values())
            wait_until(lambda: (store.get_bot("pf") or {}).get("last_candle_ts") == first,
                       what="the stored half")
            _save(store, candles)
            last = max(c.index[-1] for c in _complete(candles).values())
            wait_until(lambda: store.get_bot("pf")["last_candle_ts"] == last,
                       what="the rest, from the store")
        finally:
            host.stop()
            thread.join(10)
        _assert_replays_backtest(store, config, _complete(candles))


def test_the_bot_panel_row_shows_each_symbols_position(store):
    from tcp_lab.ui._bot_rows import bot_row, bots_table_html

    candles = _market(seed=11, hours=1)
    _save(store, candles)
    bot = PortfolioBot(_config(direction="longshort"), store)
    bot.catch_up()
    row = bot_row(store.get_bot("pf"), store)
    assert row["market"] == "binance BTC/USDT,ETH/USDT,PEPE/USDT 1m"
    held = {s: p for s, p in bot.positions().items() if p != 0.0}
    assert row["position"] == (", ".join(f"{s} {p:.6g}" for s, p in held.items()) or "flat")
    assert row["equity"] == store.load_performance("pf")["equity"].iat[-1]
    assert row["position"] in bots_table_html({"pf": row}, pd.Timestamp.now(tz="UTC"))


def test_a_strategy_reading_another_symbol_trades_as_in_the_backtest(store):
    """Informative series: each symbol's own hourly candles and ETH/USDT's, taken from the
    portfolio's candles up to the close time, as run_portfolio takes them from the universe."""
    from tcp_lab.testing import make_candles

    universe = {"BTC/USDT": make_candles(400, "5m", seed=1, volatility=1.5),
                "ETH/USDT": make_candles(400, "5m", seed=2, start_price=2000.0, volatility=1.5)}
    for sym, c in universe.items():
        store.save_candles(c, EXCHANGE, sym, "5m")
    config = _config(strategy="tests.fixtures.informative_strategies.HourTrend",
                     parameters={}, symbols=list(universe), timeframe="5m", sizing="equal")
    PortfolioBot(config, store).catch_up()
    _assert_replays_backtest(store, config, universe)
    assert len(store.load_bot_trades("pf")) > 0
