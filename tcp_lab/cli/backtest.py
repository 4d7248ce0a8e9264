"""``tcp-lab backtest``: run one strategy on candles from a file or the store."""

from __future__ import annotations

import argparse
import json
import math
import sys

from tcp_lab.cli._times import EXAMPLE, utc_time


def _load_from_store(args: argparse.Namespace):
    from tcp_lab.errors import ConfigError, DataError

    if not (args.exchange and args.symbol and args.timeframe):
        raise ConfigError(
            "backtest: no candles given",
            hint="pass --candles FILE, or --exchange, --symbol and --timeframe for the store",
        )
    try:
        from tcp_lab.store import open_store
    except ImportError as e:
        raise ConfigError(
            f"backtest: the candle store is not available ({e})",
            hint="pass --candles FILE instead",
        ) from e
    with open_store() as store:
        candles = store.load_candles(
            args.exchange, args.symbol, args.timeframe, start=args.start, end=args.end
        )
    if len(candles) == 0:
        bounded = args.start or args.end
        span = f" between {args.start or '…'} and {args.end or '…'}" if bounded else ""
        raise DataError(
            f"no candles for {args.exchange} {args.symbol} {args.timeframe} in the store{span}",
            hint="collect or import them first, or pass --candles FILE",
        )
    return candles


def _jsonable(value: object) -> object:
    """A metric for JSON: non-finite floats and NaT as null, durations in ISO 8601."""
    import pandas as pd

    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timedelta):
        return value.isoformat()  # "P0DT3H12M0S"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _run(args: argparse.Namespace) -> int:
    from tcp_lab.backtest import run_backtest
    from tcp_lab.cli._candles import build_strategy, read_candles_file
    from tcp_lab.reports.html import format_metric

    strategy = build_strategy(args.strategy, args.parameters)
    candles = read_candles_file(args.candles) if args.candles else _load_from_store(args)
    result = run_backtest(
        strategy,
        candles,
        fees=args.fees,
        slippage=args.slippage,
        init_cash=args.init_cash,
        size=args.size,
        size_type=args.size_type,
        direction=args.direction,
        price=args.price,
        timeframe=args.timeframe,
        symbol=args.symbol,
        exchange=args.exchange,
    )
    metrics = result.summary()
    warmup = int(strategy.warmup)
    if len(candles) <= warmup:
        print(f"tcp-lab backtest: note: {len(candles)} candles, but {result.label} needs "
              f"{warmup} candles of warm-up before its first signal: no trade can happen",
              file=sys.stderr)
    written = {}
    if args.html:
        written["report"] = str(result.to_html(args.html))
    if args.save:
        written["run"] = str(result.save())
    if args.json:  # stdout is one JSON document, paths included
        clean = {k: _jsonable(v) for k, v in metrics.items()}
        print(json.dumps({"strategy": result.label, "metrics": clean, **written},
                         default=float))
        return 0
    print(result.label)
    for key, value in metrics.items():
        print(f"  {key:<20} {format_metric(key, value)}")
    for key, path in written.items():
        print(f"{key}: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        help="backtest a strategy and print its metrics",
        description="Backtest a strategy on candles from a file or from the store. Fills at "
        "the signal candle's close unless --price next_open.",
    )
    p.add_argument("--strategy", required=True,
                   help="registry name, dotted path pkg.mod:Class, or a .json config")
    p.add_argument("--parameters", metavar="JSON", help='e.g. \'{"fast": 10, "slow": 30}\'')
    src = p.add_argument_group("candles (a file, or the store)")
    src.add_argument("--candles", metavar="FILE", help=".parquet or .csv with a ts column")
    src.add_argument("--exchange", help="e.g. binance")
    src.add_argument("--symbol", help="e.g. BTC/USDT")
    src.add_argument("--timeframe", help="e.g. 1m (inferred from a file when omitted)")
    src.add_argument("--start", type=utc_time, help=f"first candle's close time, {EXAMPLE}")
    src.add_argument("--end", type=utc_time, help="last candle's close time (as --start)")
    opt = p.add_argument_group("simulation")
    opt.add_argument("--fees", type=float, default=0.001, help="per fill, 0.001 = 0.1%%")
    opt.add_argument("--slippage", type=float, default=0.0, help="fraction of the price")
    opt.add_argument("--init-cash", type=float, default=10_000.0)
    opt.add_argument("--size", type=float, default=1.0, help="see --size-type (default 1.0)")
    opt.add_argument("--size-type", choices=("percent", "value", "amount"), default="percent",
                     help="percent: fraction of equity; value: quote amount; amount: base units")
    opt.add_argument("--direction", choices=("long", "longshort"), default="long")
    opt.add_argument("--price", choices=("close", "next_open"), default="close")
    out = p.add_argument_group("output")
    out.add_argument("--html", metavar="FILE",
                     help="write an HTML report (it loads the plotly.min.js written beside it)")
    out.add_argument("--save", action="store_true", help="store the run under $TCP_LAB_HOME")
    out.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(handler=_run)
