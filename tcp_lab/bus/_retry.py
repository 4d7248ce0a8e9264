"""Exponential backoff with jitter, and the errors the bus treats as transient."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

__all__ = ["Backoff", "TRANSIENT_ERRORS", "call_with_retry", "one_line"]

T = TypeVar("T")

#: Server or network faults worth retrying (a restarted Redis, a dropped socket).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,  # the builtin: reset/refused/aborted sockets
)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before retry number ``attempt`` (1, 2, …).

    The delay grows as ``initial * factor ** (attempt - 1)`` up to ``maximum``,
    and is then drawn uniformly from ``[delay * (1 - jitter), delay]`` so that
    many clients that lost the same server do not come back in lock-step.

    Attributes
    ----------
    initial
        First delay in seconds.
    factor
        Growth per attempt.
    maximum
        Longest delay in seconds.
    jitter
        Fraction of the delay that is random (0 = none, 1 = "full jitter").
    attempts
        Tries of an operation (publish, subscribe) before giving up; the
        listener's reconnect loop ignores it and keeps trying until closed.

    Examples
    --------
    >>> Backoff(initial=0.1, jitter=0).delay(3)
    0.4
    """

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 10.0
    jitter: float = 0.5
    attempts: int = 4

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (counting from 1)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * random.random())


def one_line(error: BaseException) -> str:
    """``str(error)`` on one line (redis-py messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def call_with_retry(
    fn: Callable[[], T],
    *,
    backoff: Backoff,
    what: str,
    logger: logging.Logger,
    stop: threading.Event | None = None,
) -> T:
    """Call ``fn``; on a transient error retry up to ``backoff.attempts`` tries in all.

    Refused credentials (``redis.AuthenticationError``, a ``ConnectionError``
    in redis-py) are not transient and are raised at once.

    Each failed try is logged at WARNING with ``what`` and the delay. The last
    error is re-raised for the caller to translate (the bus raises
    ``ServiceError``). ``stop``, when set, interrupts the waiting.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except TRANSIENT_ERRORS as e:
            if (isinstance(e, redis.AuthenticationError) or attempt >= backoff.attempts
                    or (stop is not None and stop.is_set())):
                raise
            wait = backoff.delay(attempt)
            logger.warning("%s failed (try %d of %d: %s); retrying in %.2f s",
                           what, attempt, backoff.attempts, one_line(e), wait)
            if stop is not None:
                if stop.wait(wait):
                    raise
            else:
                time.sleep(wait)
            attempt += 1
