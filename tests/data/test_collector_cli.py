"""``tcp-lab collect`` in a subprocess against the emulator (port 0 on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tcp_lab.data.backfill import first_close_after
from tcp_lab.store import open_store
from tests.data.collector_support import COLS, emulator, kline_truth


@pytest.fixture(scope="module")
def emu():
    with emulator(hours=3) as server:
        yield server


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcp_lab", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ})


def test_collect_until_backfills_a_closed_range_and_exits(emu, tmp_path):
    db = tmp_path / "lab.duckdb"
    since = pd.Timestamp(emu.market.genesis_ms, unit="ms", tz="UTC") + pd.Timedelta("3min")
    until = since + pd.Timedelta("90min")
    fmt = "%Y-%m-%dT%H:%M"  # no zone: the CLI reads UTC
    proc = run("collect", "--exchange", "binance", "--symbols", "BTC/USDT,ETH/USDT",
               "--timeframes", "1m,5m", "--since", since.strftime(fmt), "--until",
               until.strftime(fmt), "--exchange-url", emu.base_url, "--url", f"duckdb:///{db}",
               "--no-bus")
    assert proc.returncode == 0, proc.stderr
    assert "backfill done" in proc.stdout and "BTC/USDT" in proc.stdout
    assert "candle" in proc.stderr  # the progress bar
    with open_store(f"duckdb:///{db}") as store:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            for tf in ("1m", "5m"):
                want = kline_truth(emu, symbol, tf, first_close_after(since, tf), until)
                pd.testing.assert_frame_equal(store.load_candles("binance", symbol, tf)[COLS],
                                              want, check_freq=False)


def test_errors_are_one_line_with_exit_status_2(emu, tmp_path):
    proc = run("collect", "--symbols", "NOPE/USDT", "--timeframes", "1m", "--since",
               "2024-01-01", "--until", "2024-01-02", "--exchange-url", emu.base_url,
               "--url", f"duckdb:///{tmp_path / 'x.duckdb'}", "--no-bus")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("tcp-lab: error: binance: symbol 'NOPE/USDT' is not listed")



def test_a_bad_time_is_a_one_line_error(tmp_path, capsys):
    from tcp_lab.cli import main

    with pytest.raises(SystemExit) as e:  # argparse's error, in command-line terms
        main(["collect", "--symbols", "BTC/USDT", "--since", "yesterday-ish", "--no-bus",
              "--url", f"duckdb:///{tmp_path / 'y.duckdb'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tcp-lab collect: error: argument --since: 'yesterday-ish' is not "
                          "a time")
    assert err.endswith("e.g. 2024-01-01 or 2024-01-01T12:00Z (a time without a zone is UTC)")


@pytest.mark.slow
def test_live_collect_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "live.duckdb"
    with emulator(hours=1, speed=60.0) as fast:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tcp_lab", "collect", "--symbols", "BTC/USDT",
             "--timeframes", "1m", "--exchange-url", fast.base_url, "--url", f"duckdb:///{db}",
             "--no-bus", "--store-raw"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)  # eight emulated minutes
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out
    with open_store(f"duckdb:///{db}") as store:
        assert len(store.load_candles("binance", "BTC/USDT", "1m")) >= 3
        raw = store.load_raw_trades("binance", "BTC/USDT")
    # how many trades eight emulated minutes hold depends on the hour the test runs (the
    # market is generated from "now"); what must hold is that none was lost: the
    # emulator numbers its trades consecutively
    assert len(raw) > 0
    ids = raw["id"].to_numpy()
    assert (ids == range(int(ids[0]), int(ids[0]) + len(ids))).all()
