"""Leases: at most one holder of a named role per database (e.g. the bot manager).

Two bot managers on one database would both start every active bot, and the
bots would trade twice. :meth:`~tcp_lab.store.Store.lease` makes the second
one fail at once with an error naming the holder.

- PostgreSQL: a session-level advisory lock held on a connection of its own
  for as long as the lease lives. If the holder dies (even ``kill -9``), its
  session ends and the server releases the lock; a second host sees the
  holder's ``application_name`` (process id and host) in the error.
- DuckDB: a file admits one writing process, so a lease only needs to be
  unique within this process: a registry keyed by the database.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from tcp_lab.errors import ServiceError

__all__ = ["Lease", "LocalLeases", "holder_name"]


def holder_name(role: str) -> str:
    """Who holds a lease, as other processes see it: role, process id and host."""
    return f"tcp_lab {role} pid={os.getpid()} host={socket.gethostname()}"[:63]


class Lease:
    """A held lease; :meth:`release` (or leaving the ``with`` block) gives it up."""

    def __init__(self, role: str, release: Any) -> None:
        self.role = role
        self._release = release
        self._released = False
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """False once released."""
        return not self._released

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lease {self.role} {'held' if self.held else 'released'}>"


class LocalLeases:
    """Leases unique within this process, per database key (the DuckDB case)."""

    _held: dict[tuple[str, str], str] = {}
    _lock = threading.Lock()

    @classmethod
    def acquire(cls, database: str, role: str, where: str) -> Lease:
        """Take ``role`` on ``database`` or raise :class:`ServiceError` naming the holder."""
        key = (database, role)
        with cls._lock:
            holder = cls._held.get(key)
            if holder is not None:
                raise ServiceError(
                    f"{where}: the {role} lease is held by {holder}",
                    hint=f"stop the other {role} first (one per database)")
            cls._held[key] = f"{holder_name(role)} thread={threading.current_thread().name}"

        def release() -> None:
            with cls._lock:
                cls._held.pop(key, None)

        return Lease(role, release)
