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

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.control import stored_config
from tcp_lab.bots.host import BotHost, record_crash

if TYPE_CHECKING:
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = ["BotHandle", "Runner", "HostRunner", "HostedBot", "record_crash"]

log = logging.getLogger("tcp_lab.bots")
#: A host process starts after a random delay of up to this many seconds.
START_JITTER = 0.2
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


# -- the bots as the manager sees them ---------------------------------------------------------
class HostedBot:
    """One bot on a host (see the module docstring)."""

    def __init__(self, bot_id: str, symbol: str, host: _Host, runner: HostRunner) -> None:
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


# -- hosts ----------------------------------------------------------------------------------------
class _Host:
    """What the runner needs of a host, thread or process."""

    name: str
    pid: int | None = None
    death: str | None = None  # why it ended, once it has
    isolated: bool = False

    def __init__(self, name: str, on_event: Callable[[_Host, str, str, str], None]) -> None:
        self.name = name
        self.bots: dict[str, HostedBot] = {}
        self._on_event = on_event

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    def add(self, config: BotConfig, token: int) -> None:
        raise NotImplementedError

    def remove(self, bot_id: str) -> None:
        raise NotImplementedError

    def request_stop(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def event(self, kind: str, bot_id: str, detail: str) -> None:
        self._on_event(self, kind, bot_id, detail)


class _ThreadHost(_Host):
    def __init__(self, name: str, on_event: Callable[[_Host, str, str, str], None], *,
                 store: Store, bus: Bus | None, heartbeat_interval: float) -> None:
        super().__init__(name, on_event)
        self._host = BotHost(store, bus, heartbeat_interval=heartbeat_interval, name=name,
                             on_event=self.event)
        self._abandoned = False
        self._thread = threading.Thread(target=self._main, name=f"tcp_lab.{name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._host.run()
        except BaseException as e:  # a host failure ends its bots, never the manager
            self.death = f"host {self.name} failed: {type(e).__name__}: {e}"
            log.exception("%s failed", self.name)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._abandoned

    def add(self, config: BotConfig, token: int) -> None:
        self._host.add(config, token)

    def remove(self, bot_id: str) -> None:
        self._host.remove(bot_id)

    def request_stop(self) -> None:
        self._host.stop()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def kill(self) -> None:
        # A thread cannot be killed: stop it at its next message; its claims are stale.
        self._abandoned = True
        self.death = self.death or "abandoned (hung)"
        self._host.stop()


class _ProcessHost(_Host):
    def __init__(self, name: str, on_event: Callable[[_Host, str, str, str], None], *,
                 env: dict[str, str], heartbeat_interval: float, log_path: Path,
                 gate: threading.Semaphore) -> None:
        super().__init__(name, on_event)
        self._env = env
        self._interval = heartbeat_interval
        self._log_path = log_path
        self._gate = gate
        self._lock = threading.Lock()
        self._pending: list[str] = []  # commands written once the process is up
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._stopping = False
        threading.Thread(target=self._main, name=f"tcp_lab.{name}", daemon=True).start()

    # the process's life, in its own thread: start (gated), read events, reap
    def _main(self) -> None:
        self._gate.acquire()
        released = False
        try:
            time.sleep(random.uniform(0.0, START_JITTER))
            with self._lock:
                if self._stopping:
                    self.death = "stopped before it started"
                    return
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "tcp_lab.bots.host_process", "--name", self.name,
                       "--heartbeat-interval", str(self._interval)]
                with open(self._log_path, "ab") as out:
                    self._proc = subprocess.Popen(
                        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out,
                        env=self._env, close_fds=True, text=True, bufsize=1)
                self.pid = self._proc.pid
                for line in self._pending:
                    self._write(line)
                self._pending.clear()
            log.info("%s: started process %d", self.name, self.pid)
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("%s: unexpected output %r", self.name, line[:200])
                    continue
                if msg.get("event") == "ready":
                    self._ready.set()
                    if not released:
                        released = True
                        self._gate.release()
                elif "bot" in msg:
                    self.event(str(msg["event"]), str(msg["bot"]), str(msg.get("detail", "")))
            code = self._proc.wait()
            if not (self._stopping and code == 0):
                self.death = self._exit_reason(code)
        except Exception as e:
            self.death = f"host {self.name} could not run: {type(e).__name__}: {e}"
            log.exception("%s: could not run", self.name)
        finally:
            if not released:
                self._gate.release()
            with self._lock:
                for stream in (self._proc.stdin, self._proc.stdout) if self._proc else ():
                    if stream is not None:
                        try:
                            stream.close()
                        except OSError:
                            pass  # the other end is gone
            self._ended.set()
            self.event("host-ended", "", self.death or "")

    def _exit_reason(self, code: int) -> str:
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"host process {self.pid} killed by {name}"
        return f"host process {self.pid} exited with status {code} (see {self._log_path})"

    def _write(self, line: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # it died: the reader thread reports it

    def _send(self, **cmd: object) -> None:
        line = json.dumps(cmd)
        with self._lock:
            if self._proc is None:
                self._pending.append(line)
            else:
                self._write(line)

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def add(self, config: BotConfig, token: int) -> None:
        self._send(op="add", bot=config.name, token=token)

    def remove(self, bot_id: str) -> None:
        self._send(op="remove", bot=bot_id)

    def request_stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._send(op="stop")

    def wait(self, timeout: float) -> bool:
        return self._ended.wait(timeout)

    def kill(self) -> None:
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self._ended.wait(10)


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
        self._shared: list[_Host] = []
        self._all: list[_Host] = []
        self._count = 0
        self._gate = threading.BoundedSemaphore(os.cpu_count() or 1)

    # -- hosts ------------------------------------------------------------------------------
    def _new_host(self, isolated: bool) -> _Host:
        self._count += 1
        name = f"host-{self._count}"
        host: _Host
        if self.kind == "thread":
            host = _ThreadHost(name, self._on_event, store=self.store, bus=self.bus,
                               heartbeat_interval=self.heartbeat_interval)
        else:
            env = dict(os.environ)
            env.update(TCP_LAB_DATABASE_URL=str(self.database_url),
                       TCP_LAB_REDIS_URL=str(self.bus_url))
            host = _ProcessHost(name, self._on_event, env=env,
                                heartbeat_interval=self.heartbeat_interval,
                                log_path=self.log_dir / f"{name}.log", gate=self._gate)
        host.isolated = isolated
        self._all.append(host)
        if not isolated:
            self._shared.append(host)
        return host

    def _place(self, config: BotConfig) -> _Host:
        if config.isolation == "process":
            return self._new_host(isolated=True)
        self._shared = [h for h in self._shared if h.alive]

        def of_symbol(h: _Host) -> int:
            return sum(1 for b in h.bots.values() if b.symbol == config.symbol)

        holding = [h for h in self._shared if 0 < of_symbol(h) < SPLIT_AT]
        if holding:
            return min(holding, key=lambda h: len(h.bots))
        if len(self._shared) < self.hosts:
            return self._new_host(isolated=False)
        return min(self._shared, key=lambda h: (of_symbol(h), len(h.bots)))

    def _on_event(self, host: _Host, kind: str, bot_id: str, detail: str) -> None:
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

    def _forget(self, host: _Host) -> None:
        if host in self._shared:
            self._shared.remove(host)
        if host in self._all:
            self._all.remove(host)

    # -- what the manager calls ----------------------------------------------------------------
    def launch(self, config: BotConfig) -> HostedBot:
        with self._lock:
            host = self._place(config)
            token = self.store.claim_bot(config.name, host=host.name)
            handle = HostedBot(config.name, config.symbol, host, self)
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
