"""Import exchange data dumps into the store (``tcp-lab data import``).

:func:`import_files` loads Binance's public dumps (aggTrades, trades, klines;
``.zip`` or ``.csv``, with or without a header, times in ms or µs) and generic
trade files (CSV with a header, or Parquet) into a store: trades into
``raw_trades``, klines as candles. File formats live in :mod:`tcp_lab.data._dumps`.

- **Kind, symbol, timeframe** come from a Binance file name
  (``BTCUSDT-aggTrades-2024-01-01.zip``, ``BTCUSDT-1m-2024-01.zip``) or the first
  line; the symbol is ``BTC/USDT`` when the market id ends in a common quote
  asset, else it must be given.
- **Klines** are stamped by close time: the converter is the ccxt provider's
  :func:`~tcp_lab.data.providers.ccxt_provider.klines_to_candles` (empty klines
  are dropped, ``vwap`` = quote volume / volume).
- **Idempotent.** The store keeps one row per trade (exchange, symbol, time, id):
  importing a file again, or overlapping files, stores each trade once.
- **Streaming.** Files are read in chunks of about a million rows, parsed in a
  background thread while the previous chunk is written; a bad value stops the
  import with a one-line error naming the file, the line and the value. The
  chunks before it are stored (and skipped when the fixed file is imported again).
  A chunk of trades goes to the store as arrays, not a frame (building and
  re-checking frames cost ~0.8 s of CPU per 10M trades, a seventh of the import).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tcp_lab.data import _dumps as D
from tcp_lab.data._trades import TradeArrays, check_values, raise_bad_values
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.timeframes import parse_timeframe

if TYPE_CHECKING:
    from tcp_lab.store import Store

__all__ = ["import_files", "ImportSummary", "FileImport"]

_SIDES = ("buy", "sell")  # Binance's "is buyer maker" = True: the taker sold
_GENERIC = {"ts": ("ts", "timestamp"), "price": ("price",),
            "amount": ("amount", "qty", "quantity"), "id": ("id",), "side": ("side",)}
_RETRY_HINT = "fix it and import the file again: trades already stored are skipped"


@dataclass(frozen=True)
class FileImport:
    """One imported file: its kind, series, rows read and time unit."""

    path: str
    kind: str
    symbol: str
    rows: int = 0
    time_unit: str | None = None
    timeframe: str | None = None


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_files` read.

    ``trades`` counts the trades in the files (those already stored included:
    they are skipped, not stored twice); ``candles`` the klines read.
    """

    exchange: str
    files: tuple[FileImport, ...]
    seconds: float

    @property
    def trades(self) -> int:
        return sum(f.rows for f in self.files if f.kind != "klines")

    @property
    def candles(self) -> int:
        return sum(f.rows for f in self.files if f.kind == "klines")

    def lines(self) -> list[str]:
        """A human summary, one line per file and a total."""
        out = [f"{f.path}: {f.rows:,} {'klines' if f.kind == 'klines' else 'trades'} "
               f"({f.kind}{', ' + f.timeframe if f.timeframe else ''}"
               f"{', times in ' + f.time_unit if f.time_unit else ''}) -> {self.exchange} "
               f"{f.symbol}" for f in self.files]
        rate = self.trades / self.seconds if self.seconds > 0 else 0.0
        out.append(f"imported {len(self.files)} file(s): {self.trades:,} trades, "
                   f"{self.candles:,} candles in {self.seconds:.1f} s ({rate:,.0f} trades/s)")
        return out


@dataclass(frozen=True)
class _Plan:
    path: Path
    kind: str
    symbol: str
    timeframe: str | None
    header: bool
    columns: dict[int, tuple[str, Any]]
    widths: tuple[int, ...]
    names: list[str]


def _first_line(path: Path) -> str:
    with D.open_text(path) as f:
        return f.readline(1 << 16).decode("utf-8", errors="replace")


