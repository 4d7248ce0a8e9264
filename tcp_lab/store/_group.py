"""Group commit: many threads' small writes, committed together.

On the embedded default every bot is a thread of one process and a DuckDB
file has one writer, whose commit costs milliseconds whatever it holds. When
a candle closes, the bots of a series decide within a few milliseconds of
each other; :class:`GroupCommit` lets the first one to submit its records
wait briefly for the others and write them all in one transaction, while
each caller still returns only once its own records are committed (or
raises their error). The leader stops waiting as soon as every thread that
submitted recently has submitted again (so a lone bot never waits), when
``gap`` passes with no new submission, or after ``max_wait``.

This is the leader/follower scheme of database group commit (PostgreSQL's
``commit_delay``, InnoDB's binlog group commit), on threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
#: A thread that submitted within this many seconds is expected to submit again.
ACTIVE_SECONDS = 300.0


@dataclass
class _Ticket(Generic[T]):
    item: T
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # this caller writes the next batch
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Batch concurrent :meth:`submit` calls into calls of ``flush(items)``.

    Parameters
    ----------
    flush
        Writes a batch in one transaction (all or nothing).
    gap
        The leader flushes once no item arrived for this many seconds...
    max_wait
        ...or this long after it started waiting, whichever comes first.

    Each waiting caller sleeps on its own event, woken once (its batch is
    written, or it leads the next one), so fifty bots cost fifty wake-ups
    per candle, not fifty squared.

    Examples
    --------
    >>> batches = []
    >>> group = GroupCommit(batches.append, gap=0.0)
    >>> group.submit("a")
    >>> batches
    [['a']]
    """

    def __init__(self, flush: Callable[[list[T]], None], *, gap: float = 0.002,
                 max_wait: float = 0.02) -> None:
        self._flush = flush
        self.gap = gap
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)  # only the gathering leader waits here
        self._pending: list[_Ticket[T]] = []
        self._busy = False  # a leader is gathering or writing
        self._gathering = False
        self._last_arrival = 0.0
        self._active: dict[int, float] = {}  # submitting thread -> when it last submitted

    def submit(self, item: T) -> None:
        """Write ``item`` with whatever else is submitted meanwhile; return once committed.

        Raises
        ------
        BaseException
            What writing ``item`` raised (a failed batch is retried item by
            item, so one bad item fails only its own caller).
        """
        ticket = _Ticket(item)
        with self._lock:
            self._pending.append(ticket)
            self._last_arrival = time.monotonic()
            self._active[threading.get_ident()] = self._last_arrival
            if not self._busy:
                self._busy = ticket.lead = True
            elif self._gathering:
                self._arrival.notify()
        if not ticket.lead:
            ticket.wake.wait()
        if not ticket.done:
            self._lead()
        if ticket.error is not None:
            raise ticket.error

    def _lead(self) -> None:
        with self._lock:
            self._gathering = True
            now = time.monotonic()
            deadline = now + self.max_wait
            recent = now - ACTIVE_SECONDS
            self._active = {k: t for k, t in self._active.items() if t >= recent}
            while len(self._pending) < len(self._active):
                left = min(self._last_arrival + self.gap, deadline) - time.monotonic()
                if left <= 0:
                    break
                self._arrival.wait(left)
            self._gathering = False
            batch, self._pending = self._pending, []
        try:
            self._write(batch)
        finally:
            with self._lock:
                for t in batch:
                    t.done = True
                following = self._pending[0] if self._pending else None
                if following is not None:
                    following.lead = True  # hand over: it gathers what came meanwhile
                else:
                    self._busy = False
            for t in batch:
                t.wake.set()
            if following is not None:
                following.wake.set()

    def _write(self, batch: Sequence[_Ticket[T]]) -> None:
        try:
            self._flush([t.item for t in batch])
        except BaseException as e:
            if len(batch) == 1:
                batch[0].error = e
                return
            for t in batch:  # find the culprit: the others still get written
                try:
                    self._flush([t.item])
                except BaseException as one:
                    t.error = one
