"""Check stored candle series (holes, duplicates, suspicious values) and repair holes.

``tcp-lab data check [--repair]`` and :meth:`DataCollector.check_data` use
this module. A *missing* candle is a slot on the timeframe's grid, between the
first and the last stored candle, without a candle. It is either

- **confirmed quiet**: the exchange reported the slot had no trades (tcp_lab
  stores no candle then), recorded in the store by the backfill or repair that
  asked (:meth:`~tcp_lab.store.Store.save_quiet_slots`). Explained: a series
  whose missing slots are all confirmed quiet checks clean; or
- a **hole**: nobody confirmed it (lost data, or a quiet slot collected live or
  imported). A repair asks the exchange again, stores what it has and records
  what it reports empty, so a repaired series checks clean next time.

>>> from tcp_lab.store import open_store
>>> with open_store("duckdb:///:memory:") as store:
...     check_store(store)
[]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.data.backfill import Rest, backfill_range, compress_ranges
from tcp_lab.data.providers.base import Provider, grid
from tcp_lab.timeframes import TS_DTYPE, parse_timeframe

__all__ = ["SeriesCheck", "check_series", "check_store", "repair_series", "DEFAULT_MAX_JUMP"]

#: Close-to-close change above which a candle is flagged as a suspicious jump (25 %).
DEFAULT_MAX_JUMP = 0.25
Ranges = list[tuple[pd.Timestamp, pd.Timestamp, int]]


def _count(ranges: Ranges) -> int:
    return sum(n for *_, n in ranges)


@dataclass
class SeriesCheck:
    """The findings on one stored series.

    Attributes
    ----------
    exchange, symbol, timeframe
        The series.
    candles
        Stored candles.
    first, last
        Close times of the first and last stored candle (None when empty).
    missing
        Runs of missing grid slots between first and last: ``(first, last, count)``.
    quiet
        The missing runs the exchange confirmed had no trades (recorded in the
        store by a backfill or a repair): explained, not a defect.
    holes
        The missing runs nobody confirmed: lost data, or quiet slots not yet
        confirmed (``tcp-lab data check --repair`` asks the exchange).
    duplicates
        Close times stored more than once (the key forbids it; 0 expected).
    suspicious
        One row per flagged candle: ``ts``, ``reason``, ``value``.
    repaired_from
        After a repair: the (redacted) URL it fetched from; None when no repair ran.
    repaired
        Candles a repair stored.
    confirmed_empty
        Runs a repair confirmed quiet (they are in ``quiet`` now).
    note
        One line about the repair's source (a series without a recorded source,
        or collected from elsewhere); empty when there is nothing to say.
    """

    exchange: str
    symbol: str
    timeframe: str
    candles: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    missing: Ranges = field(default_factory=list)
    quiet: Ranges = field(default_factory=list)
    holes: Ranges = field(default_factory=list)
    duplicates: int = 0
    suspicious: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"ts": pd.Series([], dtype=TS_DTYPE),
                                              "reason": pd.Series([], dtype="str"),
                                              "value": pd.Series([], dtype="float64")}))
    repaired_from: str | None = None
    repaired: int = 0
    confirmed_empty: Ranges = field(default_factory=list)
    note: str = ""

    @property
    def series(self) -> str:
        """``"binance BTC/USDT 1m"``."""
        return f"{self.exchange} {self.symbol} {self.timeframe}"

    @property
    def missing_count(self) -> int:
        """Missing grid slots in all (quiet ones and holes)."""
        return _count(self.missing)

    @property
    def quiet_count(self) -> int:
        """Missing slots confirmed quiet."""
        return _count(self.quiet)

    @property
    def hole_count(self) -> int:
        """Missing slots not confirmed quiet."""
        return _count(self.holes)

    @property
    def ok(self) -> bool:
        """No hole (missing slots all confirmed quiet), no duplicate, nothing suspicious."""
        return not self.holes and not self.duplicates and self.suspicious.empty

    @property
    def verdict(self) -> str:
        """``"OK"``, or what is wrong in words, e.g. ``"3 missing candle(s) not confirmed
        quiet (1 hole(s)); 2 suspicious candle(s)"``."""
        problems = []
        if self.holes:
            problems.append(f"{self.hole_count:,} missing candle(s) not confirmed quiet "
                            f"({len(self.holes)} hole(s))")
        if self.duplicates:
            problems.append(f"{self.duplicates} duplicate(s)")
        if len(self.suspicious):
            problems.append(f"{len(self.suspicious)} suspicious candle(s)")
        return "; ".join(problems) or "OK"

    def summary(self) -> str:
        """One line: the series and what was found."""
        head = f"{self.series}: {self.candles:,} candles"
        if self.first is not None:
            head += f" {self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}"
        if self.missing:
            parts = [f"{self.missing_count:,} missing: {self.quiet_count:,} confirmed quiet, "
                     f"{self.hole_count:,} in {len(self.holes)} hole(s)"]
        else:
            parts = ["none missing"]
        parts.append(f"{self.duplicates} duplicate(s)")
        parts.append(f"{len(self.suspicious)} suspicious")
        return head + " — " + ", ".join(parts) + " — " + ("OK" if self.ok else "NOT OK")

    def lines(self, limit: int = 3) -> list[str]:
        """The summary, the repair, then the first ``limit`` holes, quiet ranges and
        flagged candles."""
        out = [self.summary()]
        if self.note:
            out.append(f"    note: {self.note}")
        if self.repaired_from is not None:
            out.append(f"    repaired from {self.repaired_from}: {self.repaired:,} candle(s) "
                       f"stored, {_count(self.confirmed_empty):,} slot(s) confirmed quiet")
        out += _ranges("hole (unconfirmed)", "hole(s)", self.holes, limit)
        out += _ranges("confirmed quiet", "quiet range(s)", self.quiet, limit)
        for row in self.suspicious.head(limit).itertuples():
            out.append(f"    suspicious {row.ts:%Y-%m-%d %H:%M} {row.reason} ({row.value:.6g})")
        if len(self.suspicious) > limit:
            out.append(f"    … and {len(self.suspicious) - limit} more suspicious candle(s)")
        return out