def _plan(path: Path, symbol: str | None, kind: str, timeframe: str | None) -> _Plan:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    dump = D.parse_dump_name(path)
    parquet = path.suffix.lower() in (".parquet", ".pq")
    first = "" if parquet else _first_line(path)
    seen, header = ("generic", True) if parquet else D.sniff(first)
    if kind == "auto":
        kind = dump.kind if dump else seen
        if kind is None:
            raise DataError(f"{path}: cannot tell what the file holds from its name or first "
                            f"line {first.strip()[:80]!r}",
                            hint="pass --kind aggtrades, trades, klines or generic")
    named = D.market_symbol(dump.market) if dump else None
    if symbol is None and named is None:
        raise ConfigError(f"{path}: cannot tell the symbol from the file name",
                          hint="pass --symbol, e.g. --symbol BTC/USDT")
    if symbol is not None and named is not None and symbol != named:
        raise ConfigError(f"{path} holds {named} by its name, but the symbol given is "
                          f"{symbol!r}", hint=f"pass --symbol {named}, or rename the file")
    if kind == "klines":
        tf = timeframe or (dump.timeframe if dump else None)
        if tf is None:
            raise ConfigError(f"{path}: klines need a timeframe", hint="pass --timeframe 1m")
        timeframe = parse_timeframe(tf).name
    if kind == "generic":
        if not parquet and not header:
            raise DataError(f"{path}: a generic trades CSV needs a header line",
                            hint="name the columns ts, price, amount[, id, side]")
        cols = _generic_columns(path, first, parquet)
        width = len(first.split(","))
        names = [cols[i][0] if i in cols else f"_{i}" for i in range(width)]
        return _Plan(path, kind, symbol or named, None, True, cols, (width,), names)
    layout = D.LAYOUTS[kind]
    width = len(first.split(",")) if first.strip() else max(layout.widths)
    if width not in layout.widths:
        raise DataError(f"{path} line 1: {width} fields, a {kind} file has "
                        + " or ".join(map(str, layout.widths)))
    return _Plan(path, kind, symbol or named, timeframe if kind == "klines" else None, header,
                 layout.columns, (width,), layout.names(width))


