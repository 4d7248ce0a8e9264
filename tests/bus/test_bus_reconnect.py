"""Robustness: publish retries, and listeners that reconnect after the server went away.

The fast tests simulate the outage with fakeredis (``FakeServer.connected``);
the slow ones kill and restart a redis-server of their own on a free port
(never the shared server on 6379).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from urllib.parse import urlsplit

import pandas as pd
import pytest

from tcp_lab.bus import (
    Backoff,
    StatusMessage,
    memory_server,
    open_bus,
    signals_pattern,
    status_channel,
)
from tcp_lab.bus.messages import SignalMessage
from tcp_lab.errors import ServiceError

TS = pd.Timestamp("2024-03-01 09:05", tz="UTC")
FAST = Backoff(initial=0.02, maximum=0.2, attempts=4)
LOGGER = "tcp_lab.bus"


def _status(status: str = "running") -> StatusMessage:
    return StatusMessage(bot_id="b", status=status, ts=TS)


def _signal() -> SignalMessage:
    return SignalMessage(bot_id="b", ts=TS, action="hold", confidence=0.1, price=1.0)


def _server_of(memory_url: str):
    return memory_server(urlsplit(memory_url).netloc)


# -- simulated outages (fakeredis) ------------------------------------------------------------

def test_publish_retries_then_raises_service_error(memory_bus_url, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = _server_of(memory_bus_url)
    with open_bus(memory_bus_url, backoff=FAST) as bus:
        server.connected = False
        try:
            with pytest.raises(ServiceError, match="unreachable.*4 tries"):
                bus.publish(status_channel("b"), _status())
        finally:
            server.connected = True
        retries = [r for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == FAST.attempts - 1
        assert bus.publish(status_channel("b"), _status()) == 0


def test_publish_survives_a_short_outage(memory_bus_url, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = _server_of(memory_bus_url)
    with open_bus(memory_bus_url, backoff=Backoff(initial=0.05, attempts=20)) as bus:
        server.connected = False
        timer = threading.Timer(0.2, setattr, (server, "connected", True))
        timer.start()
        try:
            assert bus.publish(status_channel("b"), _status()) == 0  # no error: it got through
        finally:
            timer.join()
    assert "publish to status:b failed (try 1 of 20" in caplog.text


def test_listener_reconnects_after_simulated_outage(memory_bus_url, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = _server_of(memory_bus_url)
    reconnected = threading.Event()
    got: queue.Queue = queue.Queue()
    with open_bus(memory_bus_url, backoff=FAST) as bus, bus.subscribe(
            status_channel("b"), patterns=[signals_pattern()], handler=got.put,
            on_reconnect=reconnected.set) as sub:
        server.connected = False
        try:
            # the listener notices, then fails a few attempts while the server stays down
            _wait_for_log(caplog, "reconnect attempt 2 failed")
        finally:
            server.connected = True
        assert reconnected.wait(5.0)
        assert sub.reconnects == 1 and sub.alive
        bus.publish(status_channel("b"), _status())
        bus.publish("signals:b", _signal())
        assert {got.get(timeout=2.0).type, got.get(timeout=2.0).type} == {"status", "signal"}
    text = caplog.text
    assert "lost its connection" in text and "reconnect attempt 1 failed" in text
    assert "succeeded; resubscribed to status:b, signals:*" in text


def test_on_reconnect_error_is_logged_and_listener_goes_on(memory_bus_url, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = _server_of(memory_bus_url)
    calls = []

    def on_reconnect():
        calls.append(1)
        raise RuntimeError("catch-up failed")

    with open_bus(memory_bus_url, backoff=FAST) as bus, \
            bus.subscribe(status_channel("b"), on_reconnect=on_reconnect) as sub:
        server.connected = False
        _wait_for_log(caplog, "lost its connection")
        server.connected = True
        _wait_for_log(caplog, "on_reconnect callback")
        bus.publish(status_channel("b"), _status())
        assert sub.get(timeout=2.0) == _status()
    assert calls == [1]


def _wait_for_log(caplog, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in caplog.text:
            return
        time.sleep(0.02)
    raise AssertionError(f"log line {text!r} did not appear within {timeout} s:\n{caplog.text}")


# -- a real redis-server, killed and restarted ----------------------------------------------

@pytest.mark.services
def test_listener_reconnects_after_redis_restart(own_redis, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    reconnected = threading.Event()
    got: queue.Queue = queue.Queue()
    url = own_redis.url + "?prefix=restart:"
    with open_bus(url, backoff=Backoff(initial=0.05, maximum=0.5, attempts=3)) as bus, \
            bus.subscribe(status_channel("b"), patterns=[signals_pattern()], handler=got.put,
                          on_reconnect=reconnected.set) as sub:
        bus.publish(status_channel("b"), _status("starting"))
        assert got.get(timeout=2.0).status == "starting"

        own_redis.stop()
        with pytest.raises(ServiceError, match="unreachable"):
            bus.publish(status_channel("b"), _status("crashed"))
        _wait_for_log(caplog, "reconnect attempt 1 failed")
        own_redis.start()

        assert reconnected.wait(15.0), caplog.text
        assert sub.reconnects == 1 and sub.alive
        assert bus.publish(status_channel("b"), _status("running")) == 1
        bus.publish("signals:b", _signal())
        assert [got.get(timeout=2.0).type, got.get(timeout=2.0).type] == ["status", "signal"]
        assert got.empty()
    assert "lost its connection" in caplog.text
    assert "succeeded; resubscribed to status:b, signals:*" in caplog.text


@pytest.mark.services
def test_publish_rides_out_a_redis_restart(own_redis):
    with open_bus(own_redis.url, backoff=Backoff(initial=0.1, maximum=1.0, attempts=10)) as bus:
        own_redis.stop()
        restart = threading.Timer(0.3, own_redis.start)
        restart.start()
        try:
            assert bus.publish(status_channel("b"), _status()) == 0
        finally:
            restart.join()
