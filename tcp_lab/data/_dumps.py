"""Exchange data dumps on disk: file names, layouts, and chunked, line-checked CSV reading.

Binance's public dumps (data.binance.vision) come as ``<MARKET>-<what>-<date>.zip``
holding one CSV, with or without a header line:

==========  ==================================================================
kind        columns (by position)
==========  ==================================================================
aggtrades   agg trade id, price, quantity, first trade id, last trade id,
            timestamp, is buyer maker, [is best match]
trades      trade id, price, qty, quote qty, time, is buyer maker, [is best match]
klines      open time, open, high, low, close, volume, close time, quote volume,
            count, taker buy base, taker buy quote, ignore
==========  ==================================================================

Times are epoch milliseconds, or microseconds in the spot files since 2025: the
unit is told per file by magnitude (:func:`epoch_unit`). A ``generic`` file is a
CSV with a header (or a Parquet file) with columns ``ts`` (or ``timestamp``),
``price``, ``amount`` (or ``qty``/``quantity``), optional ``id`` and ``side``.

:func:`read_csv_chunks` parses with pyarrow's streaming reader (a block at a time,
never the whole file) and turns a value it cannot parse into a one-line
:class:`~tcp_lab.errors.DataError` naming the file, the line and the value.
"""

from __future__ import annotations

import io
import queue
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from tcp_lab.errors import DataError

T = TypeVar("T")

__all__ = ["KINDS", "QUOTES", "DumpName", "Layout", "LAYOUTS", "Chunk", "parse_dump_name",
           "market_symbol", "open_text", "source_size", "sniff", "epoch_unit", "to_epoch_us",
           "read_csv_chunks", "prefetched"]

KINDS = ("aggtrades", "trades", "klines", "generic")
#: Quote assets recognised when a market id (``BTCUSDT``) is split into a symbol.
QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_NAME = re.compile(r"^(?P<market>[A-Z0-9]{2,})-(?P<what>aggTrades|trades|\d+[smhdw]|1mo)"
                   r"-\d{4}-\d{2}(?:-\d{2})?(?:\.csv)?(?:\.zip)?$")
#: Columns that may be empty (a trade of unknown side).
NULLABLE = ("side",)
_TRUE, _FALSE = ["true", "True", "TRUE", "1"], ["false", "False", "FALSE", "0"]
_INT, _FLOAT, _BOOL = pa.int64(), pa.float64(), pa.bool_()
#: Epoch values from this magnitude on are microseconds (1e14 ms is the year 5138,
#: 1e14 µs is 1973); from 1e17 on they are neither.
_US_FROM, _TOO_BIG = 10**14, 10**17
#: The first chunk of a file is this many times smaller (the pipeline fills sooner).
_FIRST_CHUNK = 8


@dataclass(frozen=True)
class DumpName:
    """What a Binance dump's file name says: market id, kind, klines timeframe."""

    market: str
    kind: str
    timeframe: str | None = None


@dataclass(frozen=True)
class Layout:
    """A headerless CSV layout: ``(name, arrow type)`` of the columns read, by position."""

    kind: str
    columns: dict[int, tuple[str, pa.DataType]]
    widths: tuple[int, ...]  # accepted numbers of fields per line

    def names(self, width: int) -> list[str]:
        """Column names for the ``width`` fields of a line (unused ones ``_<i>``)."""
        return [self.columns[i][0] if i in self.columns else f"_{i}" for i in range(width)]


LAYOUTS = {
    "aggtrades": Layout("aggtrades", {0: ("id", _INT), 1: ("price", _FLOAT),
                                      2: ("amount", _FLOAT), 5: ("time", _INT),
                                      6: ("buyer_maker", _BOOL)}, (7, 8)),
    "trades": Layout("trades", {0: ("id", _INT), 1: ("price", _FLOAT), 2: ("amount", _FLOAT),
                                4: ("time", _INT), 5: ("buyer_maker", _BOOL)}, (6, 7)),
    "klines": Layout("klines", {0: ("time", _INT), 1: ("open", _FLOAT), 2: ("high", _FLOAT),
                                3: ("low", _FLOAT), 4: ("close", _FLOAT), 5: ("volume", _FLOAT),
                                6: ("close_time", _INT), 7: ("quote_volume", _FLOAT),
                                8: ("count", _INT)}, (12,)),
}


