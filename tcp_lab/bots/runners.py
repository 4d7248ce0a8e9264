"""Two ways to run the same :class:`~tcp_lab.bots.bot.Bot`: a thread or an OS process.

Both hand the manager a :class:`BotHandle` with the same small interface
(``alive``, ``error``, ``stop``, ``kill``), so one supervision policy drives
either:

- :class:`ThreadRunner` (embedded default, DuckDB + ``memory://``): the bot
  runs in a thread of the process that owns the store; an exception ends
  that thread only and is reported through :attr:`BotHandle.error`.
- :class:`ProcessRunner` (PostgreSQL + Redis): each bot is
  ``python -m tcp_lab.bots.worker BOT_ID``, its own OS process, so a crash,
  a hang or a ``kill -9`` cannot take the other bots down. Its output goes to
  ``<log_dir>/<bot_id>.log``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tcp_lab.bots.config import BotConfig

if TYPE_CHECKING:
    from tcp_lab.bots.bot import Bot
    from tcp_lab.bots.feed import CandleFeed
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = ["BotHandle", "Runner", "ThreadRunner", "ProcessRunner", "record_crash"]

log = logging.getLogger("tcp_lab.bots")


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
        """End it now (a hung bot): SIGKILL for a process, abandon a thread."""


class Runner(Protocol):
    """Starts bots; ``kind`` is ``"thread"`` or ``"process"``."""

    kind: str

    def launch(self, config: BotConfig) -> BotHandle:
        """Start the bot ``config`` describes (its row and state are in the store)."""


def record_crash(store: Store, bot: str, error: str, bus: Bus | None = None) -> None:
    """Mark ``bot`` crashed with ``error`` in the store and on ``status:{bot}`` (best effort)."""
    try:
        store.update_bot(bot, status="crashed", last_error=error[:4000])
    except Exception:  # the store may be what failed; the manager records it again
        log.exception("bot %s: could not record the crash", bot)
    if bus is not None:
        from tcp_lab.bots.policy import utc_now
        from tcp_lab.bus import StatusMessage, status_channel

        try:
            bus.publish(status_channel(bot), StatusMessage(
                bot_id=bot, ts=utc_now(), status="crashed", detail=error[:2000]))
        except Exception:
            log.warning("bot %s: could not publish the crash", bot)


# -- threads --------------------------------------------------------------------------------
class _ThreadHandle:
    def __init__(self, bot: Bot, heartbeat_interval: float, feed: CandleFeed | None) -> None:
        self.bot_id = bot.id
        self._bot = bot
        self._error: str | None = None
        self._killed = False
        self._thread = threading.Thread(target=self._main, args=(heartbeat_interval, feed),
                                        name=f"tcp_lab.bot[{bot.id}]", daemon=True)
        self._thread.start()

    def _main(self, heartbeat_interval: float, feed: CandleFeed | None) -> None:
        try:
            self._bot.run(heartbeat_interval=heartbeat_interval, feed=feed)
        except BaseException as e:  # isolate the bot: report, never propagate
            self._error = f"{type(e).__name__}: {e}"
            if not self._killed:
                log.error("bot %s crashed: %s", self.bot_id, self._error, exc_info=True)
                record_crash(self._bot.store, self.bot_id, self._error, self._bot.bus)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._killed

    @property
    def error(self) -> str | None:
        if self._killed:
            return self._error or "killed"
        return self._error

    def stop(self, timeout: float) -> None:
        self._bot.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("bot %s did not stop within %.1f s; abandoning its thread",
                        self.bot_id, timeout)
            self._killed = True

    def kill(self) -> None:
        # A thread cannot be killed: tell it to stop at the next candle and forget it.
        self._killed = True
        self._bot.stop()


class ThreadRunner:
    """Runs each bot in a daemon thread sharing this process's store and bus.

    The bots share one bus subscription per symbol (a
    :class:`~tcp_lab.bots.feed.CandleFeed`): a candle is decoded once, not once per bot.
    """

    kind = "thread"

    def __init__(self, store: Store, bus: Bus | None, *, heartbeat_interval: float) -> None:
        from tcp_lab.bots.feed import CandleFeed

        self.store = store
        self.bus = bus
        self.heartbeat_interval = heartbeat_interval
        self.feed = None if bus is None else CandleFeed(bus)

    def launch(self, config: BotConfig) -> BotHandle:
        from tcp_lab.bots.bot import Bot

        return _ThreadHandle(Bot(config, self.store, self.bus), self.heartbeat_interval,
                             self.feed)


# -- processes ------------------------------------------------------------------------------
class _ProcessHandle:
    def __init__(self, bot_id: str, proc: subprocess.Popen[bytes], store: Store) -> None:
        self.bot_id = bot_id
        self.pid = proc.pid
        self._proc = proc
        self._store = store
        self._stopping = False

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def error(self) -> str | None:
        code = self._proc.poll()
        if code is None or (code == 0 and self._stopping):
            return None
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"worker process {self.pid} killed by {name}"
        row = self._store.get_bot(self.bot_id)
        recorded = (row or {}).get("last_error")
        return recorded or f"worker process {self.pid} exited with status {code}"

    def stop(self, timeout: float) -> None:
        self._stopping = True
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("bot %s (pid %d) did not stop within %.1f s; killing it",
                            self.bot_id, self.pid, timeout)
                self.kill()

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(10)


class ProcessRunner:
    """Runs each bot as ``python -m tcp_lab.bots.worker BOT_ID`` (one OS process per bot).

    Parameters
    ----------
    store
        The manager's store (to read a dead worker's recorded error).
    database_url, bus_url
        Passed to the worker through ``TCP_LAB_DATABASE_URL`` and
        ``TCP_LAB_REDIS_URL`` (never on the command line, where ``ps`` shows it).
    heartbeat_interval
        Seconds between the worker's heartbeats.
    log_dir
        Where each worker's output goes (``<bot_id>.log``, appended).
    """

    kind = "process"

    def __init__(self, store: Store, *, database_url: str, bus_url: str,
                 heartbeat_interval: float, log_dir: Path) -> None:
        self.store = store
        self.database_url = database_url
        self.bus_url = bus_url
        self.heartbeat_interval = heartbeat_interval
        self.log_dir = Path(log_dir)

    def launch(self, config: BotConfig) -> BotHandle:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(TCP_LAB_DATABASE_URL=self.database_url, TCP_LAB_REDIS_URL=self.bus_url)
        cmd = [sys.executable, "-m", "tcp_lab.bots.worker", config.name,
               "--heartbeat-interval", str(self.heartbeat_interval)]
        with open(self.log_dir / f"{config.name}.log", "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, close_fds=True)
        log.info("bot %s: started worker process %d", config.name, proc.pid)
        return _ProcessHandle(config.name, proc, self.store)
