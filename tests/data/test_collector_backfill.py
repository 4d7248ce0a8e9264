"""DataCollector.backfill against the emulator with the real ccxt client."""

from __future__ import annotations

import _thread
import threading

import pandas as pd
import pytest

from tcp_lab.bus import SYSTEM_EVENTS, market_channel, open_bus
from tcp_lab.data._sink import Sink
from tcp_lab.data.backfill import backfill_range, first_close_after, plan_ranges
from tcp_lab.data.collector import DataCollector
from tcp_lab.data.providers.ccxt_provider import CcxtProvider
from tcp_lab.errors import ConfigError, ServiceError
from tcp_lab.retry import Backoff
from tcp_lab.store import open_store
from tests.data.collector_support import CCXT, COLS, FAST, drain, emulator, kline_truth

HOURS = 6


@pytest.fixture(scope="module")
def emu():
    with emulator(hours=HOURS) as server:
        yield server


@pytest.fixture
def clean(emu):
    yield emu
    emu.clear_faults()


def collector(emu, store, **kw) -> DataCollector:
    kw.setdefault("bus", False)
    kw.setdefault("backoff", FAST)
    return DataCollector(store, exchange_url=emu.base_url, provider_options=CCXT, **kw)


def window(emu, hours: float = 2.0):
    since = emu.market.genesis_ms
    since = pd.Timestamp(since, unit="ms", tz="UTC") + pd.Timedelta("7min")
    return since, since + pd.Timedelta(hours=hours)


def klines_requests(emu) -> int:
    return emu.stats()["requests"].get("/api/v3/klines", 0)


def test_a_closed_range_stores_exactly_the_emulators_nonempty_klines(clean, store_url):
    since, until = window(clean)
    with collector(clean, store_url) as c:
        summary = c.backfill("BTC/USDT,ETH/USDT", "1m,5m,1h", since=since, until=until)
        for symbol in ("BTC/USDT", "ETH/USDT"):
            for tf in ("1m", "5m", "1h"):
                got = c.store.load_candles("binance", symbol, tf)
                want = kline_truth(clean, symbol, tf, first_close_after(since, tf), until)
                pd.testing.assert_frame_equal(got[COLS], want, check_freq=False)
                assert got["vwap"].between(got["low"], got["high"]).all()
    assert summary.candles == sum(s.stored for s in summary.series) > 0
    assert not summary.interrupted and all(s.complete for s in summary.series)
    assert "BTC/USDT" in str(summary) and len(summary.to_frame()) == 6


def test_a_second_run_resumes_after_the_last_stored_candle(clean, tmp_path):
    since, until = window(clean, hours=3)
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    with collector(clean, url) as c:
        c.backfill("BTC/USDT", "1m", since=since, until=until - pd.Timedelta("1h"))
        before = klines_requests(clean)
        again = c.backfill("BTC/USDT", "1m", since=since, until=until - pd.Timedelta("1h"))
        assert again.candles == 0 and klines_requests(clean) == before  # nothing refetched
        more = c.backfill("BTC/USDT", "1m", since=since, until=until)
        assert klines_requests(clean) - before == 1  # one page: the new hour only
        assert more.series[0].first == until - pd.Timedelta("59min")
        got = c.store.load_candles("binance", "BTC/USDT", "1m")
    want = kline_truth(clean, "BTC/USDT", "1m", first_close_after(since, "1m"), until)
    pd.testing.assert_frame_equal(got[COLS], want, check_freq=False)
    assert got.index.is_unique


def test_without_since_only_stored_series_resume(clean):
    with collector(clean, "duckdb:///:memory:") as c:
        summary = c.backfill("BTC/USDT", "1m")
        assert summary.candles == 0 and summary.requests == 0


def test_the_forming_candle_is_never_stored(clean):
    with collector(clean, "duckdb:///:memory:") as c:
        since = pd.Timestamp(clean.now_ms(), unit="ms", tz="UTC") - pd.Timedelta("20min")
        c.backfill("BTC/USDT", "1m,5m", since=since)
        now = pd.Timestamp(clean.now_ms(), unit="ms", tz="UTC")
        for tf in ("1m", "5m"):
            last = c.store.latest_candle_ts("binance", "BTC/USDT", tf)
            assert last is not None and last <= now
            assert last > now - pd.Timedelta(tf) - pd.Timedelta("10s")  # the last closed one


FAULTS = [
    ("rate_limit", {"retry_after": 1}),
    ("server_error", {}),
    ("server_error", {"body": "json", "status": 500}),
    ("timeout", {"seconds": 3}),
    ("malformed", {}),
    ("malformed", {"mode": "html"}),
]


@pytest.fixture(scope="module")
def reference(emu):
    """A fault-free backfill of the window the fault tests use."""
    since, until = window(emu, hours=1)
    with collector(emu, "duckdb:///:memory:") as c:
        c.backfill("BTC/USDT,ETH/USDT", "1m,5m", since=since, until=until)
        return {(s, tf): c.store.load_candles("binance", s, tf)
                for s in ("BTC/USDT", "ETH/USDT") for tf in ("1m", "5m")}


