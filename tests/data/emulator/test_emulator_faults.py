"""Injected faults as the unmodified ccxt client sees them; the next request succeeds."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import ccxt
import pytest

from tcp_lab.data.emulator import EmulatorServer
from tcp_lab.data.providers.ccxt_client import make_exchange
from tcp_lab.errors import ConfigError


def http(emu, path: str, data: dict | None = None, method: str | None = None):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(emu.base_url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.parametrize(("kind", "params", "error"), [
    ("rate_limit", {}, ccxt.DDoSProtection),  # ccxt's binance raises DDoSProtection on 429
    ("rate_limit", {"status": 418}, ccxt.DDoSProtection),
    ("server_error", {}, ccxt.ExchangeNotAvailable),  # HTML 503 from a proxy
    ("server_error", {"status": 502}, ccxt.ExchangeNotAvailable),
    ("server_error", {"body": "json"}, ccxt.OperationFailed),  # Binance's -1001 body
])
def test_fault_is_the_expected_ccxt_error_then_recovery(exchange, emu, kind, params, error):
    emu.inject(kind, **params)
    with pytest.raises(error):
        exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert len(exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)) == 3


def test_network_class_errors_are_retryable(exchange, emu):
    for kind in ("rate_limit", "server_error"):
        emu.inject(kind)
        with pytest.raises(ccxt.NetworkError):
            exchange.fetch_time()


def test_rate_limit_says_when_to_retry(emu):
    emu.inject("rate_limit", retry_after=7)
    status, headers, body = http(emu, "/api/v3/time")
    assert status == 429 and headers["Retry-After"] == "7"
    assert json.loads(body)["code"] == -1003


def test_timeout_is_request_timeout_and_does_not_block_the_next_request(emu):
    ex = make_exchange("binance", exchange_url=emu.base_url, timeout=300)
    try:
        ex.load_markets()
        emu.inject("timeout", seconds=5)
        t0 = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            ex.fetch_trades("BTC/USDT", limit=2)
        assert time.monotonic() - t0 < 3
        assert len(ex.fetch_trades("BTC/USDT", limit=2)) == 2
    finally:
        ex.session.close()


def test_malformed_body_is_not_detected_by_ccxt(exchange, emu):
    """A 200 with a body that is not JSON: ccxt raises nothing and returns junk rows.

    Pinned because callers (the collector) must validate what ccxt returns.
    """
    emu.inject("malformed")
    rows = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert rows and all(v is None for row in rows for v in row[1:])
    emu.inject("malformed", mode="html")
    assert exchange.fetch_time() is None
    assert len(exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)) == 3


def test_async_client_sees_the_same_faults(emu):
    async def main():
        ex = make_exchange("binance", exchange_url=emu.base_url, async_=True, timeout=300)
        try:
            await ex.load_markets()
            seen = []
            for kind, params in [("rate_limit", {}), ("server_error", {}),
                                 ("timeout", {"seconds": 3})]:
                emu.inject(kind, **params)
                try:
                    await ex.fetch_time()
                except ccxt.NetworkError as e:
                    seen.append(type(e))
            return seen, await ex.fetch_time()
        finally:
            await ex.close()

    seen, now = asyncio.run(main())
    assert seen == [ccxt.DDoSProtection, ccxt.ExchangeNotAvailable, ccxt.RequestTimeout]
    assert now > 0


def test_count_and_path_filter(exchange, emu):
    emu.inject("server_error", count=2, path="/api/v3/klines")
    assert exchange.fetch_time() > 0  # another path: unaffected
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            exchange.fetch_ohlcv("ETH/USDT", "1m", limit=1)
    assert exchange.fetch_ohlcv("ETH/USDT", "1m", limit=1)


def test_control_api_and_stats(emu):
    before = emu.stats()
    status, _, body = http(emu, "/_emulator/faults", {"kind": "server_error", "count": 2,
                                                      "status": 500})
    assert status == 200 and json.loads(body)["pending"][0]["remaining"] == 2
    assert http(emu, "/api/v3/ping")[0] == 500
    status, _, body = http(emu, "/_emulator/faults", method="DELETE")
    assert json.loads(body)["pending"] == []
    assert http(emu, "/api/v3/ping")[0] == 200
    status, _, body = http(emu, "/_emulator/faults", {"kind": "nope"})
    assert status == 400 and "unknown fault kind" in json.loads(body)["error"]
    stats = json.loads(http(emu, "/_emulator/stats")[2])
    assert stats["requests"]["/api/v3/ping"] == before["requests"].get("/api/v3/ping", 0) + 2
    assert stats["faults_applied"]["server_error"] >= 1
    assert stats["responses"]["500"] >= 1


def test_bad_fault_requests_are_config_errors(emu):
    with pytest.raises(ConfigError, match="unknown fault kind"):
        emu.inject("meteor")
    with pytest.raises(ConfigError, match="no parameter"):
        emu.inject("timeout", retry_after=3)
    with pytest.raises(ConfigError, match="500..599"):
        emu.inject("server_error", status=404)
    with pytest.raises(ConfigError, match="count"):
        emu.inject("rate_limit", count=0)


def test_request_weight_limit_gives_real_429s():
    with EmulatorServer(symbols=("BTC/USDT",), weight_limit=30) as emu:
        statuses = [http(emu, "/api/v3/exchangeInfo")[0] for _ in range(3)]
        assert 429 in statuses
        assert emu.stats()["faults_applied"] == {}  # not an injected fault
