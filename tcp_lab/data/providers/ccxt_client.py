"""Build ccxt exchange clients: spot only, rate-limited, keys from the environment.

ccxt lives here (and in the emulator's tests); the rest of tcp_lab talks to exchanges
through the providers. Trading in tcp_lab is virtual, so API keys are optional: when
``TCP_LAB_<EXCHANGE>_API_KEY`` / ``TCP_LAB_<EXCHANGE>_API_SECRET`` are set they are
passed to ccxt and never logged or shown in reprs.

Pointing a client at the exchange emulator rewrites every URL in
``exchange.urls["api"]`` (nested dicts included): ``https://api.binance.com/api/v3``
becomes ``http://127.0.0.1:PORT/api/v3`` and ``wss://stream.binance.com:9443/ws``
becomes ``ws://127.0.0.1:PORT/ws``. Paths are kept, so the emulator serves the same
paths as the exchange.
"""

from __future__ import annotations

import difflib
import importlib
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tcp_lab.errors import ConfigError
from tcp_lab.settings import redact_url

__all__ = ["make_exchange", "rewrite_api_urls", "api_key_env", "exchange_source",
           "client_source", "check_exchange_url"]

#: ccxt ids whose spot-only switch is ``options.fetchMarkets.types`` (the Binance family).
_BINANCE_LIKE = {"binance", "binanceus", "binanceusdm", "binancecoinm"}


def api_key_env(exchange_id: str) -> tuple[str, str]:
    """Names of the environment variables holding the key and secret for ``exchange_id``.

    >>> api_key_env("binance")
    ('TCP_LAB_BINANCE_API_KEY', 'TCP_LAB_BINANCE_API_SECRET')
    """
    prefix = "TCP_LAB_" + exchange_id.upper().replace("-", "_")
    return f"{prefix}_API_KEY", f"{prefix}_API_SECRET"