@dataclass(frozen=True)
class Chunk:
    """Parsed rows of one file: ``first_line`` is the file line of the first row."""

    table: pa.Table
    first_line: int
    position: int  # bytes of the (uncompressed) file read so far

    def lines(self) -> np.ndarray:
        """The file line of every row."""
        return np.arange(self.first_line, self.first_line + self.table.num_rows)


def parse_dump_name(path: str | Path) -> DumpName | None:
    """``BTCUSDT-aggTrades-2024-01-01.zip`` -> ``DumpName("BTCUSDT", "aggtrades")``.

    Returns None for a name that is not a Binance dump's.

    Examples
    --------
    >>> parse_dump_name("BTCUSDT-1m-2024-01.zip")
    DumpName(market='BTCUSDT', kind='klines', timeframe='1m')
    """
    m = _NAME.match(Path(path).name)
    if not m:
        return None
    what = m.group("what")
    if what in ("aggTrades", "trades"):
        return DumpName(m.group("market"), what.lower())
    return DumpName(m.group("market"), "klines", what)


def market_symbol(market: str) -> str | None:
    """``"BTCUSDT"`` -> ``"BTC/USDT"`` when it ends in one of :data:`QUOTES`, else None.

    Examples
    --------
    >>> market_symbol("ETHBTC"), market_symbol("BTCXYZ")
    ('ETH/BTC', None)
    """
    for quote in sorted(QUOTES, key=len, reverse=True):
        if market.endswith(quote) and len(market) > len(quote):
            return f"{market[:-len(quote)]}/{quote}"
    return None


