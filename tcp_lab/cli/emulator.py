"""``tcp-lab emulator``: serve the Binance-compatible exchange emulator until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import sys

from tcp_lab.cli._times import utc_time


def _serve(args: argparse.Namespace) -> int:
    from tcp_lab.data.emulator.server import EmulatorServer

    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    server = EmulatorServer(symbols=symbols, seed=args.seed, host=args.host, port=args.port,
                            genesis=args.genesis, start_at=args.start_at, speed=args.speed,
                            trade_rate=args.trade_rate, warm_days=args.warm_days)

    def ready() -> None:
        print(f"tcp-lab emulator: serving {', '.join(symbols)} (seed {args.seed}) at "
              f"{server.base_url} (websocket {server.ws_url}); Ctrl-C to stop", flush=True)
        print(f"  use it: make_exchange('binance', exchange_url='{server.base_url}')",
              flush=True)

    server.run_forever(on_ready=ready)
    print("tcp-lab emulator: stopped", file=sys.stderr, flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulator", help="serve a Binance-compatible exchange emulator on this machine",
        description="Serve deterministic synthetic spot markets over Binance's REST and "
                    "websocket wire format, for the unmodified ccxt client.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one "
                   "(default 8765)")
    p.add_argument("--symbols", default="BTC/USDT,ETH/USDT",
                   help="comma-separated ccxt symbols (default BTC/USDT,ETH/USDT)")
    p.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    p.add_argument("--genesis", type=utc_time, default="2024-01-01T00:00Z",
                   help="first instant of the market, UTC (default 2024-01-01T00:00Z)")
    p.add_argument("--start-at", type=utc_time, default=None,
                   help="emulated time at start, e.g. 2024-06-01T00:00Z (default: now)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="emulated seconds per real second (default 1)")
    p.add_argument("--trade-rate", type=float, default=1.0,
                   help="multiplier of the trade count (default 1)")
    p.add_argument("--warm-days", type=int, default=500,
                   help="precompute daily summaries of this many recent days in the "
                        "background, so 1d klines answer fast (default 500; 0 = off)")
    p.set_defaults(handler=_serve)
