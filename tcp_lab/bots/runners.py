"""Where bots run: bot hosts, as threads of the manager or as host processes.

A :class:`HostRunner` places each bot on a :class:`~tcp_lab.bots.host.BotHost`
and hands the manager a :class:`HostedBot` per bot, with the small interface
its supervision policy drives (``alive``, ``error``, ``stop``, ``kill``):

- ``kind="thread"`` (embedded default, DuckDB + ``memory://``): hosts are
  threads of the manager's process, sharing its store and bus.
- ``kind="process"`` (PostgreSQL + Redis): hosts are
  ``python -m tcp_lab.bots.host_process`` processes, so a host that dies
  (``kill -9``, out of memory) takes only its own bots; their output goes to
  ``<log_dir>/<host>.log``.

Placement: bots of a symbol share a host (one subscription per symbol), the
symbols spread over at most ``hosts`` shared hosts (the one with the fewest
bots takes a new symbol). A symbol with more than :data:`SPLIT_AT` bots is
spread over the hosts too (each host then decides for its share of them, in
parallel with the others). A bot whose config says ``"isolation": "process"``
gets a host of its own. Each launch claims the bot in the store
(:meth:`~tcp_lab.store.Store.claim_bot`): the host writes for it only while
that claim is the newest.

A hung bot (:meth:`HostedBot.kill`) takes its host with it, but not its
neighbours: they are first moved to a fresh host (new claims, so the old host
can no longer write for them), then the old host is killed (a thread that
cannot be killed is abandoned; its claims are stale). Host processes start
with bounded concurrency (at most one per core not yet ready, each after a
small random delay), so a manager restoring many bots does not starve them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.control import stored_config
from tcp_lab.bots.host_handles import HostProxy, ProcessHost, ThreadHost

if TYPE_CHECKING:
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = ["BotHandle", "Runner", "HostRunner", "HostedBot", "SPLIT_AT"]

log = logging.getLogger("tcp_lab.bots")
#: Bots of one symbol a shared host takes before the symbol spreads to other hosts.
SPLIT_AT = 16


class BotHandle(Protocol):
    """A running bot as the manager sees it."""

    bot_id: str

    @property
    def alive(self) -> bool:
        """True while the bot runs."""

    @property
    def error(self) -> str | None:
        """Why it ended, once it has: None for a requested stop."""

    def stop(self, timeout: float) -> None:
        """Ask it to finish the candle in progress and end; wait up to ``timeout`` seconds."""

    def kill(self) -> None:
        """End it now (a hung bot)."""


class Runner(Protocol):
    """Starts bots; ``kind`` is ``"thread"`` or ``"process"``."""

    kind: str

    def launch(self, config: BotConfig) -> BotHandle:
        """Start the bot ``config`` describes (its row and state are in the store)."""

    def stop_all(self, timeout: float) -> None:
        """Stop every bot at once (each finishes its candle); wait up to ``timeout`` seconds."""


# -- the bots as the manager sees them ---------------------------------------------------------
class HostedBot:
    """One bot on a host (see the module docstring)."""

    def __init__(self, bot_id: str, symbol: str, host: HostProxy, runner: HostRunner) -> None:
        self.bot_id = bot_id
        self.symbol = symbol
        self.host = host
        self._runner = runner
        self._done = threading.Event()
        self._error: str | None = None
        #: True once the host reported the bot running (started, caught up, heartbeat).
        self.reported_running = False

    @property
    def pid(self) -> int | None:
        """The host process's id (None for a thread host)."""
        return self.host.pid

    @property
    def alive(self) -> bool:
        return not self._done.is_set() and self.host.alive

    @property
    def host_died(self) -> bool:
        """True when the bot ended because its host did (not by its own error)."""
        return not self._done.is_set() and not self.host.alive

    @property
    def error(self) -> str | None:
        if self._done.is_set():
            return self._error
        if not self.host.alive:
            return self.host.death or "its host ended"
        return None

    def _end(self, error: str | None) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    def stop(self, timeout: float) -> None:
        if not self.alive:
            return
        self.host.remove(self.bot_id)
        if not self._done.wait(timeout) and self.host.alive:
            log.warning("bot %s did not stop within %.1f s; killing it", self.bot_id, timeout)
            self.kill()
        self._end(None)

    def kill(self) -> None:
        self._runner.evict(self)


