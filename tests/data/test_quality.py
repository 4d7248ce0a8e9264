"""Data check: holes vs confirmed-quiet slots, duplicates, suspicious values; repair from
the source a series was collected from (the emulator's realistic, thin market)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tcp_lab.cli import main as cli
from tcp_lab.data.backfill import compress_ranges, first_close_after
from tcp_lab.data.collector import DataCollector
from tcp_lab.data.importer import import_files
from tcp_lab.data.providers.base import grid
from tcp_lab.data.quality import check_series, check_store
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles
from tests.data.collector_support import CCXT, COLS, FAST, emulator, kline_truth


@pytest.fixture(scope="module")
def quiet_emu():
    """A thin market: many minutes without a trade (genuinely empty candles), bursts."""
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


def slots(ranges, timeframe="1m") -> set:
    return {t for a, b, _ in ranges for t in grid(a, b, timeframe)}


def quiet_truth(emu, since, until) -> pd.DatetimeIndex:
    """The emulator's empty minutes between its first and last non-empty one."""
    truth = kline_truth(emu, "BTC/USDT", "1m", first_close_after(since, "1m"), until)
    return grid(truth.index[0], truth.index[-1], "1m").difference(truth.index)


def test_a_backfill_records_the_quiet_minutes_between_its_candles(quiet_emu, store_url):
    since, until = span(quiet_emu)
    quiet = quiet_truth(quiet_emu, since, until)
    assert len(quiet) > 5  # the thin market has genuinely empty minutes
    with make(quiet_emu, store_url) as c:
        c.backfill("BTC/USDT", "1m", since=since, until=until)
        stored = c.store.load_candles("binance", "BTC/USDT", "1m")
        recorded = c.store.load_quiet_slots("binance", "BTC/USDT", "1m")
        [check] = c.check_data("BTC/USDT", "1m")
    # exactly the empty minutes between the first and last candle: none before the first
    # trade, none after the last candle (the newest slots an exchange may still fill in)
    assert list(recorded) == list(quiet.intersection(grid(stored.index[0], stored.index[-1],
                                                          "1m")))
    assert check.ok and check.holes == [] and check.quiet == check.missing != []
    assert "OK" in check.summary() and "confirmed quiet" in "\n".join(check.lines())


def test_holes_then_repair_confirms_quiet_slots_and_the_next_check_is_clean(quiet_emu,
                                                                              store_url):
    since, until = span(quiet_emu)
    truth = kline_truth(quiet_emu, "BTC/USDT", "1m", first_close_after(since, "1m"), until)
    quiet = quiet_truth(quiet_emu, since, until)
    with make(quiet_emu, store_url) as c:
        hole = punch_a_hole(c, since, until)
        [before] = c.check_data("BTC/USDT", "1m")
        missing = grid(before.first, before.last, "1m").difference(
            c.store.load_candles("binance", "BTC/USDT", "1m").index)
        assert before.missing == compress_ranges(missing, "1m") and not before.ok
        assert set(hole) <= slots(before.holes) and slots(before.quiet) <= set(quiet)
        assert "not confirmed quiet" in before.verdict
        [after] = c.check_data("BTC/USDT", "1m", repair=True)
        stored = c.store.load_candles("binance", "BTC/USDT", "1m")
        [again] = c.check_data("BTC/USDT", "1m")
    pd.testing.assert_frame_equal(stored[COLS], truth.loc[stored.index[0]:], check_freq=False)
    assert after.repaired == len(truth.index.intersection(hole)) > 0
    assert after.repaired_from == quiet_emu.base_url and after.note == ""
    assert slots(after.confirmed_empty) == set(quiet.intersection(hole)) != set()
    assert after.ok and after.holes == [] and after.verdict == "OK"
    in_span = quiet.intersection(grid(stored.index[0], stored.index[-1], "1m"))
    assert again.ok and slots(again.quiet) == set(in_span) and again.holes == []
    assert again.repaired_from is None  # a plain check: remembered, not asked again


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
        assert check.verdict == "2 suspicious candle(s)"
        assert len(check_series(store, "binance", "BTC/USDT", "5m", max_jump=0.7)
                   .suspicious) == 1
        clean = check_store(store, symbol="ETH/USDT")
        assert len(clean) == 1 and clean[0].ok and clean[0].candles == 10
        assert check_store(store, exchange="kraken") == []


