"""Data check: holes, duplicates, suspicious values; repair from the exchange (emulator)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tcp_lab.cli import main as cli
from tcp_lab.data.backfill import compress_ranges, first_close_after
from tcp_lab.data.collector import DataCollector
from tcp_lab.data.providers.base import grid
from tcp_lab.data.quality import check_series, check_store
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tests.data.collector_support import CCXT, COLS, FAST, emulator, kline_truth


@pytest.fixture(scope="module")
def quiet_emu():
    """A thin market: many minutes without a trade (genuinely empty candles)."""
    with emulator(hours=4, trade_rate=0.02, seed=21) as server:
        yield server


def make(emu, store) -> DataCollector:
    return DataCollector(store, bus=False, exchange_url=emu.base_url, provider_options=CCXT,
                         backoff=FAST)


def span(emu):
    since = pd.Timestamp(emu.market.genesis_ms, unit="ms", tz="UTC") + pd.Timedelta("5min")
    return since, since + pd.Timedelta("2h")


def punch_a_hole(c: DataCollector, since, until):
    """Backfill two ranges with an hour-long hole between them; return the hole's slots."""
    mid = since + pd.Timedelta("30min")
    c.backfill("BTC/USDT", "1m", since=since, until=mid)
    c.backfill("BTC/USDT", "1m", since=mid + pd.Timedelta("1h"), until=until)
    return grid(mid + pd.Timedelta("1min"), mid + pd.Timedelta("1h"), "1m")


def test_check_finds_a_hole_and_repair_fills_it_reporting_confirmed_empty(quiet_emu,
                                                                           store_url):
    since, until = span(quiet_emu)
    truth = kline_truth(quiet_emu, "BTC/USDT", "1m", first_close_after(since, "1m"), until)
    quiet = grid(truth.index[0], truth.index[-1], "1m").difference(truth.index)
    assert len(quiet) > 5  # the thin market has genuinely empty minutes
    with make(quiet_emu, store_url) as c:
        hole = punch_a_hole(c, since, until)
        [before] = c.check_data("BTC/USDT", "1m")
        missing = grid(before.first, before.last, "1m").difference(
            c.store.load_candles("binance", "BTC/USDT", "1m").index)
        assert set(hole) <= set(missing)
        assert before.missing == compress_ranges(missing, "1m") and not before.ok
        [after] = c.check_data("BTC/USDT", "1m", repair=True)
        stored = c.store.load_candles("binance", "BTC/USDT", "1m")
    pd.testing.assert_frame_equal(stored[COLS], truth.loc[stored.index[0]:], check_freq=False)
    assert after.repaired == len(truth.index.intersection(hole)) > 0
    confirmed = pd.DatetimeIndex([t for a, b, _ in after.confirmed_empty
                                  for t in grid(a, b, "1m")])
    assert set(confirmed) == set(quiet.intersection(grid(stored.index[0], stored.index[-1],
                                                         "1m")))
    assert after.still_missing == [] and after.ok
    assert "confirmed empty" in "\n".join(after.lines())


def test_suspicious_values_and_clean_series():
    candles = make_candles(50, "5m", seed=1)
    jump = candles.index[20]
    candles.loc[jump:, ["open", "high", "low", "close"]] *= 1.6  # a 60 % jump
    candles.loc[candles.index[30], "volume"] = 0.0
    with open_store("duckdb:///:memory:") as store:
        store.save_candles(candles, "binance", "BTC/USDT", "5m")
        store.save_candles(make_candles(10, "1h"), "binance", "ETH/USDT", "1h")
        check = check_series(store, "binance", "BTC/USDT", "5m")
        reasons = dict(zip(check.suspicious["ts"], check.suspicious["reason"], strict=True))
        assert "jumps more than 25%" in reasons[jump]
        assert "zero volume" in reasons[candles.index[30]]
        assert check.missing == [] and check.duplicates == 0 and not check.ok
        assert len(check_series(store, "binance", "BTC/USDT", "5m", max_jump=0.7)
                   .suspicious) == 1
        clean = check_store(store, symbol="ETH/USDT")
        assert len(clean) == 1 and clean[0].ok and clean[0].candles == 10
        assert check_store(store, exchange="kraken") == []


def test_cli_data_check_reports_and_repairs(quiet_emu, tmp_path, capsys):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    since, until = span(quiet_emu)
    with make(quiet_emu, url) as c:
        punch_a_hole(c, since, until)
    assert cli(["data", "check", "--url", url, "--symbol", "BTC/USDT"]) == 1
    out = capsys.readouterr().out
    assert "binance BTC/USDT 1m" in out and "missing" in out
    assert cli(["data", "check", "--url", url, "--repair", "--exchange-url",
                quiet_emu.base_url]) == 0
    out = capsys.readouterr().out
    assert "confirmed empty" in out and "OK" in out
    assert cli(["data", "check", "--url", url, "--json"]) == 1  # quiet minutes remain holes
    [report] = json.loads(capsys.readouterr().out)
    assert report["symbol"] == "BTC/USDT" and report["still_missing"] is None
    assert np.sum([n for *_, n in report["missing"]]) > 0
    assert cli(["data", "check", "--url", url, "--symbol", "NOPE/USDT"]) == 0
    assert "no stored series" in capsys.readouterr().out
