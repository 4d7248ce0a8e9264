"""Timeframes, the right-aligned bucket rule, and the candle schema.

A candle is stamped with its **close** time ``T`` and holds the trades with time
in ``(T - tf, T]``: the 5m candle stamped 09:05:00 holds trades after 09:00:00
up to and including 09:05:00.000. Buckets are anchored at the Unix epoch, so
1d candles close at 00:00 UTC.

Candles everywhere in tcp_lab are a DataFrame with the columns
``open high low close volume trade_count`` (optionally ``vwap``) and a
tz-aware UTC ``DatetimeIndex`` named ``ts`` at microsecond resolution
(``datetime64[us, UTC]``, pandas 3's default, and what DuckDB and PostgreSQL
store).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from functools import lru_cache

import numpy as np
import pandas as pd

from tcp_lab.errors import DataError

__all__ = [
    "TIMEFRAMES",
    "CANDLE_COLUMNS",
    "OPTIONAL_CANDLE_COLUMNS",
    "TS_DTYPE",
    "Timeframe",
    "parse_timeframe",
    "close_time",
    "to_utc_timestamp",
    "validate_candles",
    "empty_candles",
]

#: The timeframes the collector builds by default.
TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume", "trade_count")
OPTIONAL_CANDLE_COLUMNS = ("vwap",)
TS_DTYPE = "datetime64[us, UTC]"

_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
_DAY = 86400
_PATTERN = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A candle length that divides a UTC day evenly.

    Attributes
    ----------
    name
        Canonical spelling (``"5m"``, ``"1h"``, ``"1d"``): the largest unit
        that divides the length, so ``"60m"`` parses to ``"1h"``.
    seconds
        Length in seconds.
    """

    name: str
    seconds: int

    @property
    def ms(self) -> int:
        """Length in milliseconds (what exchanges use)."""
        return self.seconds * 1000

    @property
    def us(self) -> int:
        """Length in microseconds (tcp_lab's timestamp resolution)."""
        return self.seconds * 1_000_000

    @property
    def delta(self) -> pd.Timedelta:
        """Length as a ``pandas.Timedelta``."""
        return pd.Timedelta(seconds=self.seconds)

    @property
    def per_year(self) -> float:
        """Candles in a 365-day crypto year (for annualising returns)."""
        return 365 * _DAY / self.seconds

    def __str__(self) -> str:
        return self.name