def test_recorded_quiet_slots_explain_missing_candles_only():
    candles = make_candles(10, "1m", seed=2).drop(index=make_candles(10, "1m").index[[3, 4, 7]])
    gone = make_candles(10, "1m").index[[3, 4, 7]]
    with open_store("duckdb:///:memory:") as store:
        store.save_candles(candles, "binance", "BTC/USDT", "1m")
        # a stale record under a stored candle, and one outside the series: both ignored
        store.save_quiet_slots(gone[:2].append(candles.index[:1]), "binance", "BTC/USDT",
                               "1m")
        check = check_series(store, "binance", "BTC/USDT", "1m")
    assert slots(check.quiet) == set(gone[:2]) and slots(check.holes) == {gone[2]}
    assert check.missing_count == 3 and check.quiet_count == 2 and check.hole_count == 1
    assert not check.ok and check.verdict == "1 missing candle(s) not confirmed quiet (1 hole(s))"
    lines = "\n".join(check.lines())
    assert "hole (unconfirmed)" in lines and "confirmed quiet" in lines


# ----------------------------------------------------------------------------- the CLI
def test_cli_check_repair_from_the_recorded_source_then_clean(quiet_emu, tmp_path, capsys,
                                                               monkeypatch):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    since, until = span(quiet_emu)
    with make(quiet_emu, url) as c:
        punch_a_hole(c, since, until)
    assert cli(["data", "check", "--url", url, "--symbol", "BTC/USDT"]) == 1
    out = capsys.readouterr().out
    assert "binance BTC/USDT 1m" in out and "hole (unconfirmed)" in out
    assert "confirmed quiet" in out and "NOT OK" in out and "--repair" in out
    # no --exchange-url: the repair goes where the series came from, the emulator
    made = []
    real_init = DataCollector.__init__

    def spy(self, *args, **kw):
        made.append(kw.get("exchange_url"))
        real_init(self, *args, **kw)

    monkeypatch.setattr(DataCollector, "__init__", spy)
    assert cli(["data", "check", "--url", url, "--repair"]) == 0
    out = capsys.readouterr().out
    assert made == [quiet_emu.base_url]
    assert f"repaired from {quiet_emu.base_url}" in out and "OK" in out
    assert "note:" not in out  # the recorded source was used: nothing to say
    # remembered: the next plain check passes, JSON says why
    assert cli(["data", "check", "--url", url, "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["holes"] == [] and report["verdict"] == "OK"
    assert np.sum([n for *_, n in report["quiet"]]) == np.sum([n for *_, n in
                                                               report["missing"]]) > 0
    assert report["repaired_from"] is None
    assert cli(["data", "check", "--url", url, "--symbol", "NOPE/USDT"]) == 0
    assert "no stored series" in capsys.readouterr().out
    assert made == [quiet_emu.base_url]  # nothing to repair: no exchange asked


def test_cli_repair_from_another_url_says_so_in_one_line(quiet_emu, tmp_path, capsys):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    since, until = span(quiet_emu)
    with make(quiet_emu, url) as c:
        punch_a_hole(c, since, until)
    other = quiet_emu.base_url.replace("127.0.0.1", "localhost")  # same server, other URL
    assert cli(["data", "check", "--url", url, "--repair", "--exchange-url", other]) == 0
    out = capsys.readouterr().out
    notes = [ln for ln in out.splitlines() if "note:" in ln]
    assert notes == [f"    note: binance BTC/USDT 1m: collected from {quiet_emu.base_url}, "
                     f"repaired from {other}"]
    with open_store(url) as store:  # the repair keeps the source it was collected from
        assert store.load_series_sources()["source"].tolist() == [quiet_emu.base_url]


def _klines_dump(emu, path, since, until, skip: pd.DatetimeIndex):
    """A Binance 1m klines dump (no header, ms) of the emulator's market, minus ``skip``."""
    k = emu.market.klines("BTC/USDT", "1m", since.value // 1_000_000,
                          until.value // 1_000_000)
    lines = [f"{o},{op},{h},{lo},{c},{v},{ct},{q},{n},0,0,0"
             for o, op, h, lo, c, v, ct, q, n in zip(
                 k.open_time, k.open, k.high, k.low, k.close, k.volume, k.close_time,
                 k.quote_volume, k.count, strict=True)
             if pd.Timestamp((o + 60_000) * 1000, unit="us", tz="UTC") not in skip]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_imported_dump_has_no_source_and_is_not_sent_anywhere(quiet_emu, tmp_path, capsys,
                                                                   monkeypatch):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    since, until = span(quiet_emu)
    hole = grid(since + pd.Timedelta("31min"), since + pd.Timedelta("90min"), "1m")
    dump = _klines_dump(quiet_emu, tmp_path / "BTCUSDT-1m-2024-01.csv", since, until, hole)
    with open_store(url) as store:
        import_files(store, [dump], exchange="binance", progress=False)
        assert store.load_series_sources().empty  # imports record no source
    with open_store(url) as store:
        [before] = check_store(store, symbol="BTC/USDT")
    assert before.holes and not before.quiet  # nothing confirmed: every gap is a hole

    def refuse(*args, **kw):
        raise AssertionError("no exchange may be asked without a source")

    with monkeypatch.context() as m:
        m.setattr(DataCollector, "__init__", refuse)
        assert cli(["data", "check", "--url", url, "--repair"]) == 1
    out = capsys.readouterr().out
    notes = [ln for ln in out.splitlines() if "note:" in ln]
    assert notes == ["    note: binance BTC/USDT 1m: not repaired: no recorded source (imported "
                     "from files, or collected before tcp_lab recorded sources); pass "
                     "--exchange-url URL (the emulator's, or https://api.binance.com for the "
                     "real exchange)"]
    # told where to go, the repair goes there and says the series had no source
    assert cli(["data", "check", "--url", url, "--repair", "--exchange-url",
                quiet_emu.base_url]) == 0
    out = capsys.readouterr().out
    assert (f"note: binance BTC/USDT 1m: no recorded source (imported from files, or collected "
            f"before tcp_lab recorded sources), repaired from {quiet_emu.base_url}") in out
    assert cli(["data", "check", "--url", url]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--repair", "--exchange-url", "ftp://x"], "exchange_url='ftp://x' is not an http(s) URL"),
    (["--exchange-url", "http://127.0.0.1:1"], "--exchange-url http://127.0.0.1:1 is only "
                                               "used by --repair"),
])
def test_cli_bad_exchange_url_is_one_line(tmp_path, capsys, argv, message):
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    assert cli(["data", "check", "--url", url, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_demo_check_step_repairs_its_holes_and_ends_clean(tmp_path):
    """`make demo`'s data check on the emulator's thin market, after an earlier collection
    that left a hole: every series checks clean, the hole repaired from the emulator."""
    from tcp_lab.data.emulator import EmulatorServer
    from tcp_lab.demo import SYMBOLS, TIMEFRAMES, _collect, demo_settings

    settings = demo_settings(tmp_path / "home")
    until = pd.Timestamp.now(tz="UTC").floor("1h")
    genesis = until.floor("1D") - pd.Timedelta(days=2)
    with EmulatorServer(symbols=SYMBOLS, seed=0, genesis=genesis.isoformat(),
                        trade_rate=0.05) as emu:
        with make(emu, settings.database_url) as c:  # an earlier run, with a hole
            c.backfill("BTC/USDT", "1m", since=until - pd.Timedelta("1D"),
                       until=until - pd.Timedelta("20h"))
            c.backfill("BTC/USDT", "1m", since=until - pd.Timedelta("18h"),
                       until=until - pd.Timedelta("17h"))
        lines: list[str] = []
        checks = _collect(settings, emu.base_url, SYMBOLS, 1, lines.append)
        source = emu.base_url
    assert [(c.symbol, c.timeframe) for c in checks] == [(s, tf) for s in SYMBOLS
                                                         for tf in TIMEFRAMES]
    assert all(c.ok for c in checks), [c.summary() for c in checks]
    [btc] = [c for c in checks if (c.symbol, c.timeframe) == ("BTC/USDT", "1m")]
    assert btc.repaired_from == source and btc.repaired > 0 and btc.confirmed_empty
    assert sum(c.quiet_count for c in checks) > btc.quiet_count > 0  # thin: quiet minutes


def test_cli_repair_from_a_recorded_source_that_is_gone_says_where_it_came_from(
        tmp_path, capsys, monkeypatch):
    import socket

    import tcp_lab.data.collector as collector_module

    with socket.socket() as s:  # a port nobody listens on: the emulator of an earlier run
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    candles = make_candles(10, "1m", seed=3)
    with open_store(url) as store:
        store.save_candles(candles.drop(index=candles.index[4]), "binance", "BTC/USDT", "1m")
        store.save_series_source("binance", "BTC/USDT", "1m", gone)
    monkeypatch.setattr(collector_module, "DEFAULT_BACKOFF", FAST)  # retried, quickly
    assert cli(["data", "check", "--url", url, "--repair"]) == 2
    err = capsys.readouterr().err
    assert f"binance BTC/USDT 1m was collected from {gone}; start that emulator again" in err
    assert "gave up after" in err and len(err.strip().splitlines()) == 1, err