# -- the runner -----------------------------------------------------------------------------------
class HostRunner:
    """Places bots on hosts (see the module docstring).

    Parameters
    ----------
    kind
        ``"thread"`` or ``"process"``.
    store, bus
        The manager's (thread hosts share them; claims are made here).
    hosts
        How many shared hosts at most (default: the core count for processes, 1
        for threads).
    heartbeat_interval
        Seconds between heartbeats.
    database_url, bus_url, log_dir
        For host processes: passed in ``TCP_LAB_DATABASE_URL`` /
        ``TCP_LAB_REDIS_URL`` (never on the command line, where ``ps`` shows it);
        their output goes to ``<log_dir>/<host>.log``.
    on_change
        Called when a bot or host ended (the manager wakes up).
    """

    def __init__(self, kind: str, store: Store, bus: Bus | None, *, hosts: int | None = None,
                 heartbeat_interval: float, database_url: str | None = None,
                 bus_url: str | None = None, log_dir: Path | None = None,
                 on_change: Callable[[], object] | None = None) -> None:
        if kind not in ("thread", "process"):
            raise ValueError(kind)
        self.kind = kind
        self.store = store
        self.bus = bus
        self.hosts = max(1, int(hosts if hosts is not None else (
            (os.cpu_count() or 1) if kind == "process" else 1)))
        self.heartbeat_interval = heartbeat_interval
        self.database_url, self.bus_url = database_url, bus_url
        self.log_dir = Path(log_dir) if log_dir is not None else Path("logs") / "bots"
        self.on_change = on_change
        self._lock = threading.RLock()
        self._shared: list[HostProxy] = []
        self._all: list[HostProxy] = []
        self._count = 0
        self._gate = threading.BoundedSemaphore(os.cpu_count() or 1)

    # -- hosts ------------------------------------------------------------------------------
    def _new_host(self, isolated: bool) -> HostProxy:
        self._count += 1
        name = f"host-{self._count}"
        host: HostProxy
        if self.kind == "thread":
            host = ThreadHost(name, self._on_event, store=self.store, bus=self.bus,
                               heartbeat_interval=self.heartbeat_interval)
        else:
            env = dict(os.environ)
            env.update(TCP_LAB_DATABASE_URL=str(self.database_url),
                       TCP_LAB_REDIS_URL=str(self.bus_url))
            host = ProcessHost(name, self._on_event, env=env,
                                heartbeat_interval=self.heartbeat_interval,
                                log_path=self.log_dir / f"{name}.log", gate=self._gate)
        host.isolated = isolated
        self._all.append(host)
        if not isolated:
            self._shared.append(host)
        return host

    def _place(self, config: BotConfig) -> HostProxy:
        if config.isolation == "process":
            return self._new_host(isolated=True)
        self._shared = [h for h in self._shared if h.alive]

        def of_symbol(h: HostProxy) -> int:
            return sum(1 for b in h.bots.values() if b.symbol == config.universe[0])

        holding = [h for h in self._shared if 0 < of_symbol(h) < SPLIT_AT]
        if holding:
            return min(holding, key=lambda h: len(h.bots))
        if len(self._shared) < self.hosts:
            return self._new_host(isolated=False)
        return min(self._shared, key=lambda h: (of_symbol(h), len(h.bots)))

    def _on_event(self, host: HostProxy, kind: str, bot_id: str, detail: str) -> None:
        with self._lock:
            if kind == "host-ended":  # its bots are no longer alive: host_died, error
                self._forget(host)
            else:
                handle = host.bots.get(bot_id)
                if handle is None:
                    return
                if kind == "running":
                    handle.reported_running = True
                elif kind in ("crashed", "failed"):
                    host.bots.pop(bot_id, None)
                    handle._end(detail or kind)
                elif kind == "fenced":
                    host.bots.pop(bot_id, None)
                    handle._end(f"fenced: {detail}")
                elif kind == "stopped":
                    host.bots.pop(bot_id, None)
                    handle._end(None)
        if kind != "running" and self.on_change is not None:
            self.on_change()

    def _forget(self, host: HostProxy) -> None:
        if host in self._shared:
            self._shared.remove(host)
        if host in self._all:
            self._all.remove(host)

    # -- what the manager calls ----------------------------------------------------------------
    def launch(self, config: BotConfig) -> HostedBot:
        with self._lock:
            host = self._place(config)
            token = self.store.claim_bot(config.name, host=host.name)
            handle = HostedBot(config.name, config.universe[0], host, self)
            host.bots[config.name] = handle
            host.add(config, token)
            return handle

    def evict(self, handle: HostedBot) -> None:
        """End a hung bot: move its neighbours to a fresh host, then end the old host."""
        with self._lock:
            old = handle.host
            old.bots.pop(handle.bot_id, None)
            handle._end(f"killed with its host {old.name}")
            self.store.claim_bot(handle.bot_id, host=f"(taken from {old.name})")  # fence it
            neighbours = list(old.bots.values())
            old.bots.clear()
            self._forget(old)
            if neighbours:
                fresh = self._new_host(isolated=old.isolated)
                for n in neighbours:
                    row = self.store.get_bot(n.bot_id)
                    if row is None:
                        n._end("its row is gone")
                        continue
                    config = stored_config(row)
                    token = self.store.claim_bot(n.bot_id, host=fresh.name)
                    n.host, n.reported_running = fresh, False
                    fresh.bots[n.bot_id] = n
                    fresh.add(config, token)
                log.warning("%s: bot %s hung; moved %d other bot(s) to %s", old.name,
                            handle.bot_id, len(neighbours), fresh.name)
        old.kill()

    def stop_all(self, timeout: float) -> None:
        """Stop every host at once and wait for all (a bot finishes its candle first)."""
        with self._lock:
            hosts = [h for h in self._all if h.alive]
        for h in hosts:
            h.request_stop()
        deadline = time.monotonic() + timeout
        for h in hosts:
            if not h.wait(max(0.0, deadline - time.monotonic())):
                log.warning("%s did not stop within %.1f s; killing it", h.name, timeout)
                h.kill()
        with self._lock:
            for h in hosts:
                for handle in list(h.bots.values()):
                    handle._end(None)
                h.bots.clear()
                self._forget(h)

    def host_of(self) -> dict[str, str]:
        """The host each running bot is on."""
        with self._lock:
            return {b: h.name for h in self._all for b in h.bots}
