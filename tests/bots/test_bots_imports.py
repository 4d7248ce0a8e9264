"""Dependency rules: bots never load vectorbt (the backtest's library) nor an exchange client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_bots_load_neither_vectorbt_nor_ccxt_nor_the_backtest():
    code = (
        "import sys\n"
        "import tcp_lab.bots, tcp_lab.bots.bot, tcp_lab.bots.manager, tcp_lab.bots.host_process\n"
        "import tcp_lab.cli.bots\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('vectorbt', 'ccxt')\n"
        "             or m.startswith('tcp_lab.backtest') or m.startswith('tcp_lab.data'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_no_order_placing_code_path():
    """Paper trading only: no exchange client, no order call, anywhere in the package."""
    source = "\n".join(p.read_text() for p in (ROOT / "tcp_lab" / "bots").glob("*.py"))
    for word in ("ccxt", "create_order", "create_market", "place_order", "import requests",
                 "aiohttp"):
        assert word not in source
