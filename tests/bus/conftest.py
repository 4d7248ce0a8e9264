"""Bus fixtures: an open bus per backend, a private redis-server, and a thread-leak check."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tcp_lab.bus import Bus, open_bus

REQUIRE_SERVICES = os.environ.get("TCP_LAB_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def _no_leaked_listener_threads():
    """Every test must close its subscriptions: no listener thread outlives it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate()
                  if t.name.startswith("tcp_lab.bus[") and t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"listener threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def bus(bus_url: str):
    """An open bus on every backend in turn (fakeredis, then Redis)."""
    with open_bus(bus_url) as b:
        yield b


def _with_prefix(url: str, prefix: str) -> str:
    base, _, query = url.partition("?")
    kept = [item for item in query.split("&") if item and not item.startswith("prefix=")]
    return base + "?" + "&".join([*kept, f"prefix={prefix}"])


@pytest.fixture
def with_prefix():
    """``with_prefix(url, prefix)``: ``url`` with its ``prefix`` parameter replaced."""
    return _with_prefix


def _raw_publish(bus: Bus, channel: str, payload: str | bytes) -> int:
    return bus._client.publish(bus.prefix + channel, payload)


@pytest.fixture
def raw_publish():
    """``raw_publish(bus, channel, payload)``: bypass validation, like a broken client would."""
    return _raw_publish


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """A redis-server of the test's own, on a free port, that can be killed and restarted."""

    def __init__(self, directory: Path, *extra_args: str) -> None:
        self.extra_args = extra_args
        self.binary = shutil.which("redis-server")
        self.dir = directory
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "already running"
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; "
                                   f"see {self.dir / 'redis.log'}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Kill the server (SIGKILL: an abrupt crash, connections drop)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis_factory(tmp_path):
    """``own_redis_factory(*args)``: start a private redis-server (never the shared one).

    Skipped when ``redis-server`` is not installed (a failure with
    ``TCP_LAB_REQUIRE_SERVICES=1``); every server is killed at teardown.
    """
    if shutil.which("redis-server") is None:
        msg = "redis-server binary not found on PATH (apt install redis-server)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg} (TCP_LAB_REQUIRE_SERVICES=1: a missing server is a failure)")
        pytest.skip(msg)
    servers: list[RedisProcess] = []

    def start(*extra_args: str) -> RedisProcess:
        directory = tmp_path / f"redis{len(servers)}"
        directory.mkdir()
        server = RedisProcess(directory, *extra_args)
        servers.append(server)
        server.start()
        assert urlsplit(server.url).port != 6379
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def own_redis(own_redis_factory):
    """A private redis-server on a free port that a test may kill and restart."""
    return own_redis_factory()
