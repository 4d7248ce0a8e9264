"""``tcp-lab data check|import``: check stored candles, import exchange data dumps.

``data check [--repair]``: holes, duplicates and suspicious values in stored
candles. A missing candle is *confirmed quiet* when the exchange reported its
slot had no trades (recorded by the backfill or repair that asked), else a
*hole*. Exit status: 0 when every series checked is clean (no holes, duplicates
or suspicious values), 1 when something remains. ``--repair`` goes to each
series' recorded source unless ``--exchange-url`` says otherwise
(:mod:`tcp_lab.data.sources`).

``data import FILE…``: Binance dumps (aggTrades, trades, klines) or generic trade
files into the store (:func:`tcp_lab.data.importer.import_files`).
"""

from __future__ import annotations

import argparse
import json

from tcp_lab.errors import ConfigError, ServiceError

_HOLES_HINT = ("holes are missing candles the exchange has not confirmed as quiet (no trades): "
               "`tcp-lab data check --repair` asks it, and a repaired series checks clean")
_STILL_HINT = ("the exchange did not cover what holes remain (outside its history?), or the "
               "series was not repaired (see the notes)")


def _check(args: argparse.Namespace) -> int:
    from tcp_lab.data.quality import DEFAULT_MAX_JUMP, check_store
    from tcp_lab.store import open_store

    max_jump = DEFAULT_MAX_JUMP if args.max_jump is None else args.max_jump
    if args.exchange_url is not None:
        from tcp_lab.data.providers.ccxt_client import check_exchange_url

        if not args.repair:
            raise ConfigError(f"--exchange-url {args.exchange_url} is only used by --repair",
                              hint="add --repair, or drop --exchange-url")
        check_exchange_url(args.exchange_url)  # a malformed URL: one line, before any work
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
        if any(c.holes for c in checks):
            print(_STILL_HINT if args.repair else _HOLES_HINT)
    return 0 if all(c.ok for c in checks) else 1


def _repair(store, checks, args: argparse.Namespace, max_jump: float):
    """Repair each series with holes from its recorded source (or ``--exchange-url``)."""
    from tcp_lab.data.collector import DataCollector
    from tcp_lab.data.sources import plan_repair

    recorded = {(r.exchange, r.symbol, r.timeframe): r.source
                for r in store.load_series_sources().itertuples()}
    repaired: dict[int, object] = {}
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, c in enumerate(checks):
        if not c.holes:
            continue
        plan = plan_repair(c.exchange, c.symbol, c.timeframe,
                           recorded.get((c.exchange, c.symbol, c.timeframe)), args.exchange_url)
        if plan.go:
            groups.setdefault((c.exchange, plan.exchange_url), []).append(i)
        else:
            c.note = plan.note
    for (exchange, url), members in groups.items():
        with DataCollector(store, bus=False, exchange=exchange,
                           exchange_url=url) as collector:
            for i in members:
                try:
                    [repaired[i]] = collector.check_data(checks[i].symbol, checks[i].timeframe,
                                                         repair=True, max_jump=max_jump)
                except ServiceError as e:
                    if args.exchange_url is not None or url is None:
                        raise
                    raise ServiceError(  # the retries are spent: say where the URL came from
                        e.message, hint=f"{checks[i].series} was collected from {url}; start "
                        "that emulator again, or pass --exchange-url") from e
    return [repaired.get(i, c) for i, c in enumerate(checks)]


def _import(args: argparse.Namespace) -> int:
    from tcp_lab.data.importer import import_files
    from tcp_lab.store import open_store

    with open_store(args.url) as store:
        summary = import_files(store, args.files, exchange=args.exchange, symbol=args.symbol,
                               kind=args.kind, timeframe=args.timeframe,
                               progress=not args.no_progress)
    print("\n".join(summary.lines()))
    return 0


def _as_dict(c) -> dict:
    ranges = lambda rs: [[a.isoformat(), b.isoformat(), n] for a, b, n in rs]  # noqa: E731
    return {"exchange": c.exchange, "symbol": c.symbol, "timeframe": c.timeframe,
            "candles": c.candles, "first": c.first, "last": c.last,
            "missing": ranges(c.missing), "quiet": ranges(c.quiet), "holes": ranges(c.holes),
            "duplicates": c.duplicates,
            "suspicious": c.suspicious.astype({"ts": "str"}).to_dict("records"),
            "repaired_from": c.repaired_from, "repaired": c.repaired,
            "confirmed_empty": ranges(c.confirmed_empty), "note": c.note, "ok": c.ok,
            "verdict": c.verdict}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check (and repair) stored candles, import data dumps")
    cmds = p.add_subparsers(dest="data_command", metavar="ACTION")
    cmds.required = True
    check = cmds.add_parser(
        "check", help="report missing candles, duplicates and suspicious values per series",
        description="Per stored series: missing candles (slots on the grid between the first "
                    "and the last candle), split into confirmed quiet ones (the exchange "
                    "reported no trades there; recorded by the backfill or repair that asked) "
                    "and holes (unconfirmed); duplicates; suspicious values (non-positive "
                    "prices, zero volume, jumps). --repair fetches the holes from the source "
                    "each series was collected from (or --exchange-url), stores what it has "
                    "and records what it reports empty, so a repaired series checks clean. "
                    "Exit status 1 when a hole, duplicate or suspicious value remains.")
    check.add_argument("--exchange", help="only this exchange")
    check.add_argument("--symbol", help="only this symbol, e.g. BTC/USDT")
    check.add_argument("--timeframe", help="only this timeframe, e.g. 1m")
    check.add_argument("--repair", action="store_true",
                       help="fetch the holes from each series' recorded source (where it was "
                            "collected from), or from --exchange-url")
    check.add_argument("--exchange-url",
                       help="repair from this base URL instead: an emulator's, or the "
                            "exchange's REST host (e.g. https://api.binance.com) for the real "
                            "exchange; needed for series without a recorded source (imports)")
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
