"""``tcp-lab data check|import``: check stored candles, import exchange data dumps.

``data check [--repair]``: holes, duplicates and suspicious values in stored
candles. Exit status: 0 when every series checked is clean (after the repair,
slots the exchange confirmed as empty count as clean), 1 when something remains.

``data import FILE…``: Binance dumps (aggTrades, trades, klines) or generic trade
files into the store (:func:`tcp_lab.data.importer.import_files`).
"""

from __future__ import annotations

import argparse
import json


def _check(args: argparse.Namespace) -> int:
    from tcp_lab.data.quality import DEFAULT_MAX_JUMP, check_store
    from tcp_lab.store import open_store

    max_jump = DEFAULT_MAX_JUMP if args.max_jump is None else args.max_jump
    with open_store(args.url) as store:
        checks = check_store(store, args.exchange, args.symbol, args.timeframe,
                             max_jump=max_jump)
        if args.repair:
            checks = _repair(store, checks, args, max_jump)
    if args.json:
        print(json.dumps([_as_dict(c) for c in checks], indent=2, default=str))
    elif not checks:
        print("tcp-lab data check: no stored series match")
    else:
        for c in checks:
            print("\n".join(c.lines()))
    return 0 if all(c.ok for c in checks) else 1


def _import(args: argparse.Namespace) -> int:
    from tcp_lab.data.importer import import_files
    from tcp_lab.store import open_store

    with open_store(args.url) as store:
        summary = import_files(store, args.files, exchange=args.exchange, symbol=args.symbol,
                               kind=args.kind, timeframe=args.timeframe,
                               progress=not args.no_progress)
    print("\n".join(summary.lines()))
    return 0


def _repair(store, checks, args: argparse.Namespace, max_jump: float):
    from tcp_lab.data.collector import DataCollector

    out, by_exchange = [], {}
    for c in checks:
        by_exchange.setdefault(c.exchange, []).append(c)
    for exchange, group in by_exchange.items():
        if not any(c.missing for c in group):
            out += group
            continue
        with DataCollector(store, bus=False, exchange=exchange,
                           exchange_url=args.exchange_url) as collector:
            for c in group:
                out += collector.check_data(c.symbol, c.timeframe, repair=True,
                                            max_jump=max_jump)
    return out


def _as_dict(c) -> dict:
    ranges = lambda rs: [[a.isoformat(), b.isoformat(), n] for a, b, n in rs]  # noqa: E731
    return {"exchange": c.exchange, "symbol": c.symbol, "timeframe": c.timeframe,
            "candles": c.candles, "first": c.first, "last": c.last,
            "missing": ranges(c.missing), "duplicates": c.duplicates,
            "suspicious": c.suspicious.astype({"ts": "str"}).to_dict("records"),
            "repaired": c.repaired, "confirmed_empty": ranges(c.confirmed_empty),
            "still_missing": None if c.still_missing is None else ranges(c.still_missing),
            "ok": c.ok}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check (and repair) stored candles, import data dumps")
    cmds = p.add_subparsers(dest="data_command", metavar="ACTION")
    cmds.required = True
    check = cmds.add_parser(
        "check", help="report missing candles, duplicates and suspicious values per series",
        description="Per stored series: missing candles (ranges on the grid between the first "
                    "and the last candle), duplicates, suspicious values (non-positive prices, "
                    "zero volume, jumps). --repair fetches the missing ranges from the exchange "
                    "and reports what it confirmed as empty (no trades). Exit status 1 when "
                    "something remains.")
    check.add_argument("--exchange", help="only this exchange")
    check.add_argument("--symbol", help="only this symbol, e.g. BTC/USDT")
    check.add_argument("--timeframe", help="only this timeframe, e.g. 1m")
    check.add_argument("--repair", action="store_true",
                       help="fetch missing candles from the exchange (or --exchange-url)")
    check.add_argument("--exchange-url", help="exchange emulator base URL for --repair")
    check.add_argument("--max-jump", type=float, default=None,
                       help="flag close-to-close changes above this fraction (default 0.25)")
    check.add_argument("--url", help="database URL (default: the database_url setting)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=_check)
    imp = cmds.add_parser(
        "import", help="load exchange data dumps (Binance aggTrades/trades/klines) into the store",
        description="Load Binance's public data dumps (data.binance.vision: aggTrades, trades, "
                    "klines; .zip or .csv, with or without a header, times in ms or µs) or "
                    "generic trade files (CSV with a header, Parquet: ts, price, amount, optional "
                    "id and side) into the store: trades into raw_trades, klines as candles "
                    "stamped by close time. Importing a file twice stores each trade once.")
    imp.add_argument("files", nargs="+", metavar="FILE", help="dump files to import")
    imp.add_argument("--exchange", required=True, help="exchange id stored with the data, "
                     "e.g. binance")
    imp.add_argument("--symbol", help="e.g. BTC/USDT (default: from a Binance file name)")
    imp.add_argument("--kind", default="auto",
                     choices=["auto", "aggtrades", "trades", "klines", "generic"],
                     help="what the files hold (default: told from the name or first line)")
    imp.add_argument("--timeframe", help="the klines' timeframe, e.g. 1m (default: from the "
                     "file name)")
    imp.add_argument("--url", help="database URL (default: the database_url setting)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(handler=_import)