def _generic_columns(path: Path, header: str, parquet: bool) -> dict[int, tuple[str, Any]]:
    """Generic file columns: position (CSV) -> (our name, arrow type or None)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    have = pq.ParquetFile(path).schema_arrow.names if parquet else [
        h.strip() for h in header.strip().split(",")]
    out: dict[int, tuple[str, Any]] = {}
    for ours, spellings in _GENERIC.items():
        hit = [i for i, h in enumerate(have) if h.lower() in spellings]
        if hit:
            kind = {"id": pa.int64(), "side": pa.string(), "ts": None}.get(ours, pa.float64())
            out[hit[0]] = (ours, kind)
        elif ours not in ("id", "side"):
            raise DataError(f"{path}: no {' or '.join(spellings)} column (has "
                            f"{', '.join(have)})", hint="a generic trades file has columns "
                            "ts (or timestamp), price, amount (or qty), optional id and side")
    if not parquet:  # epoch numbers or ISO 8601 text: the first data line tells
        with D.open_text(path) as f:
            f.readline()
            row = f.readline().decode("utf-8", errors="replace").split(",")
        i = next(i for i, (n, _) in out.items() if n == "ts")
        out[i] = ("ts", pa.int64() if len(row) > i and row[i].strip().isdigit() else pa.string())
    return out


def _chunks(plan: _Plan, chunk_rows: int) -> Iterator[D.Chunk]:
    if D.source_size(plan.path) == 0:
        return
    if plan.path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        f = pq.ParquetFile(plan.path)
        names = {f.schema_arrow.names[i]: n for i, (n, _) in plan.columns.items()}
        size, total, row = D.source_size(plan.path), max(f.metadata.num_rows, 1), 1
        for batch in f.iter_batches(batch_size=chunk_rows, columns=list(names)):
            table = pa.Table.from_batches([batch]).rename_columns(
                [names[c] for c in batch.schema.names])
            row += batch.num_rows
            yield D.Chunk(table, row - batch.num_rows, size * (row - 1) // total)
        return
    yield from D.read_csv_chunks(partial(D.open_text, plan.path), name=str(plan.path),
                                 columns=plan.columns, widths=plan.widths, names=plan.names,
                                 header=plan.header, chunk_rows=chunk_rows)


def _epoch_us(values: np.ndarray, unit: str | None, plan: _Plan, chunk: D.Chunk
              ) -> tuple[np.ndarray, str]:
    if len(values) == 0:
        return values, unit or "ms"
    unit = unit or D.epoch_unit(int(values[0]), where=f"{plan.path} line {chunk.first_line}")
    return D.to_epoch_us(values, unit, name=str(plan.path), lines=chunk.lines()), unit


def _generic_ts(col: Any, unit: str | None, plan: _Plan, chunk: D.Chunk
                ) -> tuple[np.ndarray, str | None]:
    import pyarrow as pa

    if pa.types.is_integer(col.type):
        return _epoch_us(col.to_numpy(), unit, plan, chunk)
    if pa.types.is_timestamp(col.type):  # Parquet
        ts = pd.DatetimeIndex(col.to_pandas())
    else:
        text = pd.Series(col.to_pandas(), dtype="str")
        naive = ~text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).to_numpy()
        if naive.any():
            i = int(np.argmax(naive))
            raise DataError(f"{plan.path} line {chunk.lines()[i]}: time {text[i]!r} has no "
                            "time zone", hint="write times as 2024-01-01T00:01:00Z")
        try:
            ts = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True))
        except (ValueError, TypeError) as e:
            raise DataError(f"{plan.path}: column ts is not ISO 8601 times ({e})") from None
    if ts.tz is None:
        raise DataError(f"{plan.path}: times have no time zone",
                        hint="store tz-aware (UTC) timestamps, or epoch milliseconds")
    return ts.tz_convert("UTC").as_unit("us").asi8, unit


def _trades(plan: _Plan, chunk: D.Chunk, unit: str | None) -> tuple[dict[str, Any], str | None]:
    """A chunk as trade arrays (``ts`` in epoch µs), its values checked (the bad line is
    named): what :meth:`Store.save_raw_trades` writes without building a frame."""
    t = chunk.table
    if plan.kind == "generic":
        ts, unit = _generic_ts(t.column("ts"), unit, plan, chunk)
        ids = t.column("id").to_numpy() if "id" in t.column_names else chunk.lines()
        side = (pd.array(t.column("side").to_pandas(), dtype="str")
                if "side" in t.column_names else None)
    else:
        ts, unit = _epoch_us(t.column("time").to_numpy(), unit, plan, chunk)
        ids = t.column("id").to_numpy()
        maker = t.column("buyer_maker").to_numpy(zero_copy_only=False)
        side = pd.Categorical.from_codes(maker.view(np.int8), categories=_SIDES, validate=False)
    price = t.column("price").to_numpy(zero_copy_only=False)
    amount = t.column("amount").to_numpy(zero_copy_only=False)
    arr = TradeArrays(ts, price, amount, ids)
    try:
        check_values(arr, str(plan.path))
    except DataError:  # name the rows by their file line
        raise_bad_values(arr._replace(labels=pd.Index(chunk.lines())),
                         f"{plan.path} (rows numbered by file line)")
    trades = {"ts": ts, "id": ids, "price": price, "amount": amount}
    if side is not None:
        trades["side"] = side
    return trades, unit


def _klines(plan: _Plan, chunk: D.Chunk, unit: str | None) -> tuple[pd.DataFrame, str | None]:
    """A chunk of klines as right-aligned candles (the provider's conversion)."""
    from tcp_lab.data.providers.ccxt_provider import klines_to_candles

    t = chunk.table
    opens = t.column("time").to_numpy()
    if unit is None and len(opens):
        unit = D.epoch_unit(int(opens[0]), where=f"{plan.path} line {chunk.first_line}")
    unit = unit or "ms"
    tf = parse_timeframe(plan.timeframe or "")
    span = t.column("close_time").to_numpy() - opens + 1
    wrong = span != (tf.ms if unit == "ms" else tf.us)
    if wrong.any():
        i = int(np.argmax(wrong))
        raise DataError(f"{plan.path} line {chunk.lines()[i]}: the kline spans {span[i]} "
                        f"{unit}, not {tf.name} (give the file's own with --timeframe)")
    opens_ms = D.to_epoch_us(opens, unit, name=str(plan.path), lines=chunk.lines()) // 1000
    raw = np.column_stack([opens_ms] + [t.column(c).to_numpy() for c in (
        "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count")])
    rows = raw.tolist()
    try:
        return klines_to_candles([r[:6] for r in rows], tf, raw=rows), unit
    except ValueError as e:
        raise DataError(f"{plan.path}: klines near line {chunk.first_line}: {e}") from None


class _FileError(Exception):
    """A DataError while reading file number ``index``."""

    def __init__(self, index: int, error: DataError) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def _parsed(plans: list[_Plan], chunk_rows: int) -> Iterator[tuple[int, D.Chunk, Any, Any]]:
    """(file index, chunk, candles or trade arrays, time unit) for every chunk of every
    file, in order."""
    for k, plan in enumerate(plans):
        unit = None
        try:
            for chunk in _chunks(plan, chunk_rows):
                convert = _klines if plan.kind == "klines" else _trades
                data, unit = convert(plan, chunk, unit)
                yield k, chunk, data, unit
        except DataError as e:
            raise _FileError(k, e) from None


def import_files(store: Store, paths: Iterable[str | Path], *, exchange: str,
                 symbol: str | None = None, kind: str = "auto", timeframe: str | None = None,
                 progress: bool = True, chunk_rows: int = 1_000_000) -> ImportSummary:
    """Import exchange data dumps (trades, klines) into ``store``.

    Parameters
    ----------
    store
        An open :class:`~tcp_lab.store.Store`.
    paths
        Binance dump files (``.zip`` or ``.csv``) or generic trade files
        (``.csv`` with a header, ``.parquet``).
    exchange
        The exchange id stored with the data, e.g. ``"binance"``.
    symbol
        e.g. ``"BTC/USDT"``; default: from each Binance file name.
    kind
        ``"auto"`` (from the name or the first line), ``"aggtrades"``,
        ``"trades"``, ``"klines"`` or ``"generic"``.
    timeframe
        The klines' timeframe (default: from the file name).
    progress
        Show a progress bar (bytes read) with ``tqdm.auto``.
    chunk_rows
        Rows parsed and written at a time.

    Returns
    -------
    ImportSummary

    Raises
    ------
    ConfigError
        An unknown kind, a symbol or timeframe that cannot be told.
    DataError
        A missing or unreadable file, or a bad value: the message names the
        file, the line and the value. Chunks before it are stored.

    Examples
    --------
    >>> with open_store() as store:                                   # doctest: +SKIP
    ...     import_files(store, ["BTCUSDT-aggTrades-2024-01-01.zip"], exchange="binance")
    """
    from tqdm.auto import tqdm

    if kind not in ("auto", *D.KINDS):
        raise ConfigError(f"unknown kind {kind!r}", hint="use auto, " + ", ".join(D.KINDS))
    plans = [_plan(Path(p), symbol, kind, timeframe) for p in paths]
    done = [FileImport(str(p.path), p.kind, p.symbol, 0, None, p.timeframe) for p in plans]
    sizes = [D.source_size(p.path) for p in plans]
    start = time.perf_counter()
    seen, k = [0] * len(plans), 0
    with (tqdm(total=sum(sizes), unit="B", unit_scale=True, desc="import",
               disable=not progress) as bar,
          closing(D.prefetched(_parsed(plans, chunk_rows))) as chunks):
        try:
            for k, chunk, data, unit in chunks:
                plan = plans[k]
                if plan.kind == "klines":
                    store.save_candles(data, exchange, plan.symbol, plan.timeframe)
                else:
                    store.save_raw_trades(data, exchange, plan.symbol)
                done[k] = replace(done[k], rows=done[k].rows + chunk.table.num_rows,
                                  time_unit=unit)
                position = min(chunk.position, sizes[k])
                bar.update(max(position - seen[k], 0))
                seen[k] = position
        except (_FileError, DataError) as e:
            k, error = (e.index, e.error) if isinstance(e, _FileError) else (k, e)
            message = error.message if str(plans[k].path) in error.message else \
                f"{plans[k].path}: {error.message}"
            stored = (f"the {done[k].rows:,} rows before it are stored" if done[k].rows
                      else "nothing of this file is stored")
            raise DataError(f"{message}; {stored}", hint=_RETRY_HINT) from None
    return ImportSummary(exchange, tuple(done), time.perf_counter() - start)