def _canonical_name(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError(seconds)  # unreachable: seconds is a multiple of 60


@lru_cache(maxsize=64)
def _parse(text: str) -> Timeframe:
    m = _PATTERN.match(text)
    if not m:
        raise DataError(
            f"timeframe {text!r} is not of the form N·unit with unit m, h or d",
            hint="use one of " + ", ".join(TIMEFRAMES) + " (or e.g. 30m, 2h)",
        )
    n, unit = int(m.group(1)), m.group(2)
    seconds = n * _UNIT_SECONDS[unit]
    if n <= 0 or seconds > _DAY or _DAY % seconds != 0:
        raise DataError(
            f"timeframe {text!r} does not divide a UTC day evenly",
            hint="use one of " + ", ".join(TIMEFRAMES) + " (or e.g. 30m, 2h, 12h)",
        )
    return Timeframe(_canonical_name(seconds), seconds)


def parse_timeframe(timeframe: str | Timeframe) -> Timeframe:
    """Parse ``"5m"``, ``"1h"``, ``"1d"``… into a :class:`Timeframe`.

    Parameters
    ----------
    timeframe
        ``N`` followed by ``m``, ``h`` or ``d``; the length must divide a day.

    Raises
    ------
    DataError
        For anything else (``"7m"``, ``"1w"``, ``"2d"``, ``"abc"``).

    Examples
    --------
    >>> parse_timeframe("60m").name
    '1h'
    """
    if isinstance(timeframe, Timeframe):
        return timeframe
    if not isinstance(timeframe, str):
        raise DataError(f"timeframe must be a string like '5m', got {timeframe!r}")
    return _parse(timeframe)


def to_utc_timestamp(value, *, name: str = "timestamp") -> pd.Timestamp:
    """Convert ``value`` to a tz-aware UTC ``Timestamp``; reject naive datetimes.

    Strings with an explicit offset (``"2024-01-01T00:00Z"``) and tz-aware
    datetimes are converted to UTC; naive values are rejected rather than
    guessed, because guessing silently shifts data by the local offset.
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}={value!r} is not a timestamp ({e})") from None
    if ts is pd.NaT:
        raise DataError(f"{name} is NaT")
    if ts.tzinfo is None:
        raise DataError(
            f"{name}={value!r} has no time zone",
            hint="pass a UTC time, e.g. pd.Timestamp('2024-01-01', tz='UTC') or "
            "'2024-01-01T00:00Z'",
        )
    return ts.tz_convert("UTC")


def close_time(ts, timeframe: str | Timeframe) -> pd.Timestamp:
    """The close time of the candle that holds a trade at ``ts`` (right-aligned).

    Examples
    --------
    >>> close_time(pd.Timestamp("2024-01-01 09:05", tz="UTC"), "5m")
    Timestamp('2024-01-01 09:05:00+0000', tz='UTC')
    >>> close_time(pd.Timestamp("2024-01-01 09:05:00.001", tz="UTC"), "5m")
    Timestamp('2024-01-01 09:10:00+0000', tz='UTC')
    """
    tf = parse_timeframe(timeframe)
    us = to_utc_timestamp(ts).value // 1000  # Timestamp.value is always in ns
    closed = -(-us // tf.us) * tf.us  # ceil to the grid: a boundary maps to itself
    return pd.Timestamp(closed, unit="us", tz="UTC")


def empty_candles() -> pd.DataFrame:
    """An empty candle frame with the right dtypes and index."""
    idx = pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts")
    df = pd.DataFrame({c: pd.Series([], dtype="float64") for c in CANDLE_COLUMNS}, index=idx)
    return df.astype({"trade_count": "int64"})


def _describe_rows(index: pd.Index, mask: np.ndarray, limit: int = 3) -> str:
    bad = index[mask]
    shown = ", ".join(str(t) for t in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} row(s) at {shown}{more}"


def _utc_index(idx: pd.Index, name: str) -> pd.DatetimeIndex:
    if not isinstance(idx, pd.DatetimeIndex):
        try:
            idx = pd.DatetimeIndex(idx)
        except (TypeError, ValueError) as e:
            raise DataError(
                f"{name}: index must be timestamps (candle close times), got {idx.dtype}",
                hint="set a DatetimeIndex or a 'ts' column",
            ) from e
    tz: tzinfo | None = idx.tz
    if tz is None:
        raise DataError(
            f"{name}: timestamps have no time zone",
            hint="candles are stamped in UTC: use df.tz_localize('UTC') if they are UTC",
        )
    idx = idx.tz_convert("UTC")
    if idx.unit != "us":  # as_unit copies even when the unit is already right
        idx = idx.as_unit("us")
    return idx.rename("ts")


def validate_candles(
    candles: pd.DataFrame,
    timeframe: str | Timeframe | None = None,
    *,
    name: str = "candles",
) -> pd.DataFrame:
    """Check a candle frame and return it normalised.

    Normalised means: index ``ts`` as ``datetime64[us, UTC]`` sorted ascending,
    float64 prices/volume, int64 ``trade_count``, only the schema's columns.
    A ``ts`` column is used as the index when present. Non-UTC tz-aware times
    are converted (the instant is kept); naive times are rejected. Columns
    that are already right are not copied (the result shares them with
    ``candles``, copy-on-write).

    Parameters
    ----------
    candles
        The frame to check.
    timeframe
        When given, every timestamp must lie on this timeframe's close grid.
    name
        How to call the frame in error messages (``"candles for BTC/USDT 1m"``).

    Returns
    -------
    DataFrame
        The normalised candles (a new frame, never ``candles`` itself).

    Raises
    ------
    DataError
        Missing columns, NaN or non-positive prices, negative volume,
        ``high < low`` or a high/low that does not bracket open and close,
        duplicate timestamps, naive timestamps, timestamps off the grid. The
        message names the offending rows.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> validate_candles(make_candles(3, "5m"), "5m").index.dtype
    datetime64[us, UTC]
    >>> validate_candles(make_candles(3, "5m"), "1h")
    Traceback (most recent call last):
    ...
    tcp_lab.errors.DataError: candles: timestamps not on the 1h close grid in 3 row(s) at ...
    """
    if not isinstance(candles, pd.DataFrame):
        raise DataError(f"{name}: expected a pandas DataFrame, got {type(candles).__name__}")
    df = candles
    if "ts" in df.columns:
        df = df.set_index("ts")
    missing = [c for c in CANDLE_COLUMNS if c not in df.columns]
    if "trade_count" in missing and len(missing) == 1:
        df = df.assign(trade_count=0)
        missing = []
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)}",
            hint="candles need " + " ".join(CANDLE_COLUMNS),
        )
    cols = list(CANDLE_COLUMNS) + [c for c in OPTIONAL_CANDLE_COLUMNS if c in df.columns]
    idx = _utc_index(df.index, name)
    arrays: dict[str, np.ndarray] = {}
    for c in cols:
        a = df[c].to_numpy()
        if a.dtype.kind not in "fiub":
            try:
                a = pd.to_numeric(a, errors="raise")
            except (ValueError, TypeError) as e:
                raise DataError(f"{name}: non-numeric values in column {c!r} ({e})") from None
        keep = c == "trade_count" and a.dtype == np.int64  # the one pass takes int64 counts
        arrays[c] = a if keep else np.asarray(a, dtype=np.float64)
    out = _checked_in_one_pass(df, cols, idx, arrays, timeframe)
    if out is not None:
        return out
    arrays["trade_count"] = np.asarray(arrays["trade_count"], dtype=np.float64)
    return _check_with_numpy(idx, arrays, timeframe, name)


def _checked_in_one_pass(
    df: pd.DataFrame,
    cols: list[str],
    idx: pd.DatetimeIndex,
    arrays: dict[str, np.ndarray],
    timeframe: str | Timeframe | None,
) -> pd.DataFrame | None:
    """The normalised candles if one compiled pass finds them valid, else None.

    None leaves the verdict (and the message naming the rows) to the numpy
    checks: a broken rule, a bad timeframe, duplicate column names, NaT.
    """
    from tcp_lab._validate_nb import ORDER, first_bad_rows  # numba loads on first use

    try:
        tf_us = 0 if timeframe is None else parse_timeframe(timeframe).us
    except DataError:
        return None  # raised by the numpy checks, after any error in the data
    if not df.columns.is_unique:
        return None
    first = first_bad_rows(idx.asi8, *(arrays[c] for c in CANDLE_COLUMNS), tf_us)
    if (np.delete(first, ORDER) >= 0).any():
        return None
    out = _frame(df, cols, idx, arrays)
    if first[ORDER] < 0:
        return out
    out = out.sort_index()  # unsorted: sort, then duplicates (and NaT) are out of order
    return out if (np.diff(out.index.asi8) > 0).all() else None


def _frame(
    df: pd.DataFrame, cols: list[str], idx: pd.DatetimeIndex, arrays: dict[str, np.ndarray]
) -> pd.DataFrame:
    """``df`` with index ``idx`` and only ``cols``, converting only what needs it."""
    out = df.set_axis(idx, axis=0)  # a new frame, sharing the columns copy-on-write
    if list(out.columns) != cols:
        out = out[cols]
    for c, dtype in out.dtypes.items():
        if c == "trade_count":
            if dtype != np.int64:
                out[c] = arrays[c].astype(np.int64)
        elif dtype != np.float64:
            out[c] = arrays[c]
    out.columns = pd.Index(cols)  # not the caller's column index (its name, its dtype)
    out.attrs = {}
    return out


def _check_with_numpy(
    idx: pd.DatetimeIndex,
    arrays: dict[str, np.ndarray],
    timeframe: str | Timeframe | None,
    name: str,
) -> pd.DataFrame:
    """The rules in numpy, naming every offending row; sorts unsorted candles."""
    out = pd.DataFrame(arrays, index=idx, copy=False)
    prices = np.column_stack([arrays[c] for c in ("open", "high", "low", "close")])
    bad = ~np.isfinite(prices).all(axis=1) | (prices <= 0).any(axis=1)
    if bad.any():
        raise DataError(
            f"{name}: NaN, infinite or non-positive price in {_describe_rows(idx, bad)}"
        )
    vol = np.column_stack([arrays["volume"], arrays["trade_count"]])
    bad = ~np.isfinite(vol).all(axis=1) | (vol < 0).any(axis=1)
    if bad.any():
        raise DataError(
            f"{name}: NaN or negative volume/trade_count in {_describe_rows(idx, bad)}"
        )
    if (arrays["trade_count"] % 1 != 0).any():
        raise DataError(f"{name}: trade_count must be whole numbers")
    o, h, lo, c = prices.T
    bad = (h < lo) | (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
    if bad.any():
        raise DataError(
            f"{name}: high/low do not bracket open and close (high < low or similar) in "
            + _describe_rows(idx, bad)
        )
    dup = idx.duplicated(keep=False)
    if dup.any():
        raise DataError(
            f"{name}: duplicate timestamps in {_describe_rows(idx, np.asarray(dup))}",
            hint="a candle key (exchange, symbol, timeframe, ts) may appear once per batch",
        )
    if timeframe is not None:
        tf = parse_timeframe(timeframe)
        off = np.asarray(idx.asi8 % tf.us != 0)
        if off.any():
            raise DataError(
                f"{name}: timestamps not on the {tf.name} close grid in "
                + _describe_rows(idx, off),
                hint="candles are stamped with their close time, e.g. 09:05:00 for 09:00–09:05",
            )
    out["trade_count"] = arrays["trade_count"].astype(np.int64)
    if not idx.is_monotonic_increasing:
        out = out.sort_index()
    return out
