"""``tcp-lab demo``: the offline end-to-end demo (what ``make demo`` runs)."""

from __future__ import annotations

import argparse


def _demo(args: argparse.Namespace) -> int:
    from tcp_lab.demo import run_demo

    result = run_demo(args.home, report_dir=args.report_dir, days=args.days,
                      batch=not args.no_batch)
    return 0 if result.bot_matches_backtest else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the offline demo on the embedded default",
        description="The whole story offline, on the embedded default (what `make demo` runs): "
        "start the exchange emulator on 127.0.0.1, collect a few days of candles with the real "
        "ccxt client into the default embedded store (<home>/tcp_lab.duckdb, so notebooks and "
        "panels show them afterwards), check them, backtest a strategy, replay the candles "
        "through a paper-trading bot and compare its fills with the backtest's, run a small "
        "papermill batch, and write reports/demo.html. It never writes to a PostgreSQL "
        "database.")
    p.add_argument("--home", default=None,
                   help="tcp_lab home (default: $TCP_LAB_HOME or <project root>/data)")
    p.add_argument("--report-dir", default="reports",
                   help="where demo.html goes (default: reports)")
    p.add_argument("--days", type=int, default=3, help="days of candles per symbol (default: 3)")
    p.add_argument("--no-batch", action="store_true", help="skip the papermill batch step")
    p.set_defaults(handler=_demo)
