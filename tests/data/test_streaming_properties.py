"""Streaming == batch for every trade stream, batch split and clock tick (hypothesis).

The batch side, :func:`aggregate_trades`, is itself checked against a naive
per-trade loop in ``test_aggregate_properties.py``. Prices and amounts lie on a
binary grid so sums are exact whatever order late trades arrive in.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.data.aggregate import aggregate_trades
from tcp_lab.data.streaming import ClosedCandle, StreamingAggregator

BASE = 1_704_146_400_000_000  # 2024-01-01 22:00 UTC, epoch us
MIN = 60_000_000
TIMEFRAMES = ["1m", "3m", "5m", "15m", "1h", "1d"]
FAST = settings(max_examples=40, deadline=None)

offsets = st.one_of(
    st.integers(0, 150).map(lambda m: m * MIN),
    st.integers(0, 150).map(lambda m: m * MIN + 1),
    st.integers(1, 150).map(lambda m: m * MIN - 1),
    st.integers(0, 150 * MIN),
)


@st.composite
def streams(draw, *, in_order: bool):
    """(trades frame in arrival order, timeframes); re-sent duplicates follow originals."""
    raw = draw(st.lists(st.tuples(offsets, st.integers(1, 400), st.integers(0, 80)),
                        max_size=50))
    if in_order:
        raw.sort(key=lambda r: r[0])
    with_ids = draw(st.booleans()) and bool(raw)
    ids = list(range(100, 100 + len(raw)))
    if with_ids:
        ids = draw(st.permutations(ids))
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(raw) - 1))
            j = i + 1  # in order: right after the original (same time)
            if not in_order:
                j = draw(st.integers(i + 1, len(raw)))
            raw.insert(j, (raw[i][0], raw[i][1] % 400 + 1, raw[i][2]))
            ids.insert(j, ids[i])
    df = pd.DataFrame({
        "ts": pd.to_datetime(np.array([BASE + r[0] for r in raw], np.int64), unit="us", utc=True),
        "price": [r[1] / 4 for r in raw], "amount": [r[2] / 8 for r in raw],
    }).astype({"price": "float64", "amount": "float64"})
    if with_ids:
        df["id"] = np.array(ids, np.int64)
    tfs = draw(st.lists(st.sampled_from(TIMEFRAMES), min_size=1, max_size=3, unique=True))
    return df, tfs


def feed(agg: StreamingAggregator, trades: pd.DataFrame, data, *, ticks: str) -> list:
    """Feed ``trades`` in random pieces (frames, arrays, single trades) with clock ticks.

    ``ticks="safe"`` ticks strictly before the next trade (never makes a trade
    late); ``ticks="any"`` ticks anywhere in the stream's time range.
    """
    out: list[ClosedCandle] = []
    us = trades["ts"].array.as_unit("us").asi8
    i, n = 0, len(trades)
    while i < n:
        size = data.draw(st.integers(1, 8))
        part = trades.iloc[i:i + size]
        how = data.draw(st.sampled_from(["frame", "arrays", "single"]))
        if how == "frame":
            out += agg.add(part)
        elif how == "arrays":
            cols = {"ts": us[i:i + size], "price": part["price"].to_numpy(),
                    "amount": part["amount"].to_numpy()}
            if "id" in part.columns:
                cols["id"] = part["id"].to_numpy()
            out += agg.add(cols)
        else:
            for k, row in enumerate(part.itertuples(index=False)):
                out += agg.add_trade(int(us[i + k]), row.price, row.amount,
                                     getattr(row, "id", None))
        i += len(part)
        if data.draw(st.booleans()):
            if ticks == "safe" and i < n:
                now = data.draw(st.integers(int(us[i - 1]), int(us[i]) - 1)) \
                    if us[i] > us[i - 1] else None
            elif ticks == "safe":
                now = data.draw(st.integers(int(us[-1]), int(us[-1]) + 2 * 86_400_000_000))
            else:
                now = data.draw(st.integers(BASE, BASE + 151 * MIN))
            if now is not None:
                out += agg.tick(now)
    return out


def upserted(emitted: list[ClosedCandle], agg: StreamingAggregator, tf: str) -> pd.DataFrame:
    """What a store holds after upserting every emission, plus the still-open candle."""
    return ClosedCandle.to_frame([*emitted, *agg.flush()], tf)


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want.astype({"trade_count": "int64"}), check_exact=True,
                                  check_freq=False)


@FAST
@given(streams(in_order=True), st.data())
def test_in_order_stream_with_ticks_equals_batch_and_emits_each_candle_once(stream, data):
    trades, tfs = stream
    agg = StreamingAggregator(tfs, late_window="1h")
    emitted = feed(agg, trades, data, ticks="safe")
    assert not any(c.corrected for c in emitted)
    keys = [(c.timeframe, c.ts) for c in emitted]
    assert len(keys) == len(set(keys))
    assert all(c.closed for c in emitted) and not any(c.closed for c in agg.flush())
    for tf in tfs:
        same(upserted(emitted, agg, tf), aggregate_trades(trades, tf))
    assert agg.metrics["late_trades"] == agg.metrics["too_late_trades"] == 0
    assert agg.metrics["candles_closed"] == len(emitted)


@FAST
@given(streams(in_order=False), st.data())
def test_any_order_and_ticks_with_a_wide_window_converges_to_batch(stream, data):
    trades, tfs = stream
    agg = StreamingAggregator(tfs, late_window="2d")
    emitted = feed(agg, trades, data, ticks="any")
    for tf in tfs:
        same(upserted(emitted, agg, tf), aggregate_trades(trades, tf))
    m = agg.metrics
    dups = len(trades) - trades["id"].nunique() if "id" in trades.columns else 0
    assert (m["trades"], m["duplicates"], m["too_late_trades"]) == (len(trades), dups, 0)
    assert m["candles_corrected"] == sum(c.corrected for c in emitted)


@FAST
@given(streams(in_order=False), st.data(), st.sampled_from([0, 60, 300]))
def test_too_late_trades_are_reported_never_lost(stream, data, window_s):
    trades, tfs = stream
    agg = StreamingAggregator(tfs, late_window=window_s)
    emitted = feed(agg, trades, data, ticks="any")
    late = agg.pop_too_late()
    assert agg.metrics["too_late_trades"] == len(late)
    assert agg.pop_too_late().empty
    # every reported trade came from the input; the candles equal the batch result over
    # the (de-duplicated) trades that were not reported
    cols = ["ts", "price", "amount"] + (["id"] if "id" in trades.columns else [])
    gone = Counter(late[cols].astype({"id": "int64"} if "id" in cols else {})
                   .itertuples(index=False, name=None))
    assert not gone - Counter(trades[cols].itertuples(index=False, name=None))
    kept = trades.drop_duplicates("id") if "id" in cols else trades
    keep = []
    for row in kept[cols].itertuples(index=False, name=None):
        if gone[row]:
            gone[row] -= 1
        else:
            keep.append(row)
    accepted = pd.DataFrame(keep, columns=cols).astype(trades[cols].dtypes.to_dict())
    for tf in tfs:
        same(upserted(emitted, agg, tf), aggregate_trades(accepted, tf))
