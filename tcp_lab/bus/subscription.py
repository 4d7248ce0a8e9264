"""A subscription: a daemon thread that listens, decodes, delivers and reconnects.

Build one with :meth:`tcp_lab.bus.Bus.subscribe`. With a ``handler`` the
thread calls ``handler(message)`` for each message; without one it queues the
messages for :meth:`Subscription.get`. Either way:

- a payload that is not a valid message is logged (logger ``tcp_lab.bus``,
  with the channel and the start of the payload) and skipped;
- a handler that raises is logged with its traceback and the next message
  is delivered as usual;
- when the connection drops, the thread reconnects with exponential backoff
  and jitter (logging each attempt), subscribes again to the same channels
  and patterns, then calls ``on_reconnect()``. Messages published while it
  was disconnected are lost: ``on_reconnect`` is the place to catch up
  (e.g. reload the last candles from the store).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from tcp_lab.bus._retry import TRANSIENT_ERRORS, Backoff, one_line
from tcp_lab.bus.messages import Message, MessageError, decode

if TYPE_CHECKING:
    from redis.client import PubSub

__all__ = ["Subscription", "Handler"]

logger = logging.getLogger("tcp_lab.bus")

#: Called with each decoded message, in the listener thread.
Handler = Callable[[Message], object]

#: The listener blocks on its socket up to this long (close() wakes it at once by
#: disconnecting it, a server that goes away closes the socket): an idle subscription
#: costs no CPU. The in-process bus (fakeredis) has no socket to wake a reader with,
#: so there it looks every ``CONFIRM_POLL`` seconds.
IDLE_WAIT = 30.0
CONFIRM_POLL = 0.1  # seconds between checks while waiting for a subscription's confirmation
SUBSCRIBE_TIMEOUT = 5.0  # seconds to wait for the server to confirm a (re)subscription
QUEUE_SIZE = 10_000  # messages kept for get() before new ones are dropped
_DATA_TYPES = ("message", "pmessage")
_CLOSED = object()  # queued by close() to wake a blocked get()


class Subscription:
    """Messages from some channels and patterns of one bus.

    Do not build it directly: use :meth:`Bus.subscribe`. Close it (or use it as
    a context manager) to stop its thread; closing the bus closes it too.

    Attributes
    ----------
    channels, patterns
        What it listens to, without the bus prefix.
    """

    def __init__(
        self,
        *,
        pubsub_factory: Callable[[], PubSub],
        channels: Sequence[str],
        patterns: Sequence[str],
        prefix: str,
        handler: Handler | None,
        on_reconnect: Callable[[], object] | None,
        backoff: Backoff,
        where: str,
        on_close: Callable[[Subscription], None] | None = None,
        idle_wait: float = IDLE_WAIT,
    ) -> None:
        self.channels = tuple(channels)
        self.patterns = tuple(patterns)
        self._new_pubsub = pubsub_factory
        self._prefix = prefix
        self._handler = handler
        self._on_reconnect = on_reconnect
        self._backoff = backoff
        self._where = where
        self._on_close = on_close
        self._idle_wait = idle_wait
        self._queue: queue.Queue[object] | None = None if handler else queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._reconnects = 0
        self._dropped = 0
        self._pubsub, pending = self._open()  # raises on failure: nothing to clean up
        self._thread = threading.Thread(
            target=self._run, args=(pending,), daemon=True,
            name=f"tcp_lab.bus[{self._names}]",
        )
        self._thread.start()

    # -- public ---------------------------------------------------------------------------

    def get(self, timeout: float | None = 1.0) -> Message | None:
        """The next message, or ``None`` if none arrives within ``timeout`` seconds.

        Only for subscriptions without a handler. ``timeout=None`` waits until a
        message arrives; a closed subscription returns what is left, then ``None``.

        Examples
        --------
        >>> sub = bus.subscribe(status_pattern())          # doctest: +SKIP
        >>> msg = sub.get(timeout=2.0)                      # doctest: +SKIP
        """
        if self._queue is None:
            raise RuntimeError(
                "this subscription delivers messages to its handler; "
                "subscribe without handler= to use get()"
            )
        if self._stop.is_set():
            timeout = 0
        try:
            item = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # for the next caller (we just made room)
            return None
        return item  # type: ignore[return-value]

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening and join the thread (at most ``timeout`` seconds). Idempotent."""
        self._stop.set()
        self._wake()
        if self._thread is not threading.current_thread():  # a handler may close its own sub
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("%s: listener %s did not stop within %.1f s (a slow handler?)",
                               self._where, self._thread.name, timeout)
        if self._queue is not None:
            with contextlib.suppress(queue.Full):  # full: nobody is blocked in get()
                self._queue.put_nowait(_CLOSED)  # wakes a get(timeout=None)
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None

    def _wake(self) -> None:
        """Interrupt the listener's blocking read (it then sees the stop flag)."""
        connection = getattr(self._pubsub, "connection", None)
        if connection is None:
            return
        try:
            connection.disconnect()
        except Exception:  # already gone: the listener is awake anyway
            logger.debug("%s: error while waking the listener", self._where, exc_info=True)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        """True while the listener thread runs."""
        return self._thread.is_alive()

    @property
    def reconnects(self) -> int:
        """How many times the listener reconnected after losing the server."""
        return self._reconnects

    @property
    def dropped(self) -> int:
        """Messages dropped because ``get()`` was not called and the queue was full."""
        return self._dropped

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Subscription {self._names} on {self._where} {state}>"

    @property
    def _names(self) -> str:
        return ", ".join(self.channels + self.patterns)

    # -- listener thread --------------------------------------------------------------------

    def _open(self) -> tuple[PubSub, list[dict[str, Any]]]:
        """A new pubsub subscribed to everything, and messages that came with the confirmations."""
        pubsub = self._new_pubsub()
        try:
            if self.channels:
                pubsub.subscribe(*(self._prefix + c for c in self.channels))
            if self.patterns:
                pubsub.psubscribe(*(self._prefix + p for p in self.patterns))
            wanted, confirmed, early = len(self.channels) + len(self.patterns), 0, []
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            while confirmed < wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise redis.TimeoutError(
                        f"the server did not confirm the subscription within {SUBSCRIBE_TIMEOUT} s")
                msg = pubsub.get_message(timeout=min(left, CONFIRM_POLL))
                if msg is None:
                    continue
                if msg["type"] in ("subscribe", "psubscribe"):
                    confirmed += 1
                elif msg["type"] in _DATA_TYPES:
                    early.append(msg)
            return pubsub, early
        except BaseException:
            _close_quietly(pubsub)
            raise

    def _run(self, pending: list[dict[str, Any]]) -> None:
        try:
            for msg in pending:
                self._deliver(msg)
            while not self._stop.is_set():
                try:
                    msg = self._pubsub.get_message(timeout=self._idle_wait)
                except TRANSIENT_ERRORS as e:
                    if self._stop.is_set():  # close() woke it by disconnecting
                        break
                    self._reconnect(e)
                    continue
                except Exception as e:  # unexpected: log loudly, start afresh rather than die
                    if self._stop.is_set():
                        break
                    logger.exception("%s: listener of %s failed", self._where, self._names)
                    self._reconnect(e)
                    continue
                if msg is not None and msg["type"] in _DATA_TYPES:
                    self._deliver(msg)
        finally:
            _close_quietly(self._pubsub)

    def _reconnect(self, error: BaseException) -> None:
        _close_quietly(self._pubsub)
        delay = self._backoff.delay(1)
        logger.warning("%s: subscription to %s lost its connection (%s); reconnecting in %.2f s",
                       self._where, self._names, one_line(error), delay)
        attempt = 0
        while not self._stop.wait(delay):
            attempt += 1
            try:
                self._pubsub, pending = self._open()
            except Exception as e:  # down, or half up: try again later either way
                delay = self._backoff.delay(attempt + 1)
                logger.warning("%s: reconnect attempt %d failed (%s); next in %.2f s",
                               self._where, attempt, one_line(e), delay)
                continue
            self._reconnects += 1
            logger.warning("%s: reconnect attempt %d succeeded; resubscribed to %s",
                           self._where, attempt, self._names)
            if self._on_reconnect is not None:
                try:
                    self._on_reconnect()
                except Exception:
                    logger.exception("%s: on_reconnect callback %r raised",
                                     self._where, self._on_reconnect)
            for msg in pending:
                self._deliver(msg)
            return

    def _deliver(self, raw: dict[str, Any]) -> None:
        channel = _text(raw["channel"]).removeprefix(self._prefix)
        try:
            message = decode(raw["data"])
        except MessageError as e:
            # the error quotes the (truncated) payload
            logger.warning("%s: dropped a malformed message on %s: %s",
                           self._where, channel, e)
            return
        if self._queue is not None:
            try:
                self._queue.put_nowait(message)
            except queue.Full:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    logger.warning("%s: subscription to %s dropped %d message(s): get() is "
                                   "not keeping up", self._where, self._names, self._dropped)
            return
        try:
            self._handler(message)  # type: ignore[misc]
        except Exception:
            logger.exception("%s: handler %r raised on a %s message from %s; continuing",
                             self._where, self._handler, message.type, channel)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _close_quietly(pubsub: PubSub) -> None:
    try:
        pubsub.close()
    except Exception:  # the connection is already gone; nothing to release
        logger.debug("bus: error while closing a pubsub", exc_info=True)
