"""Conversions at the store's edge: names, times, JSON documents, trade batches."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from tcp_lab.errors import DataError
from tcp_lab.timeframes import to_utc_timestamp

__all__ = [
    "check_name",
    "utc",
    "utc_or_none",
    "py_time",
    "from_db_time",
    "dumps_json",
    "loads_json",
    "validate_trades",
    "trade_columns",
    "time_range",
    "TRADE_COLUMNS",
    "SIDES",
]

TRADE_COLUMNS = ("ts", "id", "price", "amount", "side")
SIDES = ("buy", "sell")


def check_name(value: object, what: str) -> str:
    """``value`` as a non-empty string, or a DataError naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{what} must be a non-empty string, got {value!r}")
    return value


def utc(value: object, name: str) -> pd.Timestamp:
    """A tz-aware UTC timestamp at µs resolution; naive values are rejected."""
    return to_utc_timestamp(value, name=name).as_unit("us")


def utc_or_none(value: object, name: str) -> pd.Timestamp | None:
    return None if value is None else utc(value, name)


def py_time(ts: pd.Timestamp | None) -> dt.datetime | None:
    """A ``datetime`` in UTC for a driver parameter."""
    return None if ts is None else ts.to_pydatetime()


def from_db_time(value: object) -> pd.Timestamp | None:
    """A timestamp read from either database as a UTC ``Timestamp`` (or None)."""
    if value is None or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:  # pragma: no cover - both backends return aware values
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").as_unit("us")


def time_range(column: sa.ColumnElement[Any], start: object, end: object
               ) -> list[sa.ColumnElement[bool]]:
    """Conditions for ``start <= column <= end`` (either bound optional, both tz-aware)."""
    lo, hi = utc_or_none(start, "start"), utc_or_none(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"start={lo} is after end={hi}", hint="swap them")
    out = []
    if lo is not None:
        out.append(column >= py_time(lo))
    if hi is not None:
        out.append(column <= py_time(hi))
    return out


def _plain(value: Any) -> Any:
    """JSON-ready copy of ``value``: numpy scalars unwrapped, NaN/inf → None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return [_plain(v) for v in list(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    return value


def dumps_json(value: Any, name: str) -> str | None:
    """Serialise ``value`` for a JSON column (None stays NULL)."""
    if value is None:
        return None
    try:
        return orjson.dumps(_plain(value), option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, ValueError, orjson.JSONEncodeError) as e:
        raise DataError(f"{name} cannot be stored as JSON ({e})") from None


def loads_json(value: Any) -> Any:
    """A JSON column's value as Python objects (PostgreSQL returns them parsed)."""
    return json.loads(value) if isinstance(value, str) else value


def _bad(frame: pd.DataFrame, mask: np.ndarray, limit: int = 3) -> str:
    rows = frame.loc[mask]
    shown = ", ".join(f"id {i} at {t}" for i, t in zip(rows["id"][:limit], rows["ts"][:limit],
                                                      strict=True))
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{len(rows)} trade(s): {shown}{more}"


def _side_codes(side: pd.Series) -> np.ndarray:
    """Position of each side in SIDES: -1 when missing, -2 when something else."""
    if isinstance(side.dtype, pd.CategoricalDtype):  # map the categories, not the rows
        cat = side.array
        if tuple(cat.categories) == SIDES:
            return cat.codes
        known = pd.Index(SIDES).get_indexer(cat.categories)
        known[known < 0] = -2
        return np.where(cat.codes >= 0, known[cat.codes], -1).astype(np.int8)
    codes = pd.Index(SIDES).get_indexer(side).astype(np.int8)
    codes[(codes < 0) & side.notna().to_numpy()] = -2
    return codes


def validate_trades(trades: pd.DataFrame, *, name: str = "trades") -> pd.DataFrame:
    """Check a trades frame and return it as ``ts id price amount side`` sorted by (ts, id).

    Rows repeated exactly are kept once; the same ``id`` with different values
    is an error. ``side`` comes back as a ``Categorical`` of ``"buy"``/``"sell"``.
    Input already in id order costs one vectorised pass (no per-row objects).

    Raises
    ------
    DataError
        Not a DataFrame, missing columns (``ts``, ``id``, ``price``, ``amount``),
        naive timestamps, non-integer ids, NaN or non-positive prices, NaN or
        negative amounts, a side other than ``"buy"``/``"sell"``/missing, or
        conflicting duplicates of one id. The message names the rows.
    """
    if not isinstance(trades, pd.DataFrame):
        raise DataError(f"{name}: expected a pandas DataFrame, got {type(trades).__name__}")
    df = trades.reset_index() if trades.index.name == "ts" else trades
    missing = [c for c in ("ts", "id", "price", "amount") if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}",
                        hint="trades need ts, id (the exchange's trade id), price, amount "
                        "and optionally side")
    ts = df["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(ts.dtype):
            raise DataError(f"{name}: timestamps have no time zone",
                            hint="trades are stamped in UTC: use .dt.tz_localize('UTC') "
                            "if they are")
        raise DataError(f"{name}: column ts must be tz-aware timestamps, got {ts.dtype}")
    try:
        if df["id"].dtype.kind in "iu":  # numpy integers: no NaN, no fractions
            ids = df["id"].to_numpy(np.int64)
        else:
            num = pd.to_numeric(df["id"], errors="raise")
            if num.isna().any() or (np.asarray(num, dtype="float64") % 1 != 0).any():
                raise ValueError("missing or fractional ids")
            ids = num.to_numpy(np.int64)
        price = pd.to_numeric(df["price"], errors="raise").to_numpy(np.float64)
        amount = pd.to_numeric(df["amount"], errors="raise").to_numpy(np.float64)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}: id, price and amount must be numbers ({e})") from None
    codes = _side_codes(df["side"]) if "side" in df.columns else np.full(len(df), -1, np.int8)
    out = pd.DataFrame({
        "ts": pd.DatetimeIndex(ts).tz_convert("UTC").as_unit("us"),  # no per-row objects
        "id": ids, "price": price, "amount": amount,
        "side": pd.Categorical.from_codes(np.maximum(codes, -1), categories=SIDES),
    })
    bad_price, bad_amount = _bad_values(price, amount)
    checks = [
        (out["ts"].isna().to_numpy(), "missing timestamp in"),
        (bad_price, "NaN, infinite or non-positive price in"),
        (bad_amount, "NaN, infinite or negative amount in"),
    ]
    if "side" in df.columns:
        checks.append((codes == -2, "side other than 'buy'/'sell' in"))
    for mask, what in checks:
        if mask.any():
            raise DataError(f"{name}: {what} {_bad(out, mask)}")
    if len(out) > 1 and not bool((ids[1:] > ids[:-1]).all()):  # else no id repeats
        out = out.drop_duplicates(ignore_index=True)
        dup = out.duplicated(["id"], keep=False).to_numpy()
        if dup.any():
            raise DataError(f"{name}: conflicting rows for the same trade in {_bad(out, dup)}",
                            hint="an exchange trade id may appear once per batch")
    t, i = pd.DatetimeIndex(out["ts"]).asi8, out["id"].to_numpy()
    if bool(((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (i[1:] > i[:-1]))).all()):
        return out  # already in (ts, id) order
    return out.sort_values(["ts", "id"], ignore_index=True)


