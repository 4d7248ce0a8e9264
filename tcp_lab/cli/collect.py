"""``tcp-lab collect``: backfill candles from an exchange, then follow live trades.

``--until`` backfills a closed range and exits; without it the command keeps
collecting until Ctrl-C or SIGTERM, after storing everything received.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from tcp_lab.cli._times import EXAMPLE, utc_time


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (a clean stop) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _collect(args: argparse.Namespace) -> int:
    from tcp_lab.data.collector import DataCollector, parse_list

    symbols = parse_list(args.symbols, "symbols")
    timeframes = parse_list(args.timeframes, "timeframes")
    since, until = args.since, args.until
    bus = False if args.no_bus else args.bus
    with sigterm_as_interrupt(), DataCollector(
            args.url, bus, exchange=args.exchange, exchange_url=args.exchange_url,
            store_raw_data=args.store_raw, progress=not args.no_progress) as collector:
        where = f" at {args.exchange_url}" if args.exchange_url else ""
        if until is not None:
            print(f"tcp-lab collect: backfilling {', '.join(symbols)} "
                  f"{', '.join(timeframes)} from {args.exchange}{where} into "
                  f"{collector.store.url}", file=sys.stderr, flush=True)
            summary = collector.backfill(symbols, timeframes, since=since, until=until)
            print(summary, flush=True)
            return 130 if summary.interrupted else 0
        print(f"tcp-lab collect: collecting {', '.join(symbols)} {', '.join(timeframes)} "
              f"from {args.exchange}{where} into {collector.store.url}; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        status = collector.start_collection(symbols, timeframes, since=since)
    counts = status["counts"]
    print(f"tcp-lab collect: {status['state']}: {counts.get('candles_stored', 0):,} candles "
          f"stored, {counts.get('candles_published', 0):,} published, "
          f"{counts.get('trades_stored', 0):,} raw trades stored", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect", help="backfill candles from an exchange, then collect live trades",
        description="Backfill candles (klines) since --since, then follow live trades and "
                    "store/publish each closed candle; with --until, backfill a closed range "
                    "and exit. Resumes from the last stored candle.")
    p.add_argument("--exchange", default="binance", help="ccxt exchange id (default binance)")
    p.add_argument("--symbols", required=True, help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    p.add_argument("--timeframes", default="1m,5m,1h",
                   help="comma-separated, e.g. 1m,5m,1h (default)")
    p.add_argument("--since", type=utc_time, help=f"backfill from this time, {EXAMPLE} "
                   "(default: resume from the stored candles)")
    p.add_argument("--until", type=utc_time,
                   help="backfill up to this time and exit (no live collection)")
    p.add_argument("--exchange-url", help="exchange emulator base URL, e.g. "
                   "http://127.0.0.1:8765 (offline runs)")
    p.add_argument("--store-raw", action="store_true", help="also store every live trade")
    p.add_argument("--url", help="database URL (default: the database_url setting)")
    p.add_argument("--bus", help="bus URL (default: the redis_url setting)")
    p.add_argument("--no-bus", action="store_true", help="publish nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_collect)