@pytest.mark.parametrize(("kind", "params"), FAULTS, ids=[f"{k}-{p}" for k, p in FAULTS])
def test_after_faults_the_store_is_that_of_a_fault_free_run(clean, reference, kind, params,
                                                            caplog):
    since, until = window(clean, hours=1)
    applied = clean.stats()["faults_applied"].get(kind, 0)
    clean.inject(kind, count=2, path="/api/v3/klines", **params)
    with collector(clean, "duckdb:///:memory:") as c:
        c.backfill("BTC/USDT,ETH/USDT", "1m,5m", since=since, until=until)
        for key, want in reference.items():
            pd.testing.assert_frame_equal(c.store.load_candles("binance", *key), want)
    assert clean.stats()["faults_applied"][kind] == applied + 2
    assert sum("retrying" in r.getMessage() for r in caplog.records) >= 2


def test_retry_after_is_obeyed(clean):
    since, until = window(clean, hours=0.5)
    clean.inject("rate_limit", retry_after=1, path="/api/v3/klines")
    with collector(clean, "duckdb:///:memory:") as c:
        summary = c.backfill("BTC/USDT", "1m", since=since, until=until)
    assert summary.seconds >= 1.0  # FAST backoff alone would wait 0.01 s


def test_unknown_symbol_is_a_config_error_naming_it(clean):
    with collector(clean, "duckdb:///:memory:") as c, \
            pytest.raises(ConfigError, match="'DOGE/EUR' is not listed"):
        c.backfill("BTC/USDT,DOGE/EUR", "1m", since=window(clean)[0])


def test_a_server_that_keeps_failing_is_a_service_error(clean):
    clean.inject("server_error", count=20, path="/api/v3/klines")
    with collector(clean, "duckdb:///:memory:") as c, \
            pytest.raises(ServiceError, match="gave up after 5 tries"):
        c.backfill("BTC/USDT", "1m", since=window(clean)[0], until=window(clean)[1])


def test_history_is_announced_once_not_candle_by_candle(clean, memory_bus_url):
    since, until = window(clean, hours=0.5)
    with open_bus(memory_bus_url) as bus, \
            bus.subscribe(market_channel("BTC/USDT"), SYSTEM_EVENTS) as sub, \
            collector(clean, "duckdb:///:memory:", bus=bus) as c:
        summary = c.backfill("BTC/USDT", "1m,5m", since=since, until=until)
        got = drain(sub)
    assert [m.type for m in got] == ["event"]
    assert got[0].kind == "collector.backfill_done"
    assert got[0].detail["candles"] == summary.candles > 0


def test_progress_is_shown_on_request(clean, capsys):
    since, until = window(clean, hours=0.5)
    with collector(clean, "duckdb:///:memory:", progress=True) as c:
        c.backfill("BTC/USDT", "1m", since=since, until=until)
    assert "candle" in capsys.readouterr().err


def test_stopping_between_pages_keeps_what_arrived(clean):
    since, until = window(clean, hours=1)
    provider = CcxtProvider("binance", exchange_url=clean.base_url, page_limit=10)
    stop = threading.Event()
    with open_store("duckdb:///:memory:") as store:
        sink = Sink(store, None, "binance", "test")
        res = backfill_range(provider, sink, "BTC/USDT", "1m", first_close_after(since, "1m"),
                             until, rest=lambda fn, what: fn(), stop=stop,
                             on_page=lambda page: stop.set())
        assert not res.complete and res.requests == 1
        assert len(store.load_candles("binance", "BTC/USDT", "1m")) == res.stored > 0
    provider.close()


def test_ctrl_c_ends_a_backfill_with_what_arrived_stored(clean):
    since, until = window(clean, hours=2)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    slow = Backoff(initial=0.01, attempts=3)
    with collector(clean, "duckdb:///:memory:", backoff=slow) as c:
        c.backfill("ETH/USDT", "5m", since=since, until=until)  # stored; the 1m is not
        clean.inject("rate_limit", retry_after=5, path="/api/v3/klines")  # hold it up
        timer.start()
        try:
            summary = c.backfill("ETH/USDT", "1m,5m", since=since, until=until)
        finally:
            timer.join()
        assert summary.interrupted and summary.seconds < 4
        assert c.store.latest_candle_ts("binance", "ETH/USDT", "5m") is not None
        assert c.store.latest_candle_ts("binance", "ETH/USDT", "1m") is None


def test_plan_covers_only_what_is_outside_the_stored_span():
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    stored = (t("2024-01-01 01:00"), t("2024-01-01 02:00"))
    assert plan_ranges(t("2024-01-01 00:01"), t("2024-01-01 03:00"), stored, "1m") == [
        (t("2024-01-01 00:01"), t("2024-01-01 00:59")),
        (t("2024-01-01 02:01"), t("2024-01-01 03:00"))]
    assert plan_ranges(t("2024-01-01 01:10"), t("2024-01-01 01:50"), stored, "1m") == []
    assert plan_ranges(t("2024-01-01 01:10"), t("2024-01-01 01:00"), None, "1m") == []


def test_since_in_the_future_is_an_error_that_names_since(clean, store_url):
    future = pd.Timestamp("2099-01-01", tz="UTC")
    with collector(clean, store_url) as c, pytest.raises(ConfigError) as e:
        c.backfill("BTC/USDT", "1m", since=future)
    assert "since=2099-01-01 00:00:00+00:00 is in the future" in str(e.value)
    assert "until" not in str(e.value).split("—")[0]
