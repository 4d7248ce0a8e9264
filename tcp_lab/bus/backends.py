"""Bus URLs: a scheme -> client factory registry, and the in-process servers.

=====================================  ===============================================
URL                                    backend
=====================================  ===============================================
``memory://``                          the default in-process fakeredis server
``memory://NAME``                      a named in-process server (shared by name)
``redis://[user:pw@]host:port/db``     Redis over TCP (redis-py)
``rediss://…``                         Redis over TLS
``unix:///path/redis.sock?db=0``       Redis over a Unix socket
=====================================  ===============================================

Every URL may carry ``?prefix=STR``, tcp_lab's own parameter: it is removed
before the client sees the URL and prepended to every channel and key, so two
prefixes on one server never see each other. Other query parameters of
``redis://`` URLs go to redis-py (``?socket_connect_timeout=1``…).

All buses opened with the same ``memory://NAME`` in one process share one
``fakeredis.FakeServer`` and see each other's messages and keys; the servers
live as long as the process. They are invisible to other processes: use Redis
when the collector, bots and notebooks run apart.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import fakeredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tcp_lab.errors import ConfigError
from tcp_lab.settings import redact_url

__all__ = [
    "ClientFactory",
    "BusURL",
    "CONNECT_TIMEOUT",
    "SOCKET_TIMEOUT",
    "parse_bus_url",
    "register_backend",
    "backend_schemes",
    "create_client",
    "memory_server",
]

#: Seconds to wait for a TCP connection to Redis before calling it unreachable.
CONNECT_TIMEOUT = 2.0
#: Seconds to wait for a reply to a command on an established connection.
SOCKET_TIMEOUT = 5.0
_PREFIX_FORBIDDEN = set("*?[]\\ \t\r\n")

#: Builds a redis-py compatible client from a bus URL without ``prefix``.
ClientFactory = Callable[[str], redis.Redis]

_FACTORIES: dict[str, ClientFactory] = {}
_MEMORY_SERVERS: dict[str, fakeredis.FakeServer] = {}
_MEMORY_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class BusURL:
    """A bus URL split into what the client sees and tcp_lab's own ``prefix``.

    Attributes
    ----------
    scheme
        ``memory``, ``redis``, ``rediss``, ``unix`` or a registered one.
    client_url
        The URL without the ``prefix`` parameter (may hold a password: never log it).
    prefix
        Prepended to every channel and key (``""`` for none).
    redacted
        The full URL with any password replaced by ``***`` (for messages and logs).
    """

    scheme: str
    client_url: str
    prefix: str
    redacted: str


def _no_retry() -> Retry:
    # The bus retries itself (with logging and a ServiceError at the end); redis-py's
    # built-in retry would multiply the attempts and hide the outage.
    return Retry(NoBackoff(), 0)


def parse_bus_url(url: str) -> BusURL:
    """Split ``url`` into scheme, client URL and prefix; check scheme and prefix.

    Raises
    ------
    ConfigError
        No scheme, an unknown scheme (with a suggestion), a repeated or
        invalid ``prefix``.

    Examples
    --------
    >>> parse_bus_url("redis://localhost:6379/0?prefix=lab:").prefix
    'lab:'
    """
    shown = redact_url(url) or repr(url)
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"bus URL {shown!r} has no scheme",
            hint="use memory:// (in-process) or redis://host:6379/0",
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _FACTORIES:
        known = backend_schemes()
        guess = difflib.get_close_matches(scheme, known, n=1)
        did_you_mean = f" (did you mean {guess[0]}://?)" if guess else ""
        raise ConfigError(
            f"bus URL {shown!r}: unknown scheme {scheme!r}{did_you_mean}",
            hint="expected one of " + ", ".join(f"{s}://" for s in known),
        )
    base, _, query = url.partition("?")
    kept, prefixes = [], []
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if unquote(key) == "prefix":
            prefixes.append(unquote(value))
        else:
            kept.append(item)
    if len(prefixes) > 1:
        raise ConfigError(f"bus URL {shown!r} has more than one prefix parameter")
    prefix = prefixes[0] if prefixes else ""
    if _PREFIX_FORBIDDEN & set(prefix):
        raise ConfigError(
            f"bus URL {shown!r}: prefix {prefix!r} contains spaces or glob characters",
            hint="use letters, digits and separators such as ':' '_' '-'",
        )
    client_url = base + ("?" + "&".join(kept) if kept else "")
    return BusURL(scheme=scheme, client_url=client_url, prefix=prefix, redacted=shown)


def register_backend(scheme: str, factory: ClientFactory) -> None:
    """Make ``open_bus`` accept ``scheme://`` URLs, built by ``factory(url)``.

    ``factory`` receives the URL without ``?prefix=`` and returns a client with
    redis-py's interface (``publish``, ``pubsub``, ``get``, ``set``…); it must
    not connect. Registering an existing scheme replaces its factory.

    Examples
    --------
    >>> register_backend(  # doctest: +SKIP
    ...     "keydb", lambda url: redis.Redis.from_url("redis" + url[len("keydb"):]))
    """
    _FACTORIES[scheme.lower()] = factory


def backend_schemes() -> list[str]:
    """The URL schemes ``open_bus`` accepts, sorted."""
    return sorted(_FACTORIES)


def create_client(parsed: BusURL) -> redis.Redis:
    """A (not yet connected) client for ``parsed`` from its scheme's factory."""
    return _FACTORIES[parsed.scheme](parsed.client_url)


def memory_server(name: str = "") -> fakeredis.FakeServer:
    """The in-process server called ``name`` (``""`` is the one behind ``memory://``).

    Created on first use and kept for the life of the process.
    """
    with _MEMORY_LOCK:
        server = _MEMORY_SERVERS.get(name)
        if server is None:
            server = _MEMORY_SERVERS[name] = fakeredis.FakeServer()
        return server


def _memory_client(url: str) -> redis.Redis:
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"bus URL {url!r}: memory:// takes only a server name",
            hint="write memory:// or memory://NAME (optionally ?prefix=STR)",
        )
    name = unquote(parts.netloc)
    return fakeredis.FakeRedis(server=memory_server(name), retry=_no_retry())


def _redis_client(url: str) -> redis.Redis:
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
            retry=_no_retry(),
        )
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"bus URL {redact_url(url)!r} is invalid: {e}",
            hint="e.g. redis://localhost:6379/0 or unix:///run/redis.sock?db=0",
        ) from None


register_backend("memory", _memory_client)
for _scheme in ("redis", "rediss", "unix"):
    register_backend(_scheme, _redis_client)