def _zip_member(z: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    members = [m for m in z.infolist() if not m.is_dir()]
    if len(members) != 1:
        raise DataError(f"{path}: a dump .zip holds one CSV file, this one holds "
                        f"{len(members)}", hint="unzip it and import the CSV files")
    return members[0]


@contextmanager
def open_text(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes (the CSV inside a ``.zip``), as a binary stream."""
    try:
        if path.suffix.lower() != ".zip":
            with open(path, "rb") as f:
                yield f
            return
        with zipfile.ZipFile(path) as z, z.open(_zip_member(z, path)) as f:
            yield f
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read it ({e})") from None


def source_size(path: Path) -> int:
    """Bytes :func:`open_text` yields (uncompressed size of a ``.zip``'s CSV)."""
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as z:
                return _zip_member(z, path).file_size
        return path.stat().st_size
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read it ({e})") from None


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def sniff(first_line: str) -> tuple[str | None, bool]:
    """The kind a CSV's first line suggests (None: unknown), and whether it is a header."""
    fields = [f.strip() for f in first_line.strip().split(",")]
    if not _is_int(fields[0]):  # a header
        names = {f.lower() for f in fields}
        if "agg_trade_id" in names:
            return "aggtrades", True
        if "open_time" in names:
            return "klines", True
        if {"quote_qty", "is_buyer_maker"} <= names:
            return "trades", True
        has_ts = bool(names & {"ts", "timestamp"})
        return ("generic" if has_ts and "price" in names else None), True
    n = len(fields)
    lower = [f.lower() for f in fields]
    if n == 12 and _is_int(fields[6]):
        return "klines", False
    if n in (7, 8) and _is_int(fields[5]) and lower[6] in _TRUE + _FALSE:
        return "aggtrades", False
    if n in (6, 7) and _is_int(fields[4]) and lower[5] in _TRUE + _FALSE:
        return "trades", False
    return None, False


def epoch_unit(value: int, *, where: str) -> str:
    """``"ms"`` or ``"us"``: the unit of an epoch time, told by its magnitude."""
    if 0 < value < _US_FROM:
        return "ms"
    if _US_FROM <= value < _TOO_BIG:
        return "us"
    raise DataError(f"{where}: time {value} is not epoch milliseconds or microseconds")


def to_epoch_us(values: np.ndarray, unit: str, *, name: str, lines: np.ndarray) -> np.ndarray:
    """Epoch ``unit`` times as microseconds; a time of another magnitude is an error."""
    lo, hi = (1, _US_FROM) if unit == "ms" else (_US_FROM, _TOO_BIG)
    bad = (values < lo) | (values >= hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{name} line {lines[i]}: time {values[i]} is not in "
                        f"{'milliseconds' if unit == 'ms' else 'microseconds'} like the "
                        "file's first row")
    return values * 1000 if unit == "ms" else values


def _bad_field(text: str, kind: pa.DataType) -> str | None:
    """Why ``text`` does not parse as ``kind`` (None: it does), as pyarrow reads it."""
    if kind == pa.string():
        return None
    if text == "":
        return "is empty"
    if kind == _BOOL:
        return None if text in _TRUE + _FALSE else "is not true/false"
    try:
        int(text) if kind == _INT else float(text)
    except ValueError:
        return "is not an integer" if kind == _INT else "is not a number"
    return None


def _locate(open_again, name: str, columns: dict[int, tuple[str, pa.DataType]],
            widths: tuple[int, ...], first_line: int, error: Exception) -> DataError:
    """The DataError naming the first bad line at or after ``first_line``."""
    with open_again() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        for number, line in enumerate(text, 1):
            if number < first_line:
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) not in widths:
                return DataError(f"{name} line {number}: {len(fields)} fields, expected "
                                 + " or ".join(map(str, widths)))
            for i, (field, kind) in columns.items():
                why = _bad_field(fields[i], kind)
                if why:
                    value = "" if why == "is empty" else f" {fields[i]!r}"
                    return DataError(f"{name} line {number}: {field}{value} {why}")
    return DataError(f"{name}: unreadable after line {first_line - 1} ({error})")


def read_csv_chunks(open_again, *, name: str, columns: dict[int, tuple[str, pa.DataType]],
                    widths: tuple[int, ...], names: list[str], header: bool,
                    chunk_rows: int = 1_000_000) -> Iterator[Chunk]:
    """Typed chunks of about ``chunk_rows`` rows (the first one smaller) of the CSV
    ``open_again()`` opens.

    Only the ``columns`` are parsed (by position, into the given types). A value
    that does not parse, an empty one (outside :data:`NULLABLE`), or a line with a
    number of fields not in ``widths`` raises a DataError naming ``name``, the line
    and the value.
    """
    include = [columns[i][0] for i in sorted(columns)]
    read = pcsv.ReadOptions(column_names=names, skip_rows=int(header), block_size=1 << 20)
    convert = pcsv.ConvertOptions(
        column_types={n: t for n, t in columns.values()}, include_columns=include,
        null_values=[""], strings_can_be_null=True, true_values=_TRUE, false_values=_FALSE)
    line = 1 + int(header)
    with open_again() as f:
        try:
            reader = pcsv.open_csv(f, read_options=read, convert_options=convert)
            # A small first chunk: its consumer starts writing while the rest is parsed.
            batches, rows, want = [], 0, max(chunk_rows // _FIRST_CHUNK, 1)
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows >= want:
                    yield _chunk(batches, line, f, name, columns)
                    line, batches, rows, want = line + rows, [], 0, chunk_rows
            if batches:
                yield _chunk(batches, line, f, name, columns)
        except pa.ArrowInvalid as e:
            raise _locate(open_again, name, columns, widths, line, e) from None


def _chunk(batches: list[pa.RecordBatch], line: int, f: IO[bytes], name: str,
           columns: dict[int, tuple[str, pa.DataType]]) -> Chunk:
    table = pa.Table.from_batches(batches).combine_chunks()
    for field, _ in columns.values():
        if field in NULLABLE:
            continue
        col = table.column(field)
        if col.null_count:
            i = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
            raise DataError(f"{name} line {line + i}: {field} is empty")
    return Chunk(table, line, f.tell())


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` produced in a background thread, ``depth`` ahead; errors arrive in order."""
    q: queue.Queue = queue.Queue(depth)
    stop, end = threading.Event(), object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((end, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="tcp_lab-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()
