"""``tcp-lab strategy list|check``: the registered strategies and the look-ahead guard."""

from __future__ import annotations

import argparse
import sys

from tcp_lab.cli._times import EXAMPLE, utc_time


def _list(args: argparse.Namespace) -> int:
    from tcp_lab.strategies import get_strategy, list_strategies

    for name in list_strategies():
        strategy = get_strategy(name)
        params = ", ".join(
            f"{p.name}={p.default!r} ({p.describe()})" for p in strategy.parameters
        )
        doc = next(iter((type(strategy).__doc__ or "").strip().splitlines()), "")  # may be none
        print(f"{name:<20} {doc.replace('``', '')}")  # reST literals read as plain words
        print(f"{'':<20} parameters: {params}; warm-up {strategy.warmup} candles (defaults)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from tcp_lab.cli._candles import build_strategy, read_candles_file
    from tcp_lab.errors import ConfigError
    from tcp_lab.strategies import check_lookahead
    from tcp_lab.testing import make_candles
    from tcp_lab.timeframes import validate_candles

    strategy = build_strategy(args.name, args.parameters)
    if args.symbol and args.candles:
        raise ConfigError("strategy check: give --candles FILE or --symbol, not both")
    if args.symbol:
        from tcp_lab.ui.sources import resolve_candles

        if not args.timeframe:
            raise ConfigError("strategy check --symbol needs --timeframe (e.g. --timeframe 1m)")
        data = resolve_candles(args.exchange, args.symbol, args.timeframe, args.start, args.end,
                               source="store")
        candles, where = data.candles, data.description
    elif args.candles:
        candles = validate_candles(read_candles_file(args.candles), args.timeframe,
                                   name=f"candles in {args.candles}")
        where = f"{len(candles)} candles from {args.candles}"
    else:
        n = args.n or max(3000, 4 * strategy.warmup)
        candles = make_candles(n, args.timeframe or "1m", seed=args.seed)
        where = f"{n} synthetic candles (seed {args.seed})"
    print(f"checking {strategy!r} on {where}", file=sys.stderr, flush=True)
    report = check_lookahead(strategy, candles, points=args.points, full=args.full,
                             margin=args.margin)
    print(report.message)
    return 0 if report.ok else 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("strategy", help="list strategies, check them for look-ahead")
    cmds = p.add_subparsers(dest="strategy_command", metavar="ACTION")
    cmds.required = True
    ls = cmds.add_parser("list", help="the registered strategies and their parameters")
    ls.set_defaults(handler=_list)
    ck = cmds.add_parser(
        "check",
        help="look-ahead and warm-up check (exit 2 on failure)",
        description="Recompute the strategy on truncated candles and on trailing windows of "
        "warm-up length; print OK or the first bad bar.",
    )
    ck.add_argument("name", help="registry name, dotted path pkg.mod:Class, or a .json config")
    ck.add_argument("--parameters", metavar="JSON", help='e.g. \'{"fast": 10, "slow": 30}\'')
    ck.add_argument("--candles", metavar="FILE", help=".parquet/.csv candles (default: synthetic)")
    ck.add_argument("--symbol", help="check on this stored series (with --timeframe), e.g. "
                    "BTC/USDT")
    ck.add_argument("--exchange", default="binance", help="exchange of --symbol (default binance)")
    ck.add_argument("--start", type=utc_time, help=f"first close time of --symbol ({EXAMPLE})")
    ck.add_argument("--end", type=utc_time, help="last close time of --symbol")
    ck.add_argument("--timeframe", help="timeframe of the candles (e.g. 1m)")
    ck.add_argument("--n", type=int, default=None, help="synthetic candles (default 3000)")
    ck.add_argument("--seed", type=int, default=0, help="seed of the synthetic candles")
    ck.add_argument("--points", type=int, default=500,
                    help="candles to check, evenly spaced, besides every candle next to a "
                    "signal change (default 500)")
    ck.add_argument("--full", action="store_true", help="check every candle (slow on long "
                    "series)")
    ck.add_argument("--margin", type=int, default=0, help="extra warm-up candles")
    ck.set_defaults(handler=_check)
