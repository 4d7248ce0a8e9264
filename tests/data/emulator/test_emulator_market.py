"""The market model: klines are its own trades aggregated; ids, determinism, random access."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_lab.data.emulator import MarketModel
from tcp_lab.data.emulator.market import INTERVALS
from tcp_lab.errors import DataError

DAY = 86_400_000
MIN = 60_000


def reference_klines(model: MarketModel, symbol: str, tf: int, first_open: int, n: int
                     ) -> pd.DataFrame:
    """Binance klines built naively from the model's trades: [open, open+tf), empty = prev close."""
    prev, back = model.spec(symbol).start_price, DAY
    while first_open - back > model.genesis_ms - DAY:  # the last trade before the window
        before = model.trades(symbol, first_open - back, first_open)
        if len(before):
            prev = before.price[-1]
            break
        back *= 2
    t = model.trades(symbol, first_open, first_open + n * tf)
    df = pd.DataFrame({"time": t.time, "price": t.price, "amount": t.amount})
    g = df.groupby((df.time - first_open) // tf)
    agg = pd.DataFrame({"open": g.price.first(), "high": g.price.max(), "low": g.price.min(),
                        "close": g.price.last(), "volume": g.amount.sum(),
                        "count": g.price.size()}).reindex(range(n))
    agg["count"] = agg["count"].fillna(0).astype(int)
    agg["volume"] = agg["volume"].fillna(0.0)
    agg["close"] = agg["close"].ffill().fillna(prev)
    for col in ("open", "high", "low"):
        agg[col] = agg[col].fillna(agg["close"])
    agg.index = first_open + agg.index * tf
    return agg


def assert_klines_match(model, symbol, interval, first_open, n):
    tf = INTERVALS[interval][0]
    k = model.klines(symbol, interval, first_open, first_open + n * tf)
    ref = reference_klines(model, symbol, tf, first_open, n)
    assert list(k.open_time) == list(ref.index)
    assert np.array_equal(k.close_time, k.open_time + tf - 1)
    assert list(k.count) == list(ref["count"])
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(k, col), ref[col].to_numpy(), rtol=1e-12, err_msg=col)
    return k


@pytest.fixture(scope="module")
def model():
    return MarketModel(("BTC/USDT", "ETH/USDT"), seed=11)


@pytest.fixture(scope="module")
def quiet():
    """A market so thin that many minutes have no trade (even at the start of a day)."""
    return MarketModel(("FOO/USDT",), seed=5, trade_rate=0.03)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.integers(0, 400), minute=st.integers(0, 1439),
       interval=st.sampled_from(["1m", "5m", "15m", "1h"]), n=st.integers(1, 40))
def test_klines_are_the_aggregation_of_the_trades(model, day, minute, interval, n):
    tf = INTERVALS[interval][0]
    first_open = (model.genesis_ms + day * DAY + minute * MIN) // tf * tf
    assert_klines_match(model, "BTC/USDT", interval, first_open, n)


def test_empty_minutes_carry_the_previous_close(quiet):
    first_open = quiet.genesis_ms + 30 * DAY - 90 * MIN  # spans a day boundary
    k = assert_klines_match(quiet, "FOO/USDT", "1m", first_open, 240)
    empty = k.count == 0
    assert empty.sum() > 100, "the quiet market should have many empty minutes"
    assert (k.volume[empty] == 0).all()
    prev_close = np.concatenate(([np.nan], k.close[:-1]))
    assert np.array_equal(k.open[empty][1:], prev_close[empty][1:])
    assert (k.high[empty] == k.low[empty]).all() and (k.open[empty] == k.close[empty]).all()


def test_daily_and_weekly_klines(quiet, model):
    assert_klines_match(quiet, "FOO/USDT", "1d", quiet.genesis_ms, 3)
    k = model.klines("BTC/USDT", "1w", model.genesis_ms, model.genesis_ms + 21 * DAY)
    assert pd.Timestamp(int(k.open_time[0]), unit="ms").day_name() == "Monday"


def test_the_forming_kline_only_holds_trades_up_to_now(model):
    now = model.genesis_ms + 3 * DAY + 5 * 3_600_000 + 1_234_567
    k = model.klines("BTC/USDT", "1h", now - 3 * 3_600_000, now + 3 * 3_600_000, until_ms=now)
    assert k.open_time[-1] <= now < k.open_time[-1] + 3_600_000
    t = model.trades("BTC/USDT", int(k.open_time[-1]), now + 1)
    assert k.count[-1] == len(t) and k.close[-1] == t.price[-1] and k.high[-1] == t.price.max()
    assert len(model.klines("BTC/USDT", "1m", now + MIN, now + 5 * MIN, until_ms=now)) == 0


