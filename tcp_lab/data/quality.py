"""Check stored candle series (holes, duplicates, suspicious values) and repair holes.

``tcp-lab data check [--repair]`` and :meth:`DataCollector.check_data` use
this module. A *missing* candle is a slot on the timeframe's grid, between the
first and the last stored candle, without a candle. It may be a genuine quiet
interval (no trades: tcp_lab stores no candle then) or lost data; a repair
asks the exchange, stores what it has, and reports the slots the exchange
confirmed as empty.

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
    duplicates
        Close times stored more than once (the key forbids it; 0 expected).
    suspicious
        One row per flagged candle: ``ts``, ``reason``, ``value``.
    repaired
        Candles stored by a repair.
    confirmed_empty
        After a repair: missing runs the exchange confirmed have no trades.
    still_missing
        After a repair: missing runs the exchange did not confirm either way.
    """

    exchange: str
    symbol: str
    timeframe: str
    candles: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    missing: Ranges = field(default_factory=list)
    duplicates: int = 0
    suspicious: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"ts": pd.Series([], dtype=TS_DTYPE),
                                              "reason": pd.Series([], dtype="str"),
                                              "value": pd.Series([], dtype="float64")}))
    repaired: int = 0
    confirmed_empty: Ranges = field(default_factory=list)
    still_missing: Ranges | None = None

    @property
    def missing_count(self) -> int:
        """Missing grid slots in all."""
        return _count(self.missing)

    @property
    def ok(self) -> bool:
        """No missing slot (other than confirmed-empty ones), no duplicate, nothing suspicious."""
        unexplained = self.missing if self.still_missing is None else self.still_missing
        return not unexplained and not self.duplicates and self.suspicious.empty

    def summary(self) -> str:
        """One line: the series and what was found."""
        head = f"{self.exchange} {self.symbol} {self.timeframe}: {self.candles:,} candles"
        if self.first is not None:
            head += f" {self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M}"
        parts = [f"{self.missing_count:,} missing in {len(self.missing)} range(s)"]
        if self.still_missing is not None:
            parts.append(f"repaired {self.repaired:,}, confirmed empty "
                         f"{_count(self.confirmed_empty):,}, still missing "
                         f"{_count(self.still_missing):,}")
        parts.append(f"{self.duplicates} duplicate(s)")
        parts.append(f"{len(self.suspicious)} suspicious")
        return head + " — " + ", ".join(parts) + (" — OK" if self.ok else "")

    def lines(self, limit: int = 5) -> list[str]:
        """The summary, then the first ``limit`` ranges and flagged candles."""
        out = [self.summary()]
        shown = self.missing if self.still_missing is None else self.still_missing
        label = "missing" if self.still_missing is None else "still missing"
        for a, b, n in shown[:limit]:
            out.append(f"    {label} {a:%Y-%m-%d %H:%M} .. {b:%Y-%m-%d %H:%M} ({n})")
        for a, b, n in self.confirmed_empty[:limit]:
            out.append(f"    confirmed empty {a:%Y-%m-%d %H:%M} .. {b:%Y-%m-%d %H:%M} ({n})")
        for row in self.suspicious.head(limit).itertuples():
            out.append(f"    suspicious {row.ts:%Y-%m-%d %H:%M} {row.reason} ({row.value:.6g})")
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
    """
    tf = parse_timeframe(timeframe)
    df = store.load_candles(exchange, symbol, tf.name)
    if df.empty:
        return SeriesCheck(exchange, symbol, tf.name, 0, None, None)
    idx = df.index
    first, last = idx.min(), idx.max()
    missing = grid(first, last, tf).difference(idx)
    return SeriesCheck(exchange, symbol, tf.name, len(df), first, last,
                       missing=compress_ranges(missing, tf),
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
                  max_jump: float = DEFAULT_MAX_JUMP) -> SeriesCheck:
    """Fetch the missing ranges of ``check`` again; return the series checked anew.

    The result's ``confirmed_empty`` lists the runs the exchange reported as
    having no trades, ``still_missing`` those it did not cover (e.g. outside
    its history), ``repaired`` the candles stored.
    """
    stored, empty = 0, pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts")
    for a, b, _ in check.missing:
        res = backfill_range(provider, sink, check.symbol, check.timeframe, a, b, rest=rest)
        stored += res.stored
        if len(res.empty):
            empty = empty.append(res.empty)
    after = check_series(sink.store, check.exchange, check.symbol, check.timeframe,
                         max_jump=max_jump)
    gaps = pd.DatetimeIndex([], dtype=TS_DTYPE, name="ts")
    for a, b, _ in after.missing:
        gaps = gaps.append(grid(a, b, check.timeframe))
    confirmed = gaps.intersection(empty)
    after.repaired = stored
    after.confirmed_empty = compress_ranges(confirmed, check.timeframe)
    after.still_missing = compress_ranges(gaps.difference(confirmed), check.timeframe)
    return after
