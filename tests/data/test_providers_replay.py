"""The replay provider and the provider registry."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from tcp_lab.data.aggregate import aggregate_trades, resample_candles
from tcp_lab.data.providers import (
    EndOfData,
    Provider,
    make_provider,
    provider_names,
    register_provider,
)
from tcp_lab.data.providers.replay import ReplayProvider
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.testing import make_candles, make_trades
from tests.data.collector_support import COLS, utc


@pytest.fixture
def trades():
    return make_trades(3000, seed=3)


def test_candles_from_trades_are_aggregated_and_the_forming_one_is_left_out(trades):
    p = ReplayProvider({"BTC/USDT": trades})
    assert isinstance(p, Provider) and p.now() == trades["ts"].iloc[-1]
    first, end = utc("2024-01-01 00:05"), utc("2030-01-01")
    page = p.fetch_candles("BTC/USDT", "5m", first, end)
    truth = aggregate_trades(trades, "5m")
    truth = truth.loc[(truth.index >= first) & (truth.index <= p.now())]
    assert page.end == p.now().floor("5min") and page.end < truth.index[-1] + pd.Timedelta("5min")
    pd.testing.assert_frame_equal(page.candles, truth.loc[truth.index <= page.end],
                                  check_freq=False)
    assert len(page.empty) == 0


def test_trades_without_ids_are_numbered_and_files_are_read(tmp_path, trades):
    csv = tmp_path / "t.csv"
    trades.drop(columns="id").assign(ts=trades["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                                     ).to_csv(csv, index=False)
    pq = tmp_path / "t.parquet"
    trades.to_parquet(pq)
    p = ReplayProvider({"A/USDT": csv, "B/USDT": pq})
    a = p.fetch_trades("A/USDT", from_id=0, limit=10)
    b = p.fetch_trades("B/USDT", from_id=int(trades["id"].iloc[0]), limit=10)
    assert a["id"].tolist() == list(range(10))
    np.testing.assert_array_equal(a["price"].to_numpy(), b["price"].to_numpy())
    assert str(a["ts"].dtype) == "datetime64[us, UTC]"
    (tmp_path / "naive.csv").write_text("ts,price,amount\n2024-01-01 00:00:01,1,1\n")
    with pytest.raises(DataError, match="time zone"):
        ReplayProvider({"X/USDT": tmp_path / "naive.csv"})
    with pytest.raises(DataError, match="does not exist"):
        ReplayProvider({"X/USDT": tmp_path / "nope.parquet"})


def test_candle_sources_are_resampled_and_have_no_live_trades():
    c1 = make_candles(600, "1m", seed=2)
    p = ReplayProvider({"ETH/USDT": c1})
    assert not p.has_live_trades
    page = p.fetch_candles("ETH/USDT", "15m", c1.index[0] + pd.Timedelta("14min"),
                           c1.index[-1])
    truth = resample_candles(c1, "15m")
    truth = truth.loc[truth.index >= page.start]
    pd.testing.assert_frame_equal(page.candles[COLS], truth[COLS], check_freq=False)
    with pytest.raises(ConfigError, match="1m candles cannot be built from 5m"):
        ReplayProvider({"ETH/USDT": make_candles(10, "5m")}).check(["ETH/USDT"], ["1m"])
    with pytest.raises(ConfigError, match="no source"):
        p.check(["BTC/USDT"], ["1m"])


def test_live_replay_delivers_every_trade_after_start_in_order(trades):
    start = trades["ts"].iloc[1000]
    p = ReplayProvider({"BTC/USDT": trades}, start=start)
    assert p.now() == start and p.fetch_trades("BTC/USDT", from_id=0)["ts"].max() <= start

    async def follow():
        got = []
        while True:
            try:
                got.append(await p.watch_trades("BTC/USDT"))
            except EndOfData:
                return pd.concat(got, ignore_index=True)
            assert p.now() >= got[-1]["ts"].iloc[-1]  # every trade up to now delivered

    live = asyncio.run(follow())
    pd.testing.assert_frame_equal(live, trades.loc[trades["ts"] > start].reset_index(drop=True)
                                  [live.columns], check_dtype=False)
    assert p.done() and p.now() == trades["ts"].iloc[-1]


def test_replay_at_a_speed_follows_the_wall_clock(trades):
    start = trades["ts"].iloc[-30]
    p = ReplayProvider({"BTC/USDT": trades}, start=start, speed=600)

    async def first_batch():
        return await p.watch_trades("BTC/USDT")

    batch = asyncio.run(first_batch())
    assert len(batch) >= 1 and batch["ts"].iloc[0] > start
    assert batch["ts"].iloc[-1] <= p.now()


def test_registry_builds_by_name_and_says_what_it_knows():
    assert {"ccxt", "replay"} <= set(provider_names())
    with pytest.raises(ConfigError, match="did you mean 'replay'"):
        make_provider("replai")
    with pytest.raises(ConfigError, match="Provider protocol"):
        make_provider(object())
    register_provider("fixed", lambda **kw: ReplayProvider({"BTC/USDT": make_trades(10)},
                                                           exchange=kw.get("exchange", "x")))
    p = make_provider("fixed", exchange="mine")
    assert p.exchange == "mine" and make_provider(p) is p
    with pytest.raises(ConfigError, match="sources"):
        make_provider("replay")
