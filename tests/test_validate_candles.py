"""validate_candles (one compiled pass) against the numpy rules, written plainly here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcp_lab._validate_nb import RULES, first_bad_rows_nb
from tcp_lab.errors import DataError
from tcp_lab.testing import make_candles
from tcp_lab.timeframes import CANDLE_COLUMNS, parse_timeframe, validate_candles

FAST = settings(max_examples=300, deadline=None)
NAT = np.iinfo(np.int64).min
MAX = np.iinfo(np.int64).max
MINUTE = 60_000_000


# ---------------------------------------------------------------- the reference
def reference(candles: pd.DataFrame, timeframe: str | None):
    """The numpy rules: ``(frame, None)`` or ``(None, (phrase, first bad ts))``."""
    df = candles.set_index("ts") if "ts" in candles.columns else candles
    if "trade_count" not in df.columns:
        df = df.assign(trade_count=0)
    cols = list(CANDLE_COLUMNS) + (["vwap"] if "vwap" in df.columns else [])
    idx = df.index.tz_convert("UTC").as_unit("us").rename("ts")
    a = {c: df[c].to_numpy(dtype=np.float64) for c in cols}
    o, h, lo, c, v, n = (a[k] for k in CANDLE_COLUMNS)
    prices = np.stack([o, h, lo, c])
    checks = [
        ("non-positive price", lambda: ~np.isfinite(prices).all(0) | (prices <= 0).any(0)),
        ("negative volume", lambda: ~np.isfinite(v) | ~np.isfinite(n) | (v < 0) | (n < 0)),
        ("whole numbers", lambda: n % 1 != 0),  # all finite by now
        ("do not bracket", lambda: (h < lo) | (h < np.maximum(o, c)) | (lo > np.minimum(o, c))),
        ("duplicate timestamps", lambda: np.asarray(idx.duplicated(keep=False))),
    ]
    if timeframe is not None:
        us = parse_timeframe(timeframe).us
        checks.append(("close grid", lambda: np.asarray(idx.asi8 % us != 0)))
    for phrase, mask in checks:
        bad = mask()
        if bad.any():
            return None, (phrase, idx[bad][0])
    out = pd.DataFrame(a, index=idx)
    out["trade_count"] = a["trade_count"].astype(np.int64)
    if not idx.is_monotonic_increasing:
        out = out.sort_index()
    return out, None


# ----------------------------------------------------------- random candle frames
SPOILERS = (
    "nan price", "inf price", "zero price", "negative price", "high < low", "high < close",
    "low > open", "negative volume", "nan volume", "inf volume", "negative zero volume",
    "fractional count", "negative count", "nan count", "big count", "duplicate", "unsorted",
    "reversed", "off grid by 1 s", "off grid by 1 us", "NaT",
)


@st.composite
def candle_frames(draw):
    """Valid candles, then 0–2 spoilers; dtypes, zone, unit and layout vary."""
    n = draw(st.integers(0, 8))
    step = draw(st.sampled_from([1, 5]))  # minutes between candles (mostly)
    start = draw(st.integers(0, 100_000)) * 5 * MINUTE
    gaps = draw(st.lists(st.sampled_from([step, step, step, 2 * step, 1]), min_size=n,
                         max_size=n))
    ts = start + np.cumsum(np.array(gaps, dtype=np.int64)) * MINUTE
    price = st.floats(1.0, 1e6)
    o = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    c = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    up = np.array(draw(st.lists(st.floats(1.0, 1.5), min_size=n, max_size=n)))
    down = np.array(draw(st.lists(st.floats(0.5, 1.0), min_size=n, max_size=n)))
    h, lo = np.maximum(o, c) * up, np.minimum(o, c) * down
    v = np.array(draw(st.lists(st.floats(0.0, 1e3), min_size=n, max_size=n)))
    count = np.array(draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)),
                     dtype=np.int64)
    cols = {"open": o, "high": h, "low": lo, "close": c, "volume": v}
    count_kind = draw(st.sampled_from(["int64", "int64", "float64", "missing"]))
    spoilers = draw(st.lists(st.sampled_from(SPOILERS), max_size=2)) if n else []
    for spoiler in spoilers:
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        col = draw(st.sampled_from(["open", "high", "low", "close"]))
        if spoiler.endswith("price"):
            cols[col][i] = {"nan": np.nan, "inf": np.inf, "zero": 0.0, "negative": -1.0}[
                spoiler.split()[0]]
        elif spoiler == "high < low":
            h[i], lo[i] = lo[i], h[i]
        elif spoiler == "high < close":
            h[i] = c[i] * 0.99
        elif spoiler == "low > open":
            lo[i] = o[i] * 1.01
        elif spoiler.endswith(" volume"):
            v[i] = {"negative": -1.0, "nan": np.nan, "inf": np.inf, "negative zero": -0.0}[
                spoiler.removesuffix(" volume")]
        elif spoiler == "fractional count":
            count_kind, count = "float64", count.astype(np.float64)
            count[i] += 0.5
        elif spoiler == "negative count":
            count[i] = -1
        elif spoiler == "nan count":
            count_kind, count = "float64", count.astype(np.float64)
            count[i] = np.nan
        elif spoiler == "big count":  # survives as int64, not as float64
            count[i] = 2**53 + 1 if count.dtype == np.int64 else 2.0**53
        elif spoiler == "duplicate":
            ts[i] = ts[j]
        elif spoiler == "unsorted":
            ts = ts[draw(st.permutations(range(n)))]
        elif spoiler == "reversed":
            ts = ts[::-1].copy()
        elif spoiler.startswith("off grid"):
            ts[i] += 1_000_000 if spoiler.endswith("1 s") else 1
        elif spoiler == "NaT":
            ts[i] = NAT
    if count_kind != "missing":
        cols["trade_count"] = count.astype(count_kind)
    if draw(st.booleans()):
        cols["vwap"] = np.where(np.arange(n) % 2, np.nan, c)
    if draw(st.booleans()):
        cols["note"] = np.full(n, "x", dtype=object)
    names = draw(st.permutations(list(cols)))
    zone = draw(st.sampled_from(["UTC", "UTC", "Asia/Kolkata"]))
    unit = draw(st.sampled_from(["us", "us", "ns", "ms"]))
    index = pd.DatetimeIndex(ts.view("M8[us]")).tz_localize("UTC").tz_convert(zone)
    try:
        index = index.as_unit(unit)
    except pd.errors.OutOfBoundsDatetime:  # stamps beyond the ns range stay in µs
        pass
    index = index.rename(draw(st.sampled_from(["ts", None])))
    df = pd.DataFrame({k: cols[k] for k in names}, index=index)
    if draw(st.booleans()):
        df = df.rename_axis("ts").reset_index()
    if draw(st.booleans()):  # metadata validate_candles does not carry over
        df = df.rename_axis(columns="field")
        df.attrs["source"] = "test"
    timeframe = draw(st.sampled_from([None, "1m", "5m"]))
    return df, timeframe


@FAST
@given(candle_frames())
def test_validate_candles_accepts_exactly_what_the_numpy_rules_accept(case):
    candles, timeframe = case
    before = candles.copy(deep=True)
    expected, error = reference(candles, timeframe)
    if error is None:
        got = validate_candles(candles, timeframe)
        pd.testing.assert_frame_equal(got, expected)
        assert got is not candles
        assert got.attrs == expected.attrs
    else:
        phrase, first_bad = error
        with pytest.raises(DataError, match=phrase) as e:
            validate_candles(candles, timeframe)
        if phrase != "whole numbers":  # the one message that names no rows
            assert f" at {first_bad}" in str(e.value)
    pd.testing.assert_frame_equal(candles, before)  # the input is left alone


# ------------------------------------------------------------- the kernel alone
def _wrap(x: int) -> int:
    return (x + 2**63) % 2**64 - 2**63


SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 0.5, 1.5)
FIELDS = ("open", "high", "low", "close", "volume", "count")


@st.composite
def kernel_inputs(draw):
    """Mostly valid rows with a special value here and there; timestamps that step
    by the timeframe (either way), repeat, or jump, and wrap around int64's ends."""
    tf = draw(st.sampled_from([0, MINUTE, 5 * MINUTE, 7]))
    one = max(tf, 1)
    n = draw(st.integers(0, 10))
    ends = st.sampled_from([NAT, NAT + 1, NAT + one, -(2**63 // one) * one, MAX, MAX - MAX % one,
                            2**62 - 2**62 % one, -(2**62 // one) * one])
    start = draw(st.one_of(st.integers(-10, 10).map(lambda k: k * one), ends, ends,
                           st.integers(NAT, MAX)))
    step = st.sampled_from([tf] * 6 + [-tf, 0, 1, 2 * tf])
    steps = draw(st.lists(st.one_of(step, step, step, st.integers(NAT, MAX)),
                          min_size=n, max_size=n))
    ts, t = [], start
    for s in steps:
        ts.append(t)
        t = _wrap(t + s)
    f = {k: np.empty(n) for k in FIELDS}
    spoil = st.sampled_from([None] * 48 + [(k, x) for k in FIELDS for x in SPECIALS])
    shape = st.sampled_from(["ohlc", "ohlc", "any"])
    int_count = draw(st.booleans())
    for i in range(n):
        lo, a, b, h = sorted(draw(st.lists(st.floats(1.0, 3.0), min_size=4, max_size=4)))
        if draw(st.booleans()):
            a, b = b, a
        row = dict(zip(("low", "open", "close", "high"), (lo, a, b, h), strict=True))
        if draw(shape) == "any":  # any arrangement, mostly not a valid candle
            row = dict(zip(row, draw(st.permutations(list(row.values()))), strict=True))
        row |= {"volume": draw(st.sampled_from([0.0, 1.0])), "count": float(i)}
        spoiled = draw(spoil)
        if spoiled is not None:
            row[spoiled[0]] = spoiled[1]
        for k in FIELDS:
            f[k][i] = row[k]
    if int_count:
        count_i = np.array([x if np.isfinite(x) else -1 for x in f["count"]], dtype=np.int64)
        big = draw(st.lists(st.sampled_from([None] * 8 + [2**53, 2**53 + 1, MAX]),
                            min_size=n, max_size=n))
        count_i = np.array([c if b is None else b for c, b in zip(count_i, big, strict=True)],
                           dtype=np.int64)
        f["count"] = np.empty(0)
    else:
        count_i = np.empty(0, dtype=np.int64)
    return np.array(ts, dtype=np.int64), f, count_i, tf


def _case(ts, rows, tf, count_i=None):
    columns = np.array(rows, dtype=np.float64).reshape(-1, 6).T
    f = {k: np.ascontiguousarray(a) for k, a in zip(FIELDS, columns, strict=True)}
    if count_i is not None:
        f["count"] = np.empty(0)
    return np.array(ts, dtype=np.int64), f, np.array(count_i or [], dtype=np.int64), tf


OK_ROW = (2.0, 3.0, 1.0, 2.0, 1.0, 1.0)
HI = MAX - MAX % MINUTE  # the last 1m close time before int64 ends


@settings(max_examples=600, deadline=None)
@given(kernel_inputs())
@example(_case([MINUTE], [(np.nan, 3.0, 1.0, 4.0, 1.0, 1.0)], MINUTE))  # NaN open, high < close
@example(_case([MINUTE], [(2.0, 3.0, 2.5, np.nan, 1.0, 1.0)], MINUTE))  # NaN close, low > open
@example(_case([HI, _wrap(HI + MINUTE)], [OK_ROW] * 2, MINUTE))  # wraps to just off the grid
@example(_case([_wrap(HI + MINUTE), HI], [OK_ROW] * 2, MINUTE))
@example(_case([NAT + MINUTE, 2 * MINUTE], [OK_ROW] * 2, MINUTE))
@example(_case([0, 2**53 + 1], [OK_ROW] * 2, 0, count_i=[3, 2**53 + 1]))
def test_kernel_finds_the_first_row_of_each_numpy_mask(case):
    ts, f, count_i, tf = case
    o, h, lo, c, v, k = (f[x] for x in FIELDS)
    n = len(ts)
    prices = np.stack([o, h, lo, c]).reshape(4, n)
    none = np.zeros(n, dtype=bool)
    with np.errstate(invalid="ignore"):
        if len(count_i):
            volume = ~np.isfinite(v) | (v < 0) | (count_i < 0)
            whole, exact = none, count_i > 2**53
        else:
            volume = ~np.isfinite(v) | (v < 0) | ~np.isfinite(k) | (k < 0)
            whole, exact = k % 1 != 0, none
        masks = {
            "price": ~np.isfinite(prices).all(0) | (prices <= 0).any(0),
            "volume": volume,
            "whole": whole,
            "bracket": (h < lo) | (h < np.maximum(o, c)) | (lo > np.minimum(o, c)),
            "order": (ts == NAT) | np.r_[False, ts[1:] <= ts[:-1]][:n],
            "grid": ts % tf != 0 if tf else none,
            "exact": exact,
        }
    expected = [int(np.flatnonzero(masks[r])[0]) if masks[r].any() else -1 for r in RULES]
    assert first_bad_rows_nb(ts, o, h, lo, c, v, k, count_i, tf).tolist() == expected


def test_kernel_takes_read_only_arrays_with_its_one_signature():
    c = make_candles(10)
    arrays = [c[k].to_numpy() for k in CANDLE_COLUMNS[:5]]  # read-only views (pandas 3)
    assert not arrays[0].flags.writeable
    count = c["trade_count"].to_numpy()
    first = first_bad_rows_nb(c.index.asi8, *arrays, np.empty(0), count, MINUTE)
    assert (first == -1).all()
    first = first_bad_rows_nb(c.index.asi8.copy(), *(a.copy() for a in arrays), np.empty(0),
                              count.copy(), MINUTE)
    assert (first == -1).all()
    assert len(first_bad_rows_nb.signatures) == 1


# ---------------------------------------------------------------- no needless copies
def test_valid_candles_share_their_columns_copy_on_write():
    c = make_candles(50, "5m")
    out = validate_candles(c, "5m")
    assert out is not c
    for col in CANDLE_COLUMNS:
        assert np.shares_memory(out[col].to_numpy(), c[col].to_numpy())
    out.iloc[0, 0] = 1.0  # the result is writable; the input is not touched
    out.index.name = "other"
    out["extra"] = 0
    assert c.iloc[0, 0] != 1.0
    assert c.index.name == "ts"
    assert list(c.columns) == list(CANDLE_COLUMNS)


def test_only_columns_that_need_it_are_converted():
    c = make_candles(20).astype({"volume": "float32", "trade_count": "float64"})
    c = c.assign(note="x")[["note", *reversed(CANDLE_COLUMNS)]]
    out = validate_candles(c, "1m")
    assert list(out.columns) == list(CANDLE_COLUMNS)
    assert out.dtypes.tolist() == [np.float64] * 5 + [np.int64]
    assert np.shares_memory(out["open"].to_numpy(), c["open"].to_numpy())


def test_unsorted_candles_are_sorted_and_duplicates_named_in_input_order():
    c = make_candles(6)
    shuffled = c.iloc[[3, 0, 5, 1, 4, 2]]
    pd.testing.assert_frame_equal(validate_candles(shuffled, "1m"), c, check_freq=False)
    with pytest.raises(DataError, match=r"duplicate timestamps in 2 row\(s\) at "
                       r"2024-01-01 00:04:00\+00:00, 2024-01-01 00:04:00\+00:00"):
        validate_candles(pd.concat([shuffled, c.iloc[[3]]]), "1m")


def test_a_nat_stamp_sorts_last_without_a_timeframe_as_before():
    c = make_candles(3)
    c.index = pd.DatetimeIndex([c.index[1], pd.NaT, c.index[0]], name="ts")
    out = validate_candles(c)
    assert out.index[:2].tolist() == sorted(c.index[[0, 2]].tolist())
    assert out.index[2] is pd.NaT
