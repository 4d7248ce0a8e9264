"""``tcp-lab strategy list|check``: the registered strategies and the look-ahead guard."""

from __future__ import annotations

import argparse


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
    from tcp_lab.strategies import check_lookahead
    from tcp_lab.testing import make_candles
    from tcp_lab.timeframes import validate_candles

    strategy = build_strategy(args.name, args.parameters)
    if args.candles:
        candles = validate_candles(read_candles_file(args.candles), args.timeframe,
                                   name=f"candles in {args.candles}")
    else:
        n = args.n or max(3000, 4 * strategy.warmup)
        candles = make_candles(n, args.timeframe or "1m", seed=args.seed)
    report = check_lookahead(strategy, candles, points=args.points, margin=args.margin)
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
    ck.add_argument("--timeframe", help="timeframe of the candles (e.g. 1m)")
    ck.add_argument("--n", type=int, default=None, help="synthetic candles (default 3000)")
    ck.add_argument("--seed", type=int, default=0, help="seed of the synthetic candles")
    ck.add_argument("--points", type=int, default=24, help="candles to sample (default 24)")
    ck.add_argument("--margin", type=int, default=0, help="extra warm-up candles")
    ck.set_defaults(handler=_check)