def _ranges(label: str, plural: str, ranges: Ranges, limit: int) -> list[str]:
    out = [f"    {label} {a:%Y-%m-%d %H:%M} .. {b:%Y-%m-%d %H:%M} ({n})"
           for a, b, n in ranges[:limit]]
    if len(ranges) > limit:
        rest = ranges[limit:]
        out.append(f"    … and {len(rest)} more {plural}, {_count(rest):,} slot(s)")
    return out


def _suspicious(df: pd.DataFrame, max_jump: float) -> pd.DataFrame:
    o, h, lo, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
    checks: list[tuple[np.ndarray, str, np.ndarray]] = [
        (~np.isfinite(c) | (np.minimum.reduce([o, h, lo, c]) <= 0), "non-positive price",
         np.minimum.reduce([o, h, lo, c])),
        ((h < np.maximum(o, c)) | (lo > np.minimum(o, c)), "high/low do not bracket open/close",
         h - lo),
        (df["volume"].to_numpy() <= 0, "zero volume (a candle with no trades)",
         df["volume"].to_numpy()),
    ]
    change = np.full(len(c), np.nan)
    if len(c) > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            change[1:] = c[1:] / c[:-1] - 1.0
    checks.append((np.abs(np.nan_to_num(change)) > max_jump,
                   f"close jumps more than {max_jump:.0%} from the previous candle", change))
    rows = [pd.DataFrame({"ts": df.index[mask], "reason": reason, "value": value[mask]})
            for mask, reason, value in checks if mask.any()]
    if not rows:
        return SeriesCheck("", "", "", 0, None, None).suspicious
    return pd.concat(rows, ignore_index=True).sort_values("ts", ignore_index=True)


def _stamps(ranges: Ranges, timeframe: str) -> pd.DatetimeIndex:
    out = pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts")
    for a, b, _ in ranges:
        out = out.append(grid(a, b, timeframe))
    return out


def check_series(store: Any, exchange: str, symbol: str, timeframe: str, *,
                 max_jump: float = DEFAULT_MAX_JUMP) -> SeriesCheck:
    """Check one stored series.

    Parameters
    ----------
    store
        An open store.
    exchange, symbol, timeframe
        The series.
    max_jump
        Close-to-close relative change above which a candle is flagged.

    Returns
    -------
    SeriesCheck
        Missing slots split into confirmed quiet ones (recorded in the store)
        and holes.
    """
    tf = parse_timeframe(timeframe)
    df = store.load_candles(exchange, symbol, tf.name)
    if df.empty:
        return SeriesCheck(exchange, symbol, tf.name, 0, None, None)
    idx = df.index
    first, last = idx.min(), idx.max()
    missing = grid(first, last, tf).difference(idx)
    quiet = missing.intersection(store.load_quiet_slots(exchange, symbol, tf.name, first, last))
    return SeriesCheck(exchange, symbol, tf.name, len(df), first, last,
                       missing=compress_ranges(missing, tf),
                       quiet=compress_ranges(quiet, tf),
                       holes=compress_ranges(missing.difference(quiet), tf),
                       duplicates=int(idx.duplicated().sum()),
                       suspicious=_suspicious(df[~idx.duplicated()], max_jump))


def check_store(store: Any, exchange: str | None = None, symbol: str | None = None,
                timeframe: str | None = None, *, max_jump: float = DEFAULT_MAX_JUMP
                ) -> list[SeriesCheck]:
    """Check every stored series matching the filters (None matches all)."""
    series = store.list_series()
    want_tf = parse_timeframe(timeframe).name if timeframe else None
    out = []
    for r in series.itertuples():
        if ((exchange and r.exchange != exchange) or (symbol and r.symbol != symbol)
                or (want_tf and r.timeframe != want_tf)):
            continue
        out.append(check_series(store, r.exchange, r.symbol, r.timeframe, max_jump=max_jump))
    return out


def repair_series(check: SeriesCheck, provider: Provider, sink: Any, rest: Rest, *,
                  max_jump: float = DEFAULT_MAX_JUMP, note: str = "") -> SeriesCheck:
    """Fetch the holes of ``check`` again; return the series checked anew.

    What the exchange has is stored; the slots it reports empty are recorded as
    quiet (:func:`~tcp_lab.data.backfill.backfill_range`), so the next check
    counts them as explained. The result's ``repaired`` counts the candles
    stored, ``confirmed_empty`` the runs now confirmed quiet, ``holes`` what the
    exchange did not cover (e.g. outside its history); ``note`` is passed through.

    Raises
    ------
    ServiceError
        The exchange stayed unreachable (after the retries).
    """
    stored = 0
    for a, b, _ in check.holes:
        res = backfill_range(provider, sink, check.symbol, check.timeframe, a, b, rest=rest,
                             stored_before=True, stored_after=True)
        stored += res.stored
    after = check_series(sink.store, check.exchange, check.symbol, check.timeframe,
                         max_jump=max_jump)
    confirmed = _stamps(check.holes, check.timeframe).intersection(
        _stamps(after.quiet, check.timeframe))
    after.repaired_from = getattr(provider, "source", None) or repr(provider)
    after.repaired = stored
    after.confirmed_empty = compress_ranges(confirmed, check.timeframe)
    after.note = note
    return after