def _bad_values(price: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the trades with a bad price (NaN, infinite, zero or negative) and a bad
    amount (NaN, infinite or negative)."""
    return ~((price > 0) & (price < np.inf)), ~((amount >= 0) & (amount < np.inf))


def _columns_of(df: pd.DataFrame) -> dict[str, Any]:
    return {"ts": pd.DatetimeIndex(df["ts"]).asi8, "id": df["id"].to_numpy(),
            "price": df["price"].to_numpy(), "amount": df["amount"].to_numpy(),
            "side": df["side"].array}


def _arrays(trades: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The checked columns of a mapping of trade arrays, or None when it needs the frame
    path (other dtypes, ids not strictly increasing, or a value to name in an error)."""
    missing = [c for c in ("ts", "id", "price", "amount") if c not in trades]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}",
                        hint="trades need ts, id (the exchange's trade id), price, amount "
                        "and optionally side")
    ts, ids = np.asarray(trades["ts"]), np.asarray(trades["id"])
    price, amount = np.asarray(trades["price"]), np.asarray(trades["amount"])
    if ts.dtype != np.int64 or ids.dtype.kind not in "iu" or price.dtype.kind not in "fiu" \
            or amount.dtype.kind not in "fiu":
        return None
    n = len(ts)
    if not len(ids) == len(price) == len(amount) == n:
        raise DataError(f"{name}: arrays ts, id, price and amount differ in length")
    ids, price, amount = (ids.astype(np.int64, copy=False), price.astype(np.float64, copy=False),
                          amount.astype(np.float64, copy=False))
    side = trades.get("side")
    if side is None:
        side = pd.Categorical.from_codes(np.full(n, -1, np.int8), categories=SIDES)
    elif len(side) != n:
        raise DataError(f"{name}: arrays ts and side differ in length")
    elif not (isinstance(side, pd.Categorical) and tuple(side.categories) == SIDES):
        codes = _side_codes(pd.Series(side, copy=False))
        if (codes == -2).any():
            return None
        side = pd.Categorical.from_codes(codes, categories=SIDES, validate=False)
    ok = n < 2 or bool((ids[1:] > ids[:-1]).all())  # no id twice, nothing to de-duplicate
    ok = ok and (n == 0 or int(ts.min()) != np.iinfo(np.int64).min)  # no NaT
    if not ok or any(bool(bad.any()) for bad in _bad_values(price, amount)):
        return None
    return {"ts": ts, "id": ids, "price": price, "amount": amount, "side": side}


def trade_columns(trades: pd.DataFrame | Mapping[str, Any], *, name: str = "trades"
                  ) -> dict[str, Any]:
    """Trades checked as the store writes them: one array per column.

    ``ts`` as int64 epoch microseconds (UTC), ``id`` int64, ``price`` and
    ``amount`` float64, ``side`` a ``Categorical`` of ``"buy"``/``"sell"``. A
    DataFrame goes through :func:`validate_trades`; so does a mapping of arrays,
    unless it is what an importer reads from an exchange's dump (``ts`` int64
    epoch µs, numeric columns, ids strictly increasing, valid values): that is
    checked in a few vectorised passes, without building a frame (nothing to
    sort or de-duplicate). Both raise the same errors.

    Raises
    ------
    DataError
        As :func:`validate_trades`.
    """
    if isinstance(trades, Mapping):
        columns = _arrays(trades, name)
        if columns is not None:
            return columns
        ts = np.asarray(trades["ts"])
        trades = pd.DataFrame({
            **{k: v for k, v in trades.items() if k != "ts"},
            "ts": pd.to_datetime(ts, unit="us", utc=True) if ts.dtype.kind in "iu" else ts})
    return _columns_of(validate_trades(trades, name=name))
