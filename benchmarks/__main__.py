"""Run every ``benchmarks/bench_*.py`` in turn; each prints a table and writes JSON.

Usage: ``python -m benchmarks [--quick] [--only store aggregate ...]``. Figures
land in ``benchmarks/results/<name>.json``. Run on an otherwise idle machine:
the figures are wall-clock measurements taken side by side in one run.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="e.g. store aggregate")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                   if m.name.startswith("bench_"))
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(names)}")
        names = [n for n in names if n in args.only]
    failed = []
    for name in names:
        print(f"\n=== benchmarks/bench_{name}.py ===", flush=True)
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        try:
            module.main(["--quick"] if args.quick else [])
        except Exception as e:  # report and go on with the others
            print(f"bench_{name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(name)
        print(f"(bench_{name}: {time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
