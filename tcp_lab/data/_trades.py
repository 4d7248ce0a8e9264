"""Trades as validated numpy arrays: conversion, row-naming errors, de-duplication, order.

Shared by :mod:`tcp_lab.data.aggregate` (batch and chunked) and
:mod:`tcp_lab.data.streaming` (live), so both read, validate, de-duplicate and
order trades the same way:

- order: stable by ``ts``, then by ``id`` when ids are present; ties without ids
  keep arrival order (the first to arrive is the earlier trade);
- duplicates: a repeated ``id`` is dropped, the first occurrence is kept.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from tcp_lab.errors import DataError

__all__ = ["EMPTY_IDS", "TradeArrays", "trade_arrays", "readonly", "drop_duplicate_ids",
           "sort_trades", "check_values", "raise_bad_values"]

_NAT = np.iinfo(np.int64).min
EMPTY_IDS = np.empty(0, np.int64)
EMPTY_IDS.flags.writeable = False


def readonly(values: Any, dtype: Any) -> np.ndarray:
    """``values`` as a read-only C-contiguous array of ``dtype`` (no copy when possible).

    Kernels always receive read-only arrays so numba compiles one specialisation.
    """
    a = np.ascontiguousarray(values, dtype=dtype)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


class TradeArrays(NamedTuple):
    """Trades as arrays: ``ts`` int64 epoch us, ``price``/``amount`` float64, ``ids`` int64."""

    ts: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    ids: np.ndarray | None = None
    #: row labels of the source frame, for error messages (positions when None)
    labels: pd.Index | None = None

    def take(self, order: np.ndarray) -> TradeArrays:
        """The trades at positions ``order`` (labels follow)."""
        return TradeArrays(
            readonly(self.ts[order], np.int64),
            readonly(self.price[order], np.float64),
            readonly(self.amount[order], np.float64),
            None if self.ids is None else readonly(self.ids[order], np.int64),
            None if self.labels is None else self.labels[order],
        )

    @property
    def n(self) -> int:
        """Number of trades."""
        return int(self.ts.shape[0])


def _describe(arr: TradeArrays, mask: np.ndarray, column: str | None, limit: int = 3) -> str:
    pos = np.flatnonzero(mask)
    parts = []
    for i in pos[:limit]:
        label = arr.labels[i] if arr.labels is not None else i
        ts = arr.ts[i]
        when = "NaT" if ts == _NAT else str(pd.Timestamp(int(ts), unit="us", tz="UTC"))
        value = f", {column}={float(getattr(arr, column)[i])!r}" if column else ""
        parts.append(f"row {label} (ts {when}{value})")
    more = f" and {len(pos) - limit} more" if len(pos) > limit else ""
    return f"{len(pos)} row(s): " + "; ".join(parts) + more


def _ts_us(col: pd.Series, name: str) -> np.ndarray:
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "us":
        return readonly(col.array.asi8, np.int64)  # no copy
    if not isinstance(dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            try:
                col = pd.to_datetime(col)
            except (TypeError, ValueError) as e:
                raise DataError(f"{name}: column 'ts' is not timestamps ({e})") from None
            dtype = col.dtype
        if pd.api.types.is_datetime64_dtype(dtype):
            raise DataError(
                f"{name}: column 'ts' has no time zone ({dtype}, all {len(col)} rows)",
                hint="trades are stamped in UTC: use trades['ts'].dt.tz_localize('UTC') "
                "if the times are UTC",
            )
        if not isinstance(dtype, pd.DatetimeTZDtype):
            raise DataError(
                f"{name}: column 'ts' must be tz-aware datetimes, got {dtype}",
                hint="convert epoch ms with pd.to_datetime(ms, unit='ms', utc=True)",
            )
    return readonly(col.array.as_unit("us").asi8, np.int64)


def _floats(col: pd.Series) -> np.ndarray:
    if isinstance(col.dtype, np.dtype):  # numpy-backed: no copy for float64, NaN kept
        return readonly(col.to_numpy(np.float64), np.float64)
    return readonly(col.to_numpy(np.float64, na_value=np.nan), np.float64)


def _ids(col: pd.Series, name: str, ts: np.ndarray, labels: pd.Index) -> np.ndarray:
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":  # numpy ints: no NA
        return readonly(col.to_numpy(np.int64), np.int64)
    if not pd.api.types.is_integer_dtype(col.dtype) or col.hasnans:
        try:
            col = pd.to_numeric(col)
        except (TypeError, ValueError) as e:
            raise DataError(
                f"{name}: column 'id' must be integer trade ids ({e})",
                hint="convert string ids with trades['id'].astype('int64'), or drop the column",
            ) from None
        bad = col.isna().to_numpy() | (col.to_numpy(np.float64, na_value=0.0) % 1 != 0)
        if bad.any():
            arr = TradeArrays(ts, ts, ts, None, labels)
            raise DataError(
                f"{name}: missing or non-integer id in {_describe(arr, bad, None)}",
                hint="fill the ids or drop the 'id' column",
            )
    return readonly(col.to_numpy(np.int64), np.int64)


def trade_arrays(trades: Any, *, name: str = "trades") -> TradeArrays:
    """Convert a trades DataFrame (``ts price amount [id] [side]``) to :class:`TradeArrays`.

    A mapping of arrays (``ts`` as int64 epoch us or tz-aware datetimes) is also
    accepted. Checks the columns and the time zone here; NaT, prices and amounts
    are checked inside the kernel or by :func:`check_values`.
    """
    if isinstance(trades, TradeArrays):
        return trades
    if not isinstance(trades, pd.DataFrame):
        if not hasattr(trades, "keys"):
            raise DataError(
                f"{name}: expected a DataFrame with columns ts, price, amount, "
                f"got {type(trades).__name__}"
            )
        ts = np.asarray(trades["ts"])
        if ts.dtype.kind not in "iu":
            trades = pd.DataFrame(dict(trades.items()))
        else:  # int64 epoch us arrays: the fast path for the live feed
            price = readonly(trades["price"], np.float64)
            amount = readonly(trades["amount"], np.float64)
            raw_ids = trades.get("id")
            ids = None if raw_ids is None else readonly(raw_ids, np.int64)
            if not len(ts) == len(price) == len(amount) == (len(ts) if ids is None else len(ids)):
                raise DataError(f"{name}: arrays ts, price, amount (and id) differ in length")
            return TradeArrays(readonly(ts, np.int64), price, amount, ids, None)
    if "ts" not in trades.columns and trades.index.name == "ts":
        trades = trades.reset_index()  # trades indexed by time
    missing = [c for c in ("ts", "price", "amount") if c not in trades.columns]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)}",
            hint="trades need columns ts (UTC), price, amount; optional id, side",
        )
    labels = trades.index
    ts = _ts_us(trades["ts"], name)
    try:
        price = _floats(trades["price"])
        amount = _floats(trades["amount"])
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: price/amount must be numbers ({e})") from None
    ids = _ids(trades["id"], name, ts, labels) if "id" in trades.columns else None
    return TradeArrays(ts, price, amount, ids, labels)


def check_values(arr: TradeArrays, name: str) -> None:
    """Raise DataError (naming rows) for NaT times, bad prices or bad amounts.

    A numpy pass for the streaming path; the batch path checks inside the kernel
    and calls :func:`raise_bad_values` when a check fails.
    """
    p, a = arr.price, arr.amount
    if (bool((arr.ts == _NAT).any()) or not bool(((p > 0) & (p < np.inf)).all())
            or not bool(((a >= 0) & (a < np.inf)).all())):
        raise_bad_values(arr, name)


def raise_bad_values(arr: TradeArrays, name: str) -> None:
    """Raise the DataError that names the rows with NaT, bad prices or bad amounts."""
    hint = "drop or repair those trades before aggregating"
    nat = arr.ts == _NAT
    if nat.any():
        raise DataError(f"{name}: missing timestamp (NaT) in {_describe(arr, nat, None)}")
    p, a = arr.price, arr.amount
    bad = ~((p > 0) & (p < np.inf))
    if bad.any():
        raise DataError(
            f"{name}: NaN, infinite, zero or negative price in {_describe(arr, bad, 'price')}",
            hint=hint,
        )
    bad = ~((a >= 0) & (a < np.inf))
    if bad.any():
        raise DataError(
            f"{name}: NaN, infinite or negative amount in {_describe(arr, bad, 'amount')}",
            hint=hint,
        )
    raise DataError(f"{name}: price * amount overflows float64", hint=hint)


def drop_duplicate_ids(arr: TradeArrays) -> tuple[TradeArrays, int]:
    """Drop repeated ids, keeping the first occurrence; returns (trades, dropped)."""
    ids = arr.ids
    if ids is None or arr.n < 2 or bool((ids[1:] > ids[:-1]).all()):
        return arr, 0
    dup = pd.Index(ids).duplicated(keep="first")
    n = int(dup.sum())
    return (arr.take(np.flatnonzero(~dup)) if n else arr), n


def sort_trades(arr: TradeArrays) -> TradeArrays:
    """Sort stably by ``ts`` (then ``id``); no copy when already sorted."""
    ts = arr.ts
    if arr.n < 2:
        return arr
    after, before = ts[1:], ts[:-1]
    if arr.ids is None:
        if bool((after >= before).all()):
            return arr
        return arr.take(np.argsort(ts, kind="stable"))
    if bool(((after > before) | ((after == before) & (arr.ids[1:] > arr.ids[:-1]))).all()):
        return arr
    return arr.take(np.lexsort((arr.ids, ts)))
