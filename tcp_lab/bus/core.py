"""The bus: publish messages, subscribe to channels, keep small JSON values.

>>> from tcp_lab.bus import open_bus, status_channel, StatusMessage
>>> import pandas as pd
>>> with open_bus("memory://doc") as bus, bus.subscribe(status_channel("b1")) as sub:
...     n = bus.publish(status_channel("b1"), StatusMessage(
...         bot_id="b1", status="running", ts=pd.Timestamp("2024-01-01", tz="UTC")))
...     sub.get(timeout=1.0).status
'running'
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis

from tcp_lab.bus._retry import TRANSIENT_ERRORS, Backoff, call_with_retry, one_line
from tcp_lab.bus.backends import BusURL, create_client, parse_bus_url
from tcp_lab.bus.channels import (
    CHANNEL_MESSAGE_TYPES,
    channel_family,
    check_channel,
    check_name,
    check_pattern,
)
from tcp_lab.bus.messages import BaseMessage, MessageError, encode
from tcp_lab.bus.subscription import CONFIRM_POLL, IDLE_WAIT, Handler, Subscription
from tcp_lab.errors import ConfigError, DataError, ServiceError
from tcp_lab.settings import load_settings

__all__ = ["Bus", "open_bus"]

logger = logging.getLogger("tcp_lab.bus")
T = TypeVar("T")


class Bus:
    """Publish/subscribe over one Redis (or in-process fakeredis) server.

    Build it with :func:`open_bus`. Thread-safe: one bus can be shared by the
    threads of a process. Channel names and keys are given without the URL's
    ``prefix``; the bus adds it. Close the bus (or use ``with``) to stop its
    subscriptions and release its connections.
    """

    def __init__(self, client: redis.Redis, parsed: BusURL, *, backoff: Backoff) -> None:
        self._client = client
        self._parsed = parsed
        self._backoff = backoff
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        """The bus URL with any password redacted."""
        return self._parsed.redacted

    @property
    def prefix(self) -> str:
        """What is prepended to every channel and key (from ``?prefix=``)."""
        return self._parsed.prefix

    @property
    def backoff(self) -> Backoff:
        """The retry and reconnect policy."""
        return self._backoff

    # -- publish / subscribe -------------------------------------------------------------------

    def publish(self, channel: str, message: BaseMessage) -> int:
        """Send ``message`` on ``channel``; return how many subscribers received it.

        A dropped connection is retried with backoff (``backoff.attempts`` tries).

        Parameters
        ----------
        channel
            A concrete channel name, e.g. ``market_channel("BTC/USDT")``.
        message
            A message model; on a tcp_lab channel it must be the channel's type
            (candles on ``market:…``, signals on ``signals:…``…).

        Raises
        ------
        DataError
            Bad channel name, not a message, or the wrong type for the channel.
        ServiceError
            The server stayed unreachable.

        Examples
        --------
        >>> event = EventMessage(kind="x", source="me", ts="2024-01-01T00:00Z")  # doctest: +SKIP
        >>> bus.publish(system_channel(), event)  # doctest: +SKIP
        0
        """
        payload = self._payload(channel, message)
        raw = self._parsed.prefix + channel
        return int(self._call(lambda: self._client.publish(raw, payload), f"publish to {channel}"))

    def publish_many(self, items: Sequence[tuple[str, BaseMessage]]) -> None:
        """Send several messages in one round trip (a pipeline), in order.

        Checked as :meth:`publish` (all before any is sent); a dropped
        connection is retried with backoff, the whole pipeline again.

        Examples
        --------
        >>> bus.publish_many([(signals_channel("b1"), s1),  # doctest: +SKIP
        ...                   (signals_channel("b2"), s2)])
        """
        payloads = [(self._parsed.prefix + channel, self._payload(channel, message))
                    for channel, message in items]
        if not payloads:
            return

        def send() -> object:
            pipe = self._client.pipeline(transaction=False)
            for raw, payload in payloads:
                pipe.publish(raw, payload)
            return pipe.execute()

        self._call(send, f"publish {len(payloads)} messages")

    def _payload(self, channel: str, message: BaseMessage) -> str:
        check_channel(channel)
        payload = encode(message)  # MessageError (a DataError) for non-messages
        expected = CHANNEL_MESSAGE_TYPES.get(channel_family(channel))
        if expected is not None and message.type != expected:
            raise DataError(
                f"cannot publish a {message.type} message on {channel!r}: "
                f"that channel carries {expected} messages",
                hint="use the channel helpers: market_channel, trades_channel, "
                "signals_channel, status_channel, system_channel",
            )
        return payload

    def subscribers(self, channel: str) -> int:
        """How many subscriptions listen to ``channel`` itself (Redis ``PUBSUB NUMSUB``).

        Pattern subscriptions are not counted. A publisher with costly messages
        asks this (and caches the answer) to publish only when someone listens.

        Raises
        ------
        DataError
            A malformed channel name.
        ServiceError
            The server stayed unreachable.

        Examples
        --------
        >>> bus.subscribers(trades_channel("BTC/USDT"))  # doctest: +SKIP
        0
        """
        raw = self._parsed.prefix + check_channel(channel)
        counts = self._call(lambda: self._client.pubsub_numsub(raw), f"count subscribers of "
                            f"{channel}")
        return int(counts[0][1]) if counts else 0

    def subscribe(
        self,
        *channels: str,
        patterns: Iterable[str] = (),
        handler: Handler | None = None,
        on_reconnect: Callable[[], object] | None = None,
    ) -> Subscription:
        """Listen to ``channels`` and ``patterns`` in a background (daemon) thread.

        Returns once the server has confirmed the subscription, so a message
        published afterwards is received. Messages published while the
        connection is down are lost (see ``on_reconnect``); a message that
        matches both a channel and a pattern is delivered twice, as Redis does.

        Parameters
        ----------
        *channels
            Concrete channel names.
        patterns
            Redis glob patterns, e.g. ``[status_pattern()]`` for ``status:*``
            (a single string is taken as one pattern).
        handler
            Called with each decoded message in the listener thread. Without
            it, messages queue up for :meth:`Subscription.get`.
        on_reconnect
            Called (in the listener thread) after the connection was lost and
            the subscription re-established: catch up on what was missed.

        Returns
        -------
        Subscription
            Close it (or use ``with``) to stop the thread.

        Raises
        ------
        DataError
            Nothing to subscribe to, or a malformed channel name or pattern.
        ServiceError
            The server is unreachable.

        Examples
        --------
        >>> sub = bus.subscribe(patterns=[status_pattern()], handler=print)  # doctest: +SKIP
        >>> sub.close()                                                      # doctest: +SKIP
        """
        if isinstance(patterns, str):
            patterns = (patterns,)
        chans = tuple(dict.fromkeys(check_channel(c) for c in channels))
        pats = tuple(dict.fromkeys(check_pattern(p) for p in patterns))
        if not chans and not pats:
            raise DataError("subscribe() needs at least one channel or pattern",
                            hint="e.g. bus.subscribe(market_channel('BTC/USDT'))")
        for name, fn in (("handler", handler), ("on_reconnect", on_reconnect)):
            if fn is not None and not callable(fn):
                raise DataError(f"{name} must be callable, got {type(fn).__name__}")
        self._check_open()

        def make() -> Subscription:
            return Subscription(
                pubsub_factory=self._client.pubsub, channels=chans, patterns=pats,
                prefix=self._parsed.prefix, handler=handler, on_reconnect=on_reconnect,
                backoff=self._backoff, where=f"bus {self.url!r}", on_close=self._forget,
                idle_wait=CONFIRM_POLL if self._parsed.scheme == "memory" else IDLE_WAIT,
            )

        sub = self._call(make, "subscribe to " + ", ".join(chans + pats))
        with self._lock:
            closed = self._closed
            if not closed:
                self._subs.add(sub)
        if closed:  # the bus was closed while we subscribed
            sub.close()
            self._check_open()
        return sub

    # -- small JSON values ---------------------------------------------------------------------

    def set_json(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Store a JSON-serialisable ``value`` under ``key`` (expiring after ``ttl`` seconds).

        Raises
        ------
        DataError
            ``value`` cannot be written as JSON (NaN, objects…).
        ServiceError
            The server stayed unreachable.
        """
        check_name(key, "key")
        try:
            payload = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise DataError(f"value for bus key {key!r} is not JSON-serialisable: {e}") from None
        px = None if ttl is None else max(1, int(ttl * 1000))
        self._call(lambda: self._client.set(self._parsed.prefix + key, payload, px=px),
                   f"set {key}")

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` by :meth:`set_json`, or ``default``."""
        check_name(key, "key")
        raw = self._call(lambda: self._client.get(self._parsed.prefix + key), f"get {key}")
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError as e:
            raise MessageError(f"bus key {key!r} does not hold JSON ({e})",
                               hint="write it with Bus.set_json") from None

    def delete(self, *keys: str) -> int:
        """Delete ``keys``; return how many existed."""
        if not keys:
            return 0
        raw = [self._parsed.prefix + check_name(k, "key") for k in keys]
        return int(self._call(lambda: self._client.delete(*raw), "delete " + ", ".join(keys)))

    # -- lifecycle -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the server answers (one try, connect timeout of a few seconds).

        Raises
        ------
        ServiceError
            It does not.
        """
        self._check_open()
        try:
            self._client.ping()
        except redis.AuthenticationError as e:
            raise self._refused(e) from e
        except (redis.RedisError, *TRANSIENT_ERRORS) as e:
            raise self._unreachable("connect", e, tries=1) from e

    def close(self) -> None:
        """Close every subscription of this bus and release its connections. Idempotent."""
        with self._lock:
            subs, self._subs = list(self._subs), set()
            self._closed = True
        for sub in subs:
            sub.close()
        self._client.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Bus {self.url}{' closed' if self._closed else ''}>"

    # -- internals -----------------------------------------------------------------------------

    def _forget(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"bus {self.url!r} is closed; open a new one with open_bus()")

    def _call(self, fn: Callable[[], T], what: str) -> T:
        self._check_open()
        try:
            return call_with_retry(fn, backoff=self._backoff, what=f"bus {self.url!r}: {what}",
                                   logger=logger)
        except redis.AuthenticationError as e:
            raise self._refused(e) from e
        except TRANSIENT_ERRORS as e:
            raise self._unreachable(what, e, tries=self._backoff.attempts) from e
        except redis.RedisError as e:
            raise ServiceError(f"bus {self.url!r}: {what} failed: {one_line(e)}") from e

    def _refused(self, error: BaseException) -> ConfigError:
        return ConfigError(
            f"bus {self.url!r}: Redis refused the credentials ({one_line(error)})",
            hint="fix the user and password in TCP_LAB_REDIS_URL (redis://user:password@host…)",
        )

    def _unreachable(self, what: str, error: BaseException, *, tries: int) -> ServiceError:
        return ServiceError(
            f"bus {self.url!r}: cannot {what}, Redis is unreachable "
            f"({one_line(error)}; {tries} tr{'y' if tries == 1 else 'ies'})",
            hint="start Redis or fix TCP_LAB_REDIS_URL (memory:// runs in-process, no server)",
        )


def open_bus(url: str | None = None, *, backoff: Backoff | None = None,
             check: bool = True) -> Bus:
    """Open the message bus at ``url`` and check that its server answers.

    Parameters
    ----------
    url
        ``memory://`` (default: in-process fakeredis), ``memory://NAME``,
        ``redis://host:6379/0``, ``rediss://…`` or ``unix:///path.sock``,
        optionally with ``?prefix=STR`` to namespace every channel and key.
        ``None`` uses the ``redis_url`` setting (``TCP_LAB_REDIS_URL``).
    backoff
        Retry/reconnect policy (default :class:`Backoff()`: 4 tries for
        publish, 0.1 s doubling up to 10 s between reconnect attempts).
    check
        Ping the server now (default). ``False`` returns a bus at once even
        when the server is down (a bot host starts anyway and works from the
        store; its calls fail until the server is back).

    Returns
    -------
    Bus

    Raises
    ------
    ConfigError
        Unknown scheme, malformed URL, or credentials the server refuses.
    ServiceError
        The server does not answer within the connect timeout (2 s).

    Examples
    --------
    >>> bus = open_bus("memory://")
    >>> bus.url
    'memory://'
    >>> bus.close()
    """
    if url is None:
        url = load_settings().redis_url
    parsed = parse_bus_url(url)
    bus = Bus(create_client(parsed), parsed, backoff=backoff or Backoff())
    if not check:  # the caller copes with a server that is down for now
        return bus
    try:
        bus.ping()
    except BaseException:
        bus.close()
        raise
    return bus
