"""Control through the ``bots`` table: rows without NaN, start warnings, waiting for a start."""

from __future__ import annotations

import pandas as pd
import pytest
from bots_helpers import EXCHANGE, SYMBOL, TIMEFRAME, make_config

from tcp_lab.bots.control import bot_rows, start_warnings, wait_for_start
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

T0 = pd.Timestamp("2024-06-01 12:00", tz="UTC")


class ScriptedStore:
    """A bot row that changes as a script says, one step per read; the clock is fake."""

    def __init__(self, *steps: dict) -> None:
        self.row = {"id": "b", "status": "starting", "heartbeat": None, "restart_count": 0,
                    "last_error": None}
        self.steps = list(steps)
        self.now = 0.0

    def get_bot(self, bot_id):
        if self.steps:
            self.row = {**self.row, **self.steps.pop(0)}
        return dict(self.row)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(store: ScriptedStore, before=None, **kw):
    return wait_for_start(store, "b", before, monotonic=store.monotonic, sleep=store.sleep,
                          **kw)


def beat(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def test_running_needs_a_heartbeat_after_the_first():
    store = ScriptedStore({}, {"status": "running", "heartbeat": beat(0)}, {}, {},
                          {"heartbeat": beat(5)})
    outcome = wait(store)
    assert outcome.ok and outcome.message == "bot b: running"
    assert store.now == pytest.approx(0.8)  # five reads, 0.2 s apart


def test_a_crash_after_the_first_heartbeat_is_reported_with_its_error():
    store = ScriptedStore({"status": "running", "heartbeat": beat(0)},
                          {"status": "crashed", "last_error": "CandleError: boom"})
    outcome = wait(store)
    assert (outcome.state, outcome.message) == ("crashed", "bot b: crashed: CandleError: boom")


def test_a_crash_the_manager_already_restarted_is_reported():
    # between two reads it crashed, was restarted and reported running again
    store = ScriptedStore({"status": "running", "heartbeat": beat(0)},
                          {"restart_count": 3, "heartbeat": beat(1), "last_error": "boom"})
    outcome = wait(store, {"id": "b", "status": "crashed", "heartbeat": None,
                           "restart_count": 2})
    assert outcome.state == "crashed" and "boom" in outcome.message


def test_a_failed_bot_is_failed():
    store = ScriptedStore({"status": "failed", "last_error": "crashed 4 times"})
    assert wait(store).state == "failed"


def test_a_heartbeat_from_before_the_start_does_not_count():
    old = {"id": "b", "status": "stopped", "heartbeat": beat(-60), "restart_count": 0}
    store = ScriptedStore({"status": "running", "heartbeat": beat(-60)}, {}, {},
                          {"heartbeat": beat(0)}, {}, {"heartbeat": beat(5)})
    outcome = wait(store, old)
    assert outcome.ok and outcome.row["heartbeat"] == beat(5)


def test_no_second_heartbeat_in_time_is_unconfirmed():
    store = ScriptedStore({"status": "running", "heartbeat": beat(0)})
    outcome = wait(store, heartbeat_wait=3.0)
    assert outcome.state == "unconfirmed" and not outcome.ok
    assert "no heartbeat in the 3 s after its start" in outcome.message
    assert store.now == pytest.approx(3.0)


def test_heartbeat_wait_zero_accepts_the_first_heartbeat():
    store = ScriptedStore({"status": "running", "heartbeat": beat(0)})
    assert wait(store, heartbeat_wait=0).ok


def test_an_already_running_bot_needs_only_its_next_heartbeat():
    running = {"id": "b", "status": "running", "heartbeat": beat(0), "restart_count": 0}
    store = ScriptedStore({**running}, {}, {"heartbeat": beat(5)})
    outcome = wait(store, running)
    assert outcome.ok and store.now == pytest.approx(0.4)


def test_not_running_in_time_names_the_status_and_the_hint():
    store = ScriptedStore()
    outcome = wait(store, timeout=2.0, hint="is `tcp-lab bots serve` running?")
    assert outcome.state == "timeout"
    assert outcome.message == ("bot b: still starting after 2 s; "
                               "is `tcp-lab bots serve` running?")


def test_a_bot_stopped_meanwhile_is_stopped():
    store = ScriptedStore({"status": "stopped"})
    assert wait(store).state == "stopped"


@pytest.fixture
def store(duckdb_url):
    with open_store(duckdb_url) as store:
        yield store


def test_bot_rows_have_none_where_pandas_has_nan(store):
    store.upsert_bot("a", strategy="sma_cross")
    store.upsert_bot("b", strategy="sma_cross", config_path="/x/b.json")
    store.update_bot("b", last_error="boom", heartbeat=T0)
    a, b = bot_rows(store)
    assert (a["id"], a["last_error"], a["heartbeat"], a["config_path"]) == ("a", None, None, None)
    assert (b["last_error"], b["heartbeat"], b["config_path"]) == ("boom", T0, "/x/b.json")
    assert a["restart_times"] == [] and a["restart_count"] == 0


def test_start_warnings(store):
    config = make_config("w")
    assert start_warnings(store, config) == [
        "bot w: no stored candles for binance BTC/USDT 1m; it trades once the collector "
        "stores some (`tcp-lab collect --exchange binance --symbols BTC/USDT --timeframes 1m`)"]
    store.save_candles(make_candles(3, seed=1), EXCHANGE, SYMBOL, TIMEFRAME)
    assert start_warnings(store, config) == []
    [line] = start_warnings(store, make_config("w", timeframe="1h"))
    assert "no stored candles for binance BTC/USDT 1h (stored: 1m)" in line
    [line] = start_warnings(store, make_config("w", symbol="BTC/USTD"))
    assert "'BTC/USTD' is not among the 1 binance symbols in the store" in line
    assert "did you mean 'BTC/USDT'?" in line
    [line] = start_warnings(store, make_config("w", symbol="DOGE/EUR"))
    assert "(stored: BTC/USDT)" in line
    # nothing stored for this exchange: nothing known about its markets
    [line] = start_warnings(store, make_config("w", exchange="kraken", symbol="XBT/EUR"))
    assert line.startswith("bot w: no stored candles for kraken XBT/EUR 1m;")
