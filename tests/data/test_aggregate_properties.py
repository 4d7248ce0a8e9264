"""Properties of trades -> candles that must hold for every input (hypothesis).

Everything is checked against ``naive_candles``, a plain Python loop per trade
that follows the rule literally. Prices and amounts are drawn on a binary grid
(multiples of 1/4 and 1/8) so float sums are exact and different summation
orders must give identical volumes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.data.aggregate import aggregate_trade_chunks, aggregate_trades, resample_candles
from tcp_lab.timeframes import close_time, parse_timeframe, validate_candles

BASE = 1_704_146_400_000_000  # 2024-01-01 22:00 UTC in epoch us: daily candles vary too
MIN = 60_000_000
TIMEFRAMES = ["1m", "2m", "3m", "5m", "15m", "30m", "1h", "4h", "1d"]
FAST = settings(max_examples=60, deadline=None)

offsets = st.one_of(
    st.integers(0, 240).map(lambda m: m * MIN),  # exactly on a boundary
    st.integers(0, 240).map(lambda m: m * MIN + 1),  # 1 us after
    st.integers(1, 240).map(lambda m: m * MIN - 1),  # 1 us before
    st.integers(0, 240 * MIN),
)
rows = st.lists(st.tuples(offsets, st.integers(1, 400), st.integers(0, 80)), max_size=60)


def frame(raw, ids=None):
    """Trades frame from (offset us, price*4, amount*8) tuples."""
    df = pd.DataFrame({
        "ts": pd.to_datetime(np.array([BASE + r[0] for r in raw], np.int64), unit="us", utc=True),
        "price": np.array([r[1] / 4 for r in raw], np.float64),
        "amount": np.array([r[2] / 8 for r in raw], np.float64),
    })
    if ids is not None:
        df["id"] = np.array(ids, np.int64)
    return df


@st.composite
def streams(draw, *, sorted_by_ts=False):
    """A trades frame, with or without ids, with re-sent duplicates (other prices)."""
    raw = draw(rows)
    if sorted_by_ts:
        raw = sorted(raw, key=lambda r: r[0])
    if not draw(st.booleans()) or not raw:
        return frame(raw)
    ids = draw(st.permutations(range(100, 100 + len(raw))))
    raw, ids = list(raw), list(ids)
    for _ in range(draw(st.integers(0, 5))):
        i = draw(st.integers(0, len(raw) - 1))
        # the copy goes after the original and, when sorted, before any later time
        j = i + 1
        if sorted_by_ts:
            while j < len(raw) and raw[j][0] == raw[i][0] and draw(st.booleans()):
                j += 1
        else:
            j = draw(st.integers(i + 1, len(raw)))
        raw.insert(j, (raw[i][0], raw[i][1] % 400 + 1, raw[i][2]))
        ids.insert(j, ids[i])
    return frame(raw, ids)


def naive_candles(trades: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """The rule, literally: drop repeated ids, sort stably, one dict entry per bucket."""
    has_id = "id" in trades.columns
    seen, kept = set(), []
    for row in trades.itertuples(index=False):
        if has_id:
            if row.id in seen:
                continue
            seen.add(row.id)
        kept.append(row)
    kept.sort(key=lambda r: (r.ts, r.id) if has_id else r.ts)
    buckets: dict[pd.Timestamp, dict] = {}
    for r in kept:
        b = buckets.get(end := close_time(r.ts, timeframe))
        if b is None:
            buckets[end] = {"open": r.price, "high": r.price, "low": r.price, "close": r.price,
                            "volume": r.amount, "trade_count": 1, "pv": r.price * r.amount}
        else:
            b["high"] = max(b["high"], r.price)
            b["low"] = min(b["low"], r.price)
            b["close"] = r.price
            b["volume"] += r.amount
            b["trade_count"] += 1
            b["pv"] += r.price * r.amount
    idx = pd.DatetimeIndex(list(buckets), name="ts", dtype="datetime64[us, UTC]")
    df = pd.DataFrame(list(buckets.values()), index=idx,
                      columns=["open", "high", "low", "close", "volume", "trade_count", "pv"])
    df = df.astype({c: "float64" for c in df.columns}).astype({"trade_count": "int64"})
    vwap = df.pop("pv") / df["volume"].where(df["volume"] > 0)
    return df.assign(vwap=vwap).sort_index()


def assert_same(got: pd.DataFrame, want: pd.DataFrame, *, vwap_rtol: float = 0.0) -> None:
    if vwap_rtol:
        np.testing.assert_allclose(got["vwap"], want["vwap"], rtol=vwap_rtol)
        got, want = got.drop(columns="vwap"), want.drop(columns="vwap")
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_freq=False)


@FAST
@given(streams(), st.sampled_from(TIMEFRAMES))
def test_any_stream_equals_the_naive_rule(trades, timeframe):
    got = aggregate_trades(trades, timeframe)
    assert_same(got, naive_candles(trades, timeframe))


@FAST
@given(streams(sorted_by_ts=True), st.sampled_from(TIMEFRAMES), st.data())
def test_any_chunking_gives_the_batch_result(trades, timeframe, data):
    n = len(trades)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    chunks = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        part = trades.iloc[lo:hi]
        chunks.append(part.iloc[data.draw(st.permutations(range(len(part))))])  # any order inside
    whole = pd.concat(chunks) if chunks else trades
    assert_same(aggregate_trade_chunks(chunks, timeframe), aggregate_trades(whole, timeframe))


@FAST
@given(streams(), st.sampled_from(TIMEFRAMES))
def test_volume_is_conserved_and_high_low_bracket(trades, timeframe):
    got = aggregate_trades(trades, timeframe)
    kept = trades.drop_duplicates("id") if "id" in trades.columns else trades
    assert got["volume"].sum() == kept["amount"].sum()
    assert got["trade_count"].sum() == len(kept)
    assert (got["high"] >= got[["open", "close"]].max(axis=1)).all()
    assert (got["low"] <= got[["open", "close"]].min(axis=1)).all()
    assert (got["trade_count"] > 0).all()
    assert (got.index.asi8 % parse_timeframe(timeframe).us == 0).all()
    pd.testing.assert_frame_equal(validate_candles(got, timeframe), got)


@FAST
@given(streams())
def test_resampling_chains_equal_aggregating_the_trades(trades):
    one = aggregate_trades(trades, "1m")
    direct = aggregate_trades(trades, "15m")
    assert_same(resample_candles(resample_candles(one, "5m"), "15m"), direct, vwap_rtol=1e-12)
    assert_same(resample_candles(one, "15m"), direct, vwap_rtol=1e-12)
    hour = aggregate_trades(trades, "1h")
    assert_same(resample_candles(resample_candles(one, "3m"), "1h"), hour, vwap_rtol=1e-12)


@FAST
@given(streams(), st.sampled_from([(a, b) for a in TIMEFRAMES for b in TIMEFRAMES
                                   if parse_timeframe(b).us % parse_timeframe(a).us == 0]))
def test_resampling_any_multiple_equals_aggregating_the_trades(trades, pair):
    src, dst = pair
    got = resample_candles(aggregate_trades(trades, src), dst)
    assert_same(got, aggregate_trades(trades, dst), vwap_rtol=1e-12)
