"""The bus contract, run over every backend (fakeredis in-process, then Redis)."""

from __future__ import annotations

import logging
import queue
import threading

import pandas as pd
import pytest

from tcp_lab.bus import (
    CandleMessage,
    EventMessage,
    SignalMessage,
    StatusMessage,
    encode,
    market_channel,
    open_bus,
    signals_channel,
    signals_pattern,
    status_channel,
    status_pattern,
    system_channel,
)
from tcp_lab.errors import DataError

TS = pd.Timestamp("2024-03-01 09:05", tz="UTC")
SAMPLES = {
    "candle": (market_channel("BTC/USDT"), CandleMessage(
        exchange="binance", symbol="BTC/USDT", timeframe="1m", ts=TS, open=100.0, high=101.5,
        low=99.5, close=101.0, volume=12.5, trade_count=40, vwap=100.7)),
    "signal": (signals_channel("sma-1"), SignalMessage(
        bot_id="sma-1", ts=TS, action="buy", confidence=0.75, price=101.0,
        indicators={"sma_fast": 100.9, "sma_slow": None})),
    "status": (status_channel("sma-1"), StatusMessage(
        bot_id="sma-1", status="running", ts=TS, detail="ok", heartbeat=TS,
        last_candle_ts=TS - pd.Timedelta(minutes=1))),
    "event": (system_channel(), EventMessage(
        kind="collector.gap", ts=TS, source="collector", detail={"missing": 3, "to": [1, "x"]})),
}
LOGGER = "tcp_lab.bus"


def _status(bot_id: str, status: str = "running") -> StatusMessage:
    return StatusMessage(bot_id=bot_id, status=status, ts=TS)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_round_trip_with_get(bus, kind):
    channel, msg = SAMPLES[kind]
    with bus.subscribe(channel) as sub:
        assert bus.publish(channel, msg) == 1
        got = sub.get(timeout=2.0)
    assert got == msg and type(got) is type(msg)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_round_trip_with_handler(bus, kind):
    channel, msg = SAMPLES[kind]
    got: queue.Queue = queue.Queue()
    threads = []

    def handler(m):
        threads.append(threading.current_thread())
        got.put(m)

    with bus.subscribe(channel, handler=handler) as sub:
        bus.publish(channel, msg)
        assert got.get(timeout=2.0) == msg
        assert threads[0] is not threading.current_thread() and threads[0].daemon
    assert not sub.alive


def test_messages_arrive_in_order(bus):
    channel = status_channel("b")
    sent = [_status("b", s) for s in ("starting", "running", "stopping", "stopped")]
    with bus.subscribe(channel) as sub:
        for m in sent:
            bus.publish(channel, m)
        assert [sub.get(timeout=2.0) for _ in sent] == sent
        assert sub.get(timeout=0.1) is None


def test_publish_without_subscribers_returns_zero(bus):
    assert bus.publish(status_channel("nobody"), _status("nobody")) == 0


def test_pattern_subscription_sees_its_family_only(bus):
    with bus.subscribe(patterns=[status_pattern()]) as sub:
        bus.publish(status_channel("a"), _status("a"))
        bus.publish(signals_channel("a"), SAMPLES["signal"][1])
        bus.publish(status_channel("b"), _status("b"))
        got = [sub.get(timeout=2.0), sub.get(timeout=2.0)]
        assert [m.bot_id for m in got] == ["a", "b"]
        assert sub.get(timeout=0.2) is None


def test_channels_and_patterns_together(bus):
    with bus.subscribe(system_channel(), patterns=[signals_pattern()]) as sub:
        bus.publish(system_channel(), SAMPLES["event"][1])
        bus.publish(signals_channel("x"), SAMPLES["signal"][1])
        assert {sub.get(timeout=2.0).type, sub.get(timeout=2.0).type} == {"event", "signal"}


def test_prefixes_isolate_buses_on_one_server(bus, bus_url, with_prefix):
    channel = status_channel("b")
    with open_bus(with_prefix(bus_url, bus.prefix + "other:")) as other, \
            bus.subscribe(channel) as mine, other.subscribe(patterns=["*"]) as theirs:
        assert other.publish(channel, _status("b", "stopped")) == 1  # only `theirs` hears it
        assert theirs.get(timeout=2.0).status == "stopped"
        assert mine.get(timeout=0.2) is None
        bus.publish(channel, _status("b"))
        assert mine.get(timeout=2.0).status == "running"
        assert theirs.get(timeout=0.2) is None
        bus.set_json("k", {"a": 1})
        assert other.get_json("k") is None and bus.get_json("k") == {"a": 1}


