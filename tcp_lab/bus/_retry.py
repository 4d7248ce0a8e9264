"""The errors the bus treats as transient; the backoff itself is :mod:`tcp_lab.retry`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from tcp_lab import retry as _retry
from tcp_lab.retry import Backoff, one_line

__all__ = ["Backoff", "TRANSIENT_ERRORS", "call_with_retry", "one_line"]

T = TypeVar("T")

#: Server or network faults worth retrying (a restarted Redis, a dropped socket).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,  # the builtin: reset/refused/aborted sockets
)


def _transient(error: Exception) -> bool:
    # refused credentials are a ConnectionError in redis-py, but retrying cannot help
    return isinstance(error, TRANSIENT_ERRORS) and not isinstance(error,
                                                                  redis.AuthenticationError)


def call_with_retry(
    fn: Callable[[], T],
    *,
    backoff: Backoff,
    what: str,
    logger: logging.Logger,
    stop: threading.Event | None = None,
) -> T:
    """Call ``fn``; on a transient Redis error retry up to ``backoff.attempts`` tries in all.

    Refused credentials (``redis.AuthenticationError``) are raised at once. The
    last error is re-raised for the caller to translate (the bus raises
    ``ServiceError``). ``stop``, when set, interrupts the waiting.
    """
    return _retry.call_with_retry(fn, backoff=backoff, what=what, logger=logger,
                                  retry_if=_transient, stop=stop)
