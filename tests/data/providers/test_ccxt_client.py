"""make_exchange: spot only, rate-limited, keys from the environment, URLs moved to the emulator."""

from __future__ import annotations

import asyncio

import ccxt
import ccxt.async_support
import ccxt.pro
import pytest

from tcp_lab.data.providers.ccxt_client import api_key_env, make_exchange, rewrite_api_urls
from tcp_lab.errors import ConfigError

URL = "http://127.0.0.1:8765"


def all_urls(tree):
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from all_urls(v)


def test_every_api_url_points_at_the_emulator():
    ex = make_exchange("binance", exchange_url=URL + "/")
    urls = list(all_urls(ex.urls["api"]))
    assert len(urls) > 10 and all(u.startswith(URL + "/") for u in urls)
    assert ex.urls["api"]["public"] == URL + "/api/v3"


def test_websocket_urls_keep_a_websocket_scheme():
    async def build():
        pro = make_exchange("binance", exchange_url=URL, pro=True)
        await pro.close()
        return pro

    pro = asyncio.run(build())
    assert isinstance(pro, ccxt.pro.binance)
    ws = pro.urls["api"]["ws"]
    assert ws["spot"] == "ws://127.0.0.1:8765/ws"
    assert ws["ws-api"]["spot"] == "ws://127.0.0.1:8765/ws-api/v3"
    assert pro.urls["api"]["public"] == URL + "/api/v3"


def test_rewrite_keeps_paths_and_non_urls():
    api = {"a": ["https://x.com/p?q=1", "wss://y.com:9443/ws"], "n": 3, "s": "not a url"}
    out = rewrite_api_urls(api, "https://h:1")
    assert out == {"a": ["https://h:1/p?q=1", "wss://h:1/ws"], "n": 3, "s": "not a url"}


def test_defaults_spot_only_and_rate_limited():
    ex = make_exchange("binance")
    assert ex.enableRateLimit is True
    assert ex.options["fetchMarkets"]["types"] == ["spot"]
    assert ex.urls["api"]["public"].startswith("https://api.binance.com")  # untouched
    ex2 = make_exchange("binance", enableRateLimit=False, options={"defaultType": "spot"})
    assert ex2.enableRateLimit is False and ex2.options["fetchMarkets"]["types"] == ["spot"]


def test_async_flavour():
    async def build():
        ex = make_exchange("binance", async_=True)
        await ex.close()
        return ex

    assert isinstance(asyncio.run(build()), ccxt.async_support.binance)


def test_keys_only_from_the_environment(monkeypatch):
    key_var, secret_var = api_key_env("binance")
    monkeypatch.delenv(key_var, raising=False)
    assert not make_exchange("binance").apiKey
    monkeypatch.setenv(key_var, "k-123")
    monkeypatch.setenv(secret_var, "s-456")
    ex = make_exchange("binance", exchange_url=URL)
    assert ex.apiKey == "k-123" and ex.secret == "s-456"
    assert ex.options["fetchCurrencies"] is False  # no wallet endpoints on the emulator


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'binance'"):
        make_exchange("binanse")
    with pytest.raises(ConfigError, match="http"):
        make_exchange("binance", exchange_url="127.0.0.1:8765")