def test_ids_are_consecutive_in_time_order_across_days(model):
    t = model.trades("BTC/USDT", model.genesis_ms + 2 * DAY - 600_000,
                     model.genesis_ms + 2 * DAY + 600_000)
    assert len(t) > 100
    assert (np.diff(t.id) == 1).all() and (np.diff(t.time) >= 0).all()
    assert (t.price > 0).all() and (t.amount > 0).all()
    first = model.trades("BTC/USDT", model.genesis_ms, model.genesis_ms + MIN)
    assert first.id[0] == model.spec("BTC/USDT").first_id


def test_random_access_by_id_and_time_agree(model):
    t = model.trades("ETH/USDT", model.genesis_ms + 50 * DAY, model.genesis_ms + 50 * DAY + 5 * MIN)
    by_id = model.trades_from_id("ETH/USDT", int(t.id[0]), len(t))
    assert np.array_equal(by_id.id, t.id) and np.array_equal(by_id.price, t.price)
    assert model.first_id_at("ETH/USDT", int(t.time[0])) <= t.id[0]
    assert model.first_id_at("ETH/USDT", int(t.time[0]) + 1) > t.id[0] - 1
    last = model.last_trades("ETH/USDT", int(t.time[-1]), 3)
    assert list(last.id) == list(t.id[-3:]) or last.id[-1] >= t.id[-1]
    capped = model.trades_from_id("ETH/USDT", int(t.id[0]), 10_000, until_ms=int(t.time[10]))
    assert capped.time.max() <= t.time[10]


def test_same_seed_same_market_any_query_order():
    a = MarketModel(("BTC/USDT",), seed=3)
    b = MarketModel(("BTC/USDT",), seed=3)
    start = a.genesis_ms + 700 * DAY  # b sees day 700 before anything else
    tb = b.trades("BTC/USDT", start, start + 10 * MIN)
    a.trades("BTC/USDT", a.genesis_ms, a.genesis_ms + MIN)
    ta = a.trades("BTC/USDT", start, start + 10 * MIN)
    for f in ("id", "time", "price", "amount", "buyer_maker"):
        assert np.array_equal(getattr(ta, f), getattr(tb, f)), f
    c = MarketModel(("BTC/USDT",), seed=4).trades("BTC/USDT", start, start + 10 * MIN)
    assert not (len(c) == len(ta) and np.array_equal(c.price, ta.price))


def test_realistic_enough(model, quiet):
    # volatility: from a thin market (cheap to generate; the price process is the same kind)
    k = quiet.klines("FOO/USDT", "1d", quiet.genesis_ms, quiet.genesis_ms + 200 * DAY)
    r = np.diff(np.log(k.close))
    assert 0.2 < r.std() * np.sqrt(365) < 2.0  # crypto-like annualised volatility
    days = model.klines("BTC/USDT", "1d", model.genesis_ms, model.genesis_ms + 7 * DAY)
    assert 20_000 < days.count.mean() < 300_000  # tens of thousands of trades a day
    hourly = model.klines("BTC/USDT", "1h", model.genesis_ms, model.genesis_ms + 7 * DAY)
    by_hour = pd.Series(hourly.count).groupby((hourly.open_time // 3_600_000) % 24).mean()
    assert by_hour.max() > 1.3 * by_hour.min()  # activity varies by hour of day
    t = model.trades("BTC/USDT", model.genesis_ms, model.genesis_ms + DAY)
    assert 0.3 < t.buyer_maker.mean() < 0.7
    frame = t.to_frame()
    assert list(frame.columns) == ["ts", "price", "amount", "id", "side"]
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"


def test_daily_kline_in_progress(model):
    now = model.genesis_ms + 9 * DAY + 7 * 3_600_000 + 5
    k = model.klines("BTC/USDT", "1d", now - 2 * DAY, now + DAY, until_ms=now)
    t = model.trades("BTC/USDT", int(k.open_time[-1]), now + 1)
    assert k.open_time[-1] == model.genesis_ms + 9 * DAY
    assert k.count[-1] == len(t) and k.close[-1] == t.price[-1] and k.low[-1] == t.price.min()


def test_bad_inputs_are_named(model):
    with pytest.raises(DataError, match="FOO/USDT"):
        model.trades("FOO/USDT", 0, 1)
    with pytest.raises(DataError, match="interval '1M'"):
        model.klines("BTC/USDT", "1M", 0, 1)
    with pytest.raises(DataError, match="seed"):
        MarketModel(("BTC/USDT",), seed=-1)
    assert len(model.trades("BTC/USDT", 0, model.genesis_ms)) == 0  # nothing before genesis


def test_warming_daily_summaries_changes_nothing(quiet):
    fresh = MarketModel(("FOO/USDT",), seed=5, trade_rate=0.03)
    start, end = fresh.genesis_ms + 10 * DAY, fresh.genesis_ms + 20 * DAY
    assert fresh.warm_daily("FOO/USDT", start, end) == 10
    a = fresh.klines("FOO/USDT", "1d", start, end)
    b = quiet.klines("FOO/USDT", "1d", start, end)
    assert np.array_equal(a.close, b.close) and np.array_equal(a.count, b.count)
