"""``tcp-lab emulator`` starts, prints its URLs, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

from tcp_lab.cli import main


def test_emulator_cli_serves_until_terminated():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcp_lab", "emulator", "--port", "0", "--symbols", "BTC/USDT",
         "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+) \(websocket ws://127\.0\.0\.1:\d+/ws\)",
                      line)
        assert m, line
        with urllib.request.urlopen(m.group(1) + "/api/v3/exchangeInfo", timeout=10) as r:
            symbols = [s["symbol"] for s in json.loads(r.read())["symbols"]]
        assert symbols == ["BTCUSDT"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in err


def test_emulator_cli_rejects_a_bad_symbol(capsys):
    assert main(["emulator", "--port", "0", "--symbols", "btc-usdt"]) == 2
    assert "BASE/QUOTE" in capsys.readouterr().err
