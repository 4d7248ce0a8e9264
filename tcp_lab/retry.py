"""Exponential backoff with jitter, and one retry loop for every client of a server.

The bus (Redis) and the data collector (exchanges) retry transient faults the
same way: the delay grows exponentially up to a ceiling, a random part keeps
many clients from coming back in lock-step, and a server that says how long to
wait (HTTP ``Retry-After``) is obeyed. Each caller says which errors are
transient (``retry_if``) and, optionally, how long the server asked it to wait
(``wait_for``).

>>> import logging
>>> calls = []
>>> def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise ConnectionError("reset by peer")
...     return "ok"
>>> call_with_retry(flaky, backoff=Backoff(initial=0.001, jitter=0), what="demo",
...                 logger=logging.getLogger("demo"),
...                 retry_if=lambda e: isinstance(e, ConnectionError))
'ok'
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Backoff", "call_with_retry", "one_line"]

T = TypeVar("T")


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
        Tries of an operation before giving up; reconnect loops that must
        keep going (a bus listener, a live trade feed) ignore it.

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
    """``str(error)`` on one line (driver messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def call_with_retry(
    fn: Callable[[], T],
    *,
    backoff: Backoff,
    what: str,
    logger: logging.Logger,
    retry_if: Callable[[Exception], bool],
    wait_for: Callable[[Exception], float | None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Call ``fn``; retry transient errors, up to ``backoff.attempts`` tries in all.

    Parameters
    ----------
    fn
        The operation (no arguments).
    backoff
        Delays and number of tries.
    what
        How to call the operation in log messages (``"fetch klines BTC/USDT 1m"``).
    logger
        Where each failed try is logged, at WARNING, with the delay.
    retry_if
        True for errors worth retrying; any other error is raised at once.
    wait_for
        Seconds the server asked to wait for this error (``Retry-After``), or
        None; the wait is then at least that long.
    stop
        When set, waiting is interrupted and the last error raised.

    Returns
    -------
    The result of ``fn``.

    Raises
    ------
    Exception
        The last error, for the caller to translate, when it is not transient,
        the tries are used up, or ``stop`` is set.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as e:
            if (not retry_if(e) or attempt >= backoff.attempts
                    or (stop is not None and stop.is_set())):
                raise
            wait = backoff.delay(attempt)
            asked = wait_for(e) if wait_for is not None else None
            if asked is not None and asked > wait:
                wait = float(asked)
            logger.warning("%s failed (try %d of %d: %s); retrying in %.2f s",
                           what, attempt, backoff.attempts, one_line(e), wait)
            if stop is not None:
                if stop.wait(wait):
                    raise
            else:
                time.sleep(wait)
            attempt += 1
