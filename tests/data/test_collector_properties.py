"""Rules of the collector's pure helpers that must hold for all inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.data.backfill import compress_ranges, plan_ranges
from tcp_lab.data.providers.base import grid
from tcp_lab.data.providers.ccxt_provider import klines_to_candles
from tcp_lab.timeframes import close_time, parse_timeframe

T0 = pd.Timestamp("2024-01-01", tz="UTC")
TIMEFRAMES = st.sampled_from(["1m", "5m", "15m", "1h", "4h", "1d"])


def slot(tf: str, k: int) -> pd.Timestamp:
    return T0 + k * parse_timeframe(tf).delta


@settings(max_examples=60, deadline=None)
@given(tf=TIMEFRAMES, first=st.integers(0, 50), n=st.integers(-3, 60),
       stored=st.none() | st.tuples(st.integers(0, 80), st.integers(0, 30)))
def test_planned_ranges_and_the_stored_span_cover_the_request_without_overlap(tf, first, n,
                                                                              stored):
    lo, hi = slot(tf, first), slot(tf, first + n)
    span = None if stored is None else (slot(tf, stored[0]), slot(tf, stored[0] + stored[1]))
    ranges = plan_ranges(lo, hi, span, tf)
    planned = [t for a, b in ranges for t in grid(a, b, tf)]
    assert len(planned) == len(set(planned))  # no slot fetched twice
    have = set() if span is None else set(grid(*span, tf))
    assert not have & set(planned)  # nothing stored is fetched again
    assert set(grid(lo, hi, tf)) <= have | set(planned)  # everything asked is covered
    assert all(lo <= a <= b <= hi for a, b in ranges)


@settings(max_examples=60, deadline=None)
@given(tf=TIMEFRAMES, ks=st.sets(st.integers(0, 300), max_size=40))
def test_compressed_runs_expand_back_to_the_stamps(tf, ks):
    stamps = pd.DatetimeIndex(sorted(slot(tf, k) for k in ks)).as_unit("us")
    runs = compress_ranges(stamps, tf)
    back = [t for a, b, n in runs for t in grid(a, b, tf)]
    assert back == list(stamps) and sum(n for *_, n in runs) == len(stamps)
    assert all(b2 - a1 > parse_timeframe(tf).delta for (_, a1, _), (b2, _, _)
               in zip(runs, runs[1:], strict=False))  # runs are maximal


@settings(max_examples=60, deadline=None)
@given(tf=TIMEFRAMES, k=st.integers(0, 10_000),
       volumes=st.lists(st.sampled_from([0.0, 0.5, 2.0]), min_size=1, max_size=20))
def test_klines_are_stamped_open_plus_timeframe_and_empty_ones_dropped(tf, k, volumes):
    t = parse_timeframe(tf)
    opens = [int((slot(tf, k + i)).value // 1_000_000) for i in range(len(volumes))]
    rows = [[o, 10.0, 11.0, 9.0, 10.5, v] for o, v in zip(opens, volumes, strict=True)]
    candles = klines_to_candles(rows, tf)
    want = [pd.Timestamp((o + t.ms) * 1000, unit="us", tz="UTC")
            for o, v in zip(opens, volumes, strict=True) if v > 0]
    assert list(candles.index) == want
    # a trade inside the kline [open, open + tf) lands in the candle it is stamped with,
    # except exactly at the open, which tcp_lab puts in the previous candle
    for ts in candles.index:
        inside = ts - t.delta + pd.Timedelta(milliseconds=1)
        assert close_time(inside, tf) == ts
    assert np.all(candles["volume"].to_numpy() > 0)
