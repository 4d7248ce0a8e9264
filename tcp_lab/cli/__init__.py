"""The ``tcp-lab`` command line.

Each module in this package adds one command group through a ``register(subparsers)``
function and is discovered automatically. Command modules import heavy libraries
(vectorbt, ccxt, …) inside their handlers, so ``tcp-lab --help`` stays fast.

One top-level handler turns a :class:`~tcp_lab.errors.TcpLabError` into one line
on stderr and exit status 2 (a DuckDB file held by another process says to run
``tcp-lab services up``); Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from tcp_lab.errors import TcpLabError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="tcp-lab",
        description="tcp_lab: collect market data, backtest strategies, paper-trade bots.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tcp-lab``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except TcpLabError as e:
        print(f"tcp-lab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tcp-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