def _redirect(url: str, target_host: str, target_secure: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        scheme = "wss" if target_secure else "ws"
    elif parts.scheme in ("http", "https"):
        scheme = "https" if target_secure else "http"
    else:
        return url
    return urlunsplit((scheme, target_host, parts.path, parts.query, parts.fragment))


def rewrite_api_urls(api: Any, exchange_url: str) -> Any:
    """Return ``api`` (a URL, or nested dicts/lists of them) with every host moved to
    ``exchange_url``'s; ``ws``/``wss`` URLs keep a websocket scheme.

    Examples
    --------
    >>> rewrite_api_urls({"public": "https://api.binance.com/api/v3",
    ...                   "ws": {"spot": "wss://stream.binance.com:9443/ws"}},
    ...                  "http://127.0.0.1:8765")
    {'public': 'http://127.0.0.1:8765/api/v3', 'ws': {'spot': 'ws://127.0.0.1:8765/ws'}}
    """
    target = urlsplit(exchange_url)
    secure = target.scheme == "https"
    if isinstance(api, str):
        return _redirect(api, target.netloc, secure)
    if isinstance(api, dict):
        return {k: rewrite_api_urls(v, exchange_url) for k, v in api.items()}
    if isinstance(api, list | tuple):
        return type(api)(rewrite_api_urls(v, exchange_url) for v in api)
    return api


def check_exchange_url(url: str) -> str:
    """``url`` without a trailing slash, or a ConfigError naming it when it is not
    ``http(s)://host[:port]``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except (ValueError, TypeError, AttributeError):
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"exchange_url={url!r} is not an http(s) URL with a host",
            hint="pass the emulator's base_url, e.g. 'http://127.0.0.1:8765'",
        )
    return url.rstrip("/")


def _exchange_class(exchange_id: str, async_: bool, pro: bool) -> type:
    module = importlib.import_module("ccxt.pro" if pro else "ccxt.async_support" if async_
                                     else "ccxt")
    cls = getattr(module, exchange_id, None) if exchange_id in module.exchanges else None
    if cls is None:
        guess = difflib.get_close_matches(exchange_id, module.exchanges, n=1)
        flavour = "ccxt.pro" if pro else "ccxt"
        raise ConfigError(
            f"exchange {exchange_id!r} is not a {flavour} exchange id"
            + (f" (did you mean {guess[0]!r}?)" if guess else ""),
            hint="use a ccxt id such as 'binance'",
        )
    return cls


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _deep_merge(out[k], v) if both else v
    return out


def make_exchange(exchange_id: str = "binance", *, exchange_url: str | None = None,
                  async_: bool = False, pro: bool = False, **config: Any) -> Any:
    """Build a ccxt client for spot market data.

    Parameters
    ----------
    exchange_id
        ccxt id, e.g. ``"binance"``.
    exchange_url
        Base URL of an exchange emulator (``EmulatorServer.base_url``); every REST and
        websocket URL of the client is moved there. ``None``: the real exchange.
    async_
        Return a ``ccxt.async_support`` client (close it with ``await ex.close()``).
    pro
        Return a ``ccxt.pro`` client (async, with ``watch_*``); implies ``async_``.
    **config
        Extra ccxt constructor settings, deep-merged over tcp_lab's defaults
        (``enableRateLimit=True``, spot markets only, keys from the environment).

    Returns
    -------
    ccxt.Exchange
        A sync, async or pro client.

    Raises
    ------
    ConfigError
        Unknown exchange id, or an ``exchange_url`` that is not ``http(s)://host[:port]``.

    Examples
    --------
    >>> ex = make_exchange("binance", exchange_url="http://127.0.0.1:8765")
    >>> ex.urls["api"]["public"]
    'http://127.0.0.1:8765/api/v3'
    """
    cls = _exchange_class(exchange_id, async_, pro)
    options: dict[str, Any] = {"defaultType": "spot"}
    if exchange_id in _BINANCE_LIKE:
        options["fetchMarkets"] = {"types": ["spot"]}
    defaults: dict[str, Any] = {"enableRateLimit": True, "options": options}
    key_var, secret_var = api_key_env(exchange_id)
    if os.environ.get(key_var) and "apiKey" not in config:
        defaults["apiKey"] = os.environ[key_var]
        defaults["secret"] = os.environ.get(secret_var, "")
    if exchange_url is not None:
        exchange_url = check_exchange_url(exchange_url)
        # no wallet/margin endpoints on an emulator: keep load_markets to exchangeInfo
        options.update({"fetchCurrencies": False, "fetchMargins": False})
    exchange = cls(_deep_merge(defaults, config))
    if exchange_url is not None:
        exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], exchange_url)
    return exchange


def _rest_url(api: Any) -> str | None:
    """The REST URL market data comes from in a ccxt ``urls["api"]`` value: the one
    under ``public`` or ``rest`` when there is one, else the first http(s) URL."""
    if isinstance(api, str):
        return api if api.startswith(("http://", "https://")) else None
    if isinstance(api, dict):
        for key in ("public", "rest", *api):
            found = _rest_url(api.get(key))
            if found:
                return found
    if isinstance(api, list | tuple):
        return next((u for u in map(_rest_url, api) if u), None)
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return redact_url(urlunsplit((parts.scheme, parts.netloc, "", "", ""))) or ""


def client_source(client: Any) -> str:
    """The ``scheme://host[:port]`` a ccxt client gets market data from (redacted): what
    a provider records as the source of the series it writes."""
    url = _rest_url(client.urls.get("api"))
    if url is None:  # pragma: no cover - every ccxt exchange has a REST URL
        return f"ccxt:{client.id}"
    return _origin(client.implode_hostname(url))


def exchange_source(exchange_id: str, exchange_url: str | None = None) -> str:
    """The source :func:`client_source` gives a client of :func:`make_exchange`.

    The emulator's ``scheme://host:port`` (``exchange_url``'s; its path is not used
    either), or the real exchange's REST host. Redacted: a password in the URL
    becomes ``***``. Nothing connects.

    Raises
    ------
    ConfigError
        Unknown exchange id, or an ``exchange_url`` that is not ``http(s)://host[:port]``.

    Examples
    --------
    >>> exchange_source("binance")
    'https://api.binance.com'
    >>> exchange_source("binance", "http://127.0.0.1:8765/")
    'http://127.0.0.1:8765'
    """
    if exchange_url is not None:
        return _origin(check_exchange_url(exchange_url))
    return client_source(_exchange_class(exchange_id, False, False)())