def test_two_buses_with_the_same_url_talk(bus_url):
    with open_bus(bus_url) as a, open_bus(bus_url) as b, a.subscribe(status_channel("x")) as sub:
        b.publish(status_channel("x"), _status("x"))
        assert sub.get(timeout=2.0) == _status("x")


def test_malformed_message_is_logged_and_skipped(bus, raw_publish, caplog):
    channel = status_channel("b")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with bus.subscribe(channel) as sub:
        raw_publish(bus, channel, "{not json" + "x" * 1000)
        raw_publish(bus, channel, encode(_status("b")).replace('"v":1', '"v":99'))
        raw_publish(bus, channel, b"\xff\xfe")
        bus.publish(channel, _status("b"))
        assert sub.get(timeout=2.0) == _status("b")  # the listener went on
        assert sub.alive
    drops = [r for r in caplog.records if r.name == LOGGER and "malformed" in r.getMessage()]
    assert len(drops) == 3
    assert all(channel in r.getMessage() for r in drops)
    assert "{not jsonxxx" in drops[0].getMessage() and len(drops[0].getMessage()) < 600
    assert "v=99" in drops[1].getMessage()


def test_handler_exception_is_logged_and_listener_goes_on(bus, caplog):
    channel = status_channel("b")
    got: queue.Queue = queue.Queue()

    def handler(m):
        if m.status == "crashed":
            raise RuntimeError("boom in handler")
        got.put(m)

    caplog.set_level(logging.ERROR, logger=LOGGER)
    with bus.subscribe(channel, handler=handler) as sub:
        bus.publish(channel, _status("b", "crashed"))
        bus.publish(channel, _status("b", "running"))
        assert got.get(timeout=2.0).status == "running"
        assert sub.alive
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info[1].args == ("boom in handler",)
    assert channel in errors[0].getMessage()


def test_wrong_message_type_for_channel_is_refused(bus):
    with pytest.raises(DataError, match="carries status messages"):
        bus.publish(status_channel("b"), SAMPLES["signal"][1])
    with pytest.raises(DataError, match="glob"):
        bus.publish("status:*", _status("b"))
    with pytest.raises(DataError, match="bus message model"):
        bus.publish(status_channel("b"), {"v": 1})  # type: ignore[arg-type]


def test_subscribe_arguments_are_checked(bus):
    with pytest.raises(DataError, match="at least one"):
        bus.subscribe()
    with pytest.raises(DataError, match="patterns="):
        bus.subscribe("status:*")
    with pytest.raises(DataError, match="callable"):
        bus.subscribe(system_channel(), handler="print")  # type: ignore[arg-type]
    with bus.subscribe(system_channel(), handler=lambda m: None) as sub:
        with pytest.raises(RuntimeError, match="handler"):
            sub.get()


def test_close_is_idempotent_and_bus_close_closes_subscriptions(bus_url):
    bus = open_bus(bus_url)
    sub = bus.subscribe(system_channel())
    sub2 = bus.subscribe(status_channel("b"))
    sub2.close()
    sub2.close()
    assert sub2.closed and not sub2.alive
    bus.close()
    bus.close()
    assert sub.closed and not sub.alive and bus.closed
    assert sub.get(timeout=5.0) is None  # closed: returns at once
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish(system_channel(), SAMPLES["event"][1])


def test_handler_may_close_its_own_subscription(bus):
    done = threading.Event()
    holder = {}

    def handler(m):
        holder["sub"].close()
        done.set()

    holder["sub"] = sub = bus.subscribe(system_channel(), handler=handler)
    bus.publish(system_channel(), SAMPLES["event"][1])
    assert done.wait(2.0)
    sub._thread.join(2.0)
    assert sub.closed and not sub.alive


def test_json_keys(bus):
    assert bus.get_json("state:b", default={}) == {}
    bus.set_json("state:b", {"pos": 1.5, "tags": ["a"]})
    assert bus.get_json("state:b") == {"pos": 1.5, "tags": ["a"]}
    bus.set_json("tmp", 1, ttl=60)
    assert bus.delete("state:b", "tmp", "missing") == 2
    assert bus.get_json("state:b") is None
    with pytest.raises(DataError, match="JSON"):
        bus.set_json("bad", float("nan"))


def test_close_wakes_a_blocked_get_and_keeps_queued_messages(bus):
    sub = bus.subscribe(system_channel())
    results = []
    waiter = threading.Thread(target=lambda: results.append(sub.get(timeout=None)))
    waiter.start()
    bus.publish(system_channel(), SAMPLES["event"][1])
    waiter.join(5.0)
    assert results == [SAMPLES["event"][1]]
    waiter = threading.Thread(target=lambda: results.append(sub.get(timeout=None)))
    waiter.start()
    sub.close()
    waiter.join(5.0)
    assert not waiter.is_alive() and results[1:] == [None]
    assert sub.get(timeout=None) is None
