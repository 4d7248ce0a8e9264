"""How the manager drives a bot host: a thread of its own process, or a host process.

Both give the runner (:mod:`tcp_lab.bots.runners`) the same small interface:
``add``/``remove`` a bot, ``request_stop``/``wait``, ``kill``, ``alive`` and,
once it ended, ``death`` (why). Bot events (``running``, ``crashed``,
``stopped``, ``fenced``, ``failed``) and the host's end (``host-ended``) go to
the ``on_event(host, kind, bot_id, detail)`` callback.

A :class:`ProcessHost` starts its process in a thread of its own, after taking
one of the runner's start slots (at most one per core not yet ready) and a
random delay of up to :data:`START_JITTER` seconds; commands given meanwhile
are sent once it runs. It reads the host's events from its stdout and reaps
it; the host's log goes to a file.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.host import BotHost

if TYPE_CHECKING:
    from tcp_lab.bots.runners import HostedBot
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = ["HostProxy", "ThreadHost", "ProcessHost", "START_JITTER"]

log = logging.getLogger("tcp_lab.bots")
#: A host process starts after a random delay of up to this many seconds.
START_JITTER = 0.2


# -- hosts ----------------------------------------------------------------------------------------
class HostProxy:
    """What the runner needs of a host, thread or process."""

    name: str
    pid: int | None = None
    death: str | None = None  # why it ended, once it has
    isolated: bool = False

    def __init__(self, name: str, on_event: Callable[[HostProxy, str, str, str], None]) -> None:
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


class ThreadHost(HostProxy):
    def __init__(self, name: str, on_event: Callable[[HostProxy, str, str, str], None], *,
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


class ProcessHost(HostProxy):
    def __init__(self, name: str, on_event: Callable[[HostProxy, str, str, str], None], *,
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
