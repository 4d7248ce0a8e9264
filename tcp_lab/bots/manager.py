"""The bot manager: start, stop, supervise and restore paper-trading bots.

One manager per database (it holds a lease, :meth:`tcp_lab.store.Store.lease`:
a second one fails at start, naming the first). It runs in a notebook (``BotManager().start()``,
a background thread, bots in a host thread on the embedded default) or as the
service ``tcp-lab bots serve`` (bots in host processes on PostgreSQL + Redis,
many bots per host: see :mod:`tcp_lab.bots.runners`).
Every ``poll_interval`` seconds it makes one supervision pass
(:meth:`BotManager.tick`):

1. act on start/stop requests written to the ``bots`` table by other
   processes (see :mod:`tcp_lab.bots.control`);
2. :meth:`~BotManager.check_bots`: a bot whose heartbeat stopped changing
   (once it had one: the timer starts at its first heartbeat) is hung, a bot
   lagging the newest stored candle by more than ``max_lag`` candles without
   progress is stuck; either is killed (its host's other bots move to a fresh
   host first);
3. :meth:`~BotManager.restart_crashed_bots`: a dead bot is restarted after an
   exponential backoff, at most ``max_restarts`` times in any rolling
   ``window``; one more crash marks it ``failed`` and publishes a
   ``bots.failed`` event on ``system:events``. A bot whose host died before
   the bot ever reported running is started again without using its budget
   (at most ``max_restarts`` such free starts in a row).

Live trading is impossible by construction: bots only paper-trade.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tcp_lab.bots.config import BotConfig
from tcp_lab.bots.control import (
    ACTIVE_STATUSES,
    FAILED_EVENT,
    REQUEST_EVENT,
    SHUTDOWN_REASON,
    bot_rows,
    publish_event,
    resolve_config,
    save_definition,
    stored_config,
)
from tcp_lab.bots.policy import Clock, Liveness, RestartPolicy, utc_now
from tcp_lab.bots.runners import BotHandle, HostRunner, Runner
from tcp_lab.bus import SYSTEM_EVENTS, Bus, StatusMessage, open_bus, status_channel
from tcp_lab.errors import ConfigError, TcpLabError
from tcp_lab.settings import load_settings
from tcp_lab.store import Store, open_store
from tcp_lab.store._lease import Lease
from tcp_lab.timeframes import parse_timeframe

__all__ = ["BotManager", "RUNNERS"]

log = logging.getLogger("tcp_lab.bots")
RUNNERS = ("auto", "thread", "process")
#: The lease a running manager holds on its database (see :meth:`tcp_lab.store.Store.lease`).
LEASE_ROLE = "bots manager"


class BotManager:
    """Starts, stops, supervises and restores bots.

    Parameters
    ----------
    store, bus
        Open objects or URLs (default: the ``database_url`` and ``redis_url``
        settings). URLs are opened, and closed by :meth:`stop`.
    runner
        ``"thread"``, ``"process"`` or ``"auto"``: host threads on the
        embedded default (DuckDB or ``memory://``), host processes otherwise.
    hosts
        How many shared bot hosts at most (default: the core count for
        processes, one thread). Bots of a symbol share a host; a bot config
        with ``"isolation": "process"`` gets one of its own.
    policy
        Restart budget, backoff, heartbeat and liveness thresholds.
    clock
        Wall clock for restart times (tests inject one to fake the hour).
    poll_interval
        Seconds between supervision passes of :meth:`start`'s thread.
    config_dir
        Where :meth:`start_bot` finds ``<name>.json``.
    log_dir
        Where worker processes write their output (default ``<home>/logs/bots``).

    Examples
    --------
    >>> manager = BotManager().start()        # doctest: +SKIP
    >>> manager.start_bot("sma-btc")          # doctest: +SKIP
    'sma-btc'
    >>> manager.stop()                        # doctest: +SKIP
    """

    def __init__(self, store: Store | str | None = None, bus: Bus | str | None = None, *,
                 runner: str = "auto", hosts: int | None = None,
                 policy: RestartPolicy | None = None,
                 clock: Clock = utc_now, poll_interval: float = 0.5,
                 config_dir: str | Path | None = None, log_dir: str | Path | None = None,
                 ) -> None:
        if runner not in RUNNERS:
            raise ConfigError(f"runner={runner!r}, expected one of {RUNNERS}")
        settings = None
        if not isinstance(store, Store) or not isinstance(bus, Bus) or log_dir is None:
            settings = load_settings()
        self._owned: list[Any] = []
        self.database_url = store if isinstance(store, str) else (
            settings.database_url if store is None else None)
        if not isinstance(store, Store):
            store = open_store(self.database_url)
            self._owned.append(store)
        self.store = store
        self.bus_url = bus if isinstance(bus, str) else (
            settings.redis_url if bus is None else None)
        if not isinstance(bus, Bus):
            bus = open_bus(self.bus_url)
            self._owned.append(bus)
        self.bus = bus
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.poll_interval = float(poll_interval)
        self.config_dir = config_dir
        self.hosts = hosts
        self._wake = threading.Event()
        embedded = store.backend == "duckdb" or bus.url.startswith("memory")
        kind = ("thread" if embedded else "process") if runner == "auto" else runner
        self.runner: Runner = self._make_runner(kind, settings, log_dir)
        self._handles: dict[str, BotHandle] = {}
        self._liveness: dict[str, Liveness] = {}
        self._configs: dict[str, BotConfig] = {}
        self._pending: dict[str, float] = {}  # bot id -> monotonic time of its restart
        self._kill_reasons: dict[str, str] = {}
        self._free_starts: dict[str, int] = {}  # host died before the bot ran, in a row
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._events = None
        self._lease: Lease | None = None

    def _make_runner(self, kind: str, settings: Any, log_dir: str | Path | None) -> Runner:
        interval = self.policy.heartbeat_interval
        if kind == "thread":
            return HostRunner("thread", self.store, self.bus, hosts=self.hosts,
                              heartbeat_interval=interval, on_change=self._wake.set)
        if self.database_url is None or self.bus_url is None:
            raise ConfigError("the process runner needs the database and bus URLs",
                              hint="pass store= and bus= as URLs, not open objects")
        if self.database_url.startswith("duckdb") or self.bus_url.startswith("memory"):
            raise ConfigError(
                "bots cannot run as separate processes on the embedded default "
                f"({self.store.backend}, {self.bus.url}): other processes cannot open them",
                hint="use runner='thread', or PostgreSQL + Redis")
        folder = Path(log_dir) if log_dir is not None else Path(settings.home) / "logs" / "bots"
        return HostRunner("process", self.store, self.bus, hosts=self.hosts,
                          heartbeat_interval=interval, database_url=self.database_url,
                          bus_url=self.bus_url, log_dir=folder, on_change=self._wake.set)

    # -- lifecycle of the manager ---------------------------------------------------------
    def acquire_lease(self) -> BotManager:
        """Take the database's manager lease now (:meth:`start` takes it otherwise).

        One manager per database, or every bot would run twice. A front end
        calls this before it prints anything, so that a second manager fails
        before it announces itself.

        Raises
        ------
        ServiceError
            Another manager holds the lease; the message names it (process and host).
        """
        if self._lease is None:
            self._lease = self.store.lease(LEASE_ROLE)
        return self

    def start(self) -> BotManager:
        """Restore the active bots and supervise them in a background thread (returns at once)."""
        if self._thread is not None:
            return self
        self.acquire_lease()
        self.restore_active_bots_on_startup()
        self._events = self.bus.subscribe(SYSTEM_EVENTS, handler=self._on_event)
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="tcp_lab.bots.manager",
                                        daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """:meth:`start`, then block until :meth:`stop` (or Ctrl-C, which stops).

        It stops (closing what it opened) also when it cannot start, e.g. when
        another manager holds the lease.
        """
        try:
            self.start()
            while not self._halt.wait(0.5):
                pass
        except KeyboardInterrupt:
            log.info("bots manager: interrupted, stopping the bots")
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop supervising and stop every bot, all at once; they resume when a manager
        starts again."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout + self.poll_interval)
        self._thread = None
        if self._events is not None:
            self._events.close()
            self._events = None
        with self._lock:
            self._stop_all(timeout)
            self._pending.clear()
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        for obj in reversed(self._owned):
            obj.close()
        self._owned.clear()

    def __enter__(self) -> BotManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_event(self, message: Any) -> None:
        if getattr(message, "kind", None) == REQUEST_EVENT:
            self._wake.set()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except Exception:  # a supervision pass must never kill the supervisor
                log.exception("bots manager: supervision pass failed; retrying")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # -- bots ------------------------------------------------------------------------------
    def start_bot(self, bot: str | Path | BotConfig) -> str:
        """Start a bot from a config object, a file, or a name in ``config_dir``.

        The definition is stored with the bot (its account and last processed
        candle are kept), then the bot starts in this manager. Starting a
        running bot does nothing.

        Returns
        -------
        str
            The bot's id.
        """
        config, path = resolve_config(bot, self.config_dir)
        with self._lock:
            if config.name in self._handles and self._handles[config.name].alive:
                save_definition(self.store, config, path, "running")
                return config.name
            save_definition(self.store, config, path, "starting")
            self._pending.pop(config.name, None)
            self._launch(config)
        return config.name

    def stop_bot(self, bot_id: str, timeout: float = 10.0, reason: str | None = None) -> None:
        """Stop a bot (after the candle in progress) and mark it ``stopped``.

        ``reason`` is kept as its ``last_error`` (e.g. the crash it was stopped
        for); a stopped bot is not restored when a manager starts.
        """
        with self._lock:
            self._pending.pop(bot_id, None)
            if bot_id in self._handles:
                self._stop_handle(bot_id, timeout, reason=reason)
            else:
                self.store.update_bot(bot_id, status="stopped", last_error=reason)
                self._publish(bot_id, "stopped", reason or "stopped")

    def bots(self) -> pd.DataFrame:
        """The ``bots`` table (one row per bot)."""
        return self.store.list_bots()

    def status(self, bot_id: str) -> dict[str, Any] | None:
        """One bot's row, or None."""
        return self.store.get_bot(bot_id)

    @property
    def running(self) -> list[str]:
        """Ids of the bots this manager runs now."""
        with self._lock:
            return sorted(b for b, h in self._handles.items() if h.alive)

    def pids(self) -> dict[str, int]:
        """Host process ids by bot (empty with the thread runner)."""
        with self._lock:
            return {b: h.pid for b, h in self._handles.items()
                    if h.alive and getattr(h, "pid", None) is not None}

    # -- supervision -----------------------------------------------------------------------
    def tick(self) -> None:
        """One supervision pass: requests, hang/stuck checks, crash handling."""
        with self._lock:
            self._apply_requests()
            self.check_bots()
            self.restart_crashed_bots()

    def restore_active_bots_on_startup(self) -> list[str]:
        """Start every bot that was active when the last manager ended.

        Bots with status ``starting``, ``running`` or ``crashed``, and those
        stopped by a manager shutdown, resume from their stored state (cash,
        position, last processed candle). A pending ``stopping`` becomes
        ``stopped``.

        Returns
        -------
        list of str
            The ids of the restored bots.
        """
        restored = []
        with self._lock:
            for row in self._rows():
                bot_id, status = row["id"], row["status"]
                if bot_id in self._handles:
                    continue
                if status == "stopping":
                    self.store.update_bot(bot_id, status="stopped")
                    continue
                if status in ACTIVE_STATUSES or (status == "stopped"
                                                 and row["last_error"] == SHUTDOWN_REASON):
                    if self._launch_row(row):
                        restored.append(bot_id)
        if restored:
            log.info("bots manager: restored %s", ", ".join(restored))
        return restored

    def check_bots(self) -> list[str]:
        """Kill hung and stuck bots (they are then restarted by the crash policy).

        Returns
        -------
        list of str
            The ids of the bots killed.
        """
        killed = []
        newest: dict[tuple[str, str, str], pd.Timestamp | None] = {}
        with self._lock:
            rows = {r["id"]: r for r in self._rows()}
            for bot_id, handle in list(self._handles.items()):
                row, config = rows.get(bot_id), self._configs[bot_id]
                if row is None or not handle.alive:
                    continue
                live = self._liveness[bot_id]
                reason = live.hung(row["heartbeat"])
                if reason is None:
                    for key in config.series:
                        if key not in newest:
                            newest[key] = self.store.latest_candle_ts(*key)
                    stored = [newest[k] for k in config.series if newest[k] is not None]
                    reason = live.stuck(row["last_candle_ts"], max(stored, default=None),
                                        parse_timeframe(config.timeframe).delta)
                if reason is not None:
                    log.warning("bot %s %s; killing it", bot_id, reason)
                    self._kill_reasons[bot_id] = reason
                    handle.kill()
                    killed.append(bot_id)
        return killed

    def restart_crashed_bots(self) -> list[str]:
        """Handle bots that died, and restart those whose backoff has passed.

        A crash within the restart budget schedules a restart after the
        policy's backoff (status ``crashed``); one crash too many marks the
        bot ``failed`` and publishes a ``bots.failed`` event on
        ``system:events`` with the reason.

        Returns
        -------
        list of str
            The ids of the bots restarted by this call.
        """
        restarted = []
        with self._lock:
            for bot_id, handle in list(self._handles.items()):
                if handle.alive:
                    continue
                reason = self._kill_reasons.pop(bot_id, None) or handle.error or \
                    "ended without an error"
                del self._handles[bot_id]
                self._liveness.pop(bot_id, None)
                if self._start_again_free(bot_id, handle, reason):
                    continue
                self._on_crash(bot_id, reason)
            now = time.monotonic()
            for bot_id, due in list(self._pending.items()):
                if due > now:
                    continue
                del self._pending[bot_id]
                row = self.store.get_bot(bot_id)
                if row is not None and row["status"] == "crashed" and self._launch_row(row):
                    restarted.append(bot_id)
        return restarted

    # -- internals -------------------------------------------------------------------------
    def _rows(self) -> list[dict[str, Any]]:
        return bot_rows(self.store)

    def _apply_requests(self) -> None:
        for row in self._rows():
            bot_id, status = row["id"], row["status"]
            managed = bot_id in self._handles
            if managed and status in ("stopping", "stopped"):
                self._stop_handle(bot_id, 10.0, reason=None)
            elif not managed and bot_id not in self._pending and status == "starting":
                self._launch_row(row)
            elif bot_id in self._pending and status in ("stopping", "stopped"):
                del self._pending[bot_id]
                self.store.update_bot(bot_id, status="stopped", last_error=None)

    def _launch_row(self, row: dict[str, Any]) -> bool:
        try:
            config = stored_config(row)
        except TcpLabError as e:
            log.error("bot %s cannot start: %s", row["id"], e)
            self.store.update_bot(row["id"], status="failed", last_error=str(e))
            self._publish(row["id"], "failed", str(e))
            return False
        self._launch(config)
        return True

    def _launch(self, config: BotConfig) -> None:
        self.store.update_bot(config.name, status="starting")
        self._publish(config.name, "starting", f"{self.runner.kind} runner")
        self._configs[config.name] = config
        self._liveness[config.name] = Liveness(self.policy)
        self._handles[config.name] = self.runner.launch(config)

    def _start_again_free(self, bot_id: str, handle: BotHandle, reason: str) -> bool:
        """Start again, without using the restart budget, a bot whose host died before
        the bot ever reported running (e.g. killed while many hosts started at once)."""
        if getattr(handle, "reported_running", True) or not getattr(handle, "host_died", False):
            self._free_starts.pop(bot_id, None)
            return False
        n = self._free_starts.get(bot_id, 0)
        if n >= max(1, self.policy.max_restarts):
            return False
        self._free_starts[bot_id] = n + 1
        log.warning("bot %s: its host ended before it ran (%s); starting it again", bot_id,
                    reason)
        row = self.store.get_bot(bot_id)
        if row is None or row["status"] in ("stopping", "stopped", "failed"):
            return True
        self._launch_row(row)
        return True

    def _stop_all(self, timeout: float) -> None:
        """Stop every bot at once (each finishes its candle), as a shutdown."""
        bots = list(self._handles)
        for bot_id in bots:
            self.store.update_bot(bot_id, status="stopping")
            self._publish(bot_id, "stopping", SHUTDOWN_REASON)
        self.runner.stop_all(timeout)
        for bot_id in bots:
            self._handles.pop(bot_id)
            self._liveness.pop(bot_id, None)
            self.store.update_bot(bot_id, status="stopped", last_error=SHUTDOWN_REASON)
            self._publish(bot_id, "stopped", SHUTDOWN_REASON)

    def _stop_handle(self, bot_id: str, timeout: float, reason: str | None) -> None:
        handle = self._handles.pop(bot_id)
        self._liveness.pop(bot_id, None)
        self.store.update_bot(bot_id, status="stopping")
        self._publish(bot_id, "stopping", reason or "stop requested")
        handle.stop(timeout)
        self.store.update_bot(bot_id, status="stopped", last_error=reason)
        self._publish(bot_id, "stopped", reason or "stopped")

    def _on_crash(self, bot_id: str, reason: str) -> None:
        row = self.store.get_bot(bot_id)
        if row is None:
            return
        decision = self.policy.on_crash(row["restart_times"], self.clock())
        if decision.restart:
            log.warning("bot %s crashed (%s); %s", bot_id, reason, decision.reason)
            self.store.update_bot(bot_id, status="crashed", last_error=reason,
                                  restart_count=row["restart_count"] + 1,
                                  restart_times=decision.restart_times)
            self._publish(bot_id, "crashed", f"{reason}; {decision.reason}")
            self._pending[bot_id] = time.monotonic() + decision.delay
        else:
            detail = f"{reason}; {decision.reason}"
            log.error("bot %s failed: %s", bot_id, detail)
            self.store.update_bot(bot_id, status="failed", last_error=detail)
            self._publish(bot_id, "failed", detail)
            publish_event(self.bus, FAILED_EVENT, {
                "bot_id": bot_id, "reason": reason, "detail": decision.reason,
                "restarts_in_window": len(decision.restart_times)})

    def _publish(self, bot_id: str, status: str, detail: str) -> None:
        try:
            self.bus.publish(status_channel(bot_id), StatusMessage(
                bot_id=bot_id, ts=self.clock(), status=status, detail=detail[:2000]))
        except Exception as e:  # the table holds the status; the message is a courtesy
            log.warning("bots manager: could not publish %s status of %s: %s", status, bot_id, e)
