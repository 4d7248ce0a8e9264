"""The supervision policy: when a bot is dead, hung or stuck, and whether to restart it.

Pure rules shared by both runners (threads and processes): the manager feeds
them what it observes and acts on the decisions. Time comes from an
injectable ``clock`` so the rolling hour of the restart budget can be tested
without waiting an hour.

>>> policy = RestartPolicy(max_restarts=3, window=3600.0, backoff=1.0)
>>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
>>> d = policy.on_crash([], t0)
>>> d.restart, d.delay, len(d.restart_times)
(True, 1.0, 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from tcp_lab.errors import ConfigError

__all__ = ["RestartPolicy", "CrashDecision", "Liveness", "Clock", "utc_now"]

#: Returns the current time as a tz-aware UTC Timestamp.
Clock = Callable[[], pd.Timestamp]


def utc_now() -> pd.Timestamp:
    """The wall clock, tz-aware UTC at microseconds (the default :data:`Clock`)."""
    return pd.Timestamp.now("UTC").as_unit("us")


@dataclass(frozen=True)
class CrashDecision:
    """What to do after a crash: restart after ``delay`` seconds, or mark the bot failed."""

    restart: bool
    delay: float
    restart_times: list[pd.Timestamp]
    reason: str


@dataclass(frozen=True)
class RestartPolicy:
    """Restart budget, backoff and liveness thresholds.

    Parameters
    ----------
    max_restarts
        Restarts allowed within any ``window`` seconds; one more crash marks
        the bot ``failed`` (default 3 per rolling hour).
    window
        Length of the rolling window, seconds.
    backoff, backoff_max
        Delay before the n-th restart in the window: ``backoff * 2**(n-1)``,
        at most ``backoff_max`` seconds.
    heartbeat_interval
        How often a bot writes its heartbeat, seconds.
    hang_timeout
        A bot whose heartbeat has not changed for this long is hung (counted
        from its first heartbeat after it was started).
    start_timeout
        A started bot that has written no heartbeat for this long did not
        start (a host restoring many bots takes them one after another).
    max_lag
        A bot more than this many candles behind the newest stored candle,
        and not catching up for ``stuck_timeout`` seconds, is stuck.
    stuck_timeout
        Seconds without progress before a lagging bot counts as stuck.
    """

    max_restarts: int = 3
    window: float = 3600.0
    backoff: float = 1.0
    backoff_max: float = 60.0
    heartbeat_interval: float = 5.0
    hang_timeout: float = 30.0
    start_timeout: float = 300.0
    max_lag: int = 3
    stuck_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.window <= 0 or self.backoff < 0:
            raise ConfigError(f"invalid restart policy {self!r}",
                              hint="max_restarts >= 0, window > 0, backoff >= 0")
        if self.heartbeat_interval <= 0 or self.hang_timeout <= self.heartbeat_interval:
            raise ConfigError(
                f"hang_timeout={self.hang_timeout} must exceed "
                f"heartbeat_interval={self.heartbeat_interval} (both seconds, > 0)")
        if self.start_timeout <= 0:
            raise ConfigError(f"start_timeout={self.start_timeout} must be > 0 (seconds)")
        if self.max_lag < 1 or self.stuck_timeout <= 0:
            raise ConfigError(f"max_lag={self.max_lag} must be >= 1 and stuck_timeout > 0")

    def on_crash(self, restart_times: Sequence[pd.Timestamp], now: pd.Timestamp) -> CrashDecision:
        """Decide after a crash at ``now`` given the times of earlier restarts.

        Restarts older than ``window`` no longer count. With fewer than
        ``max_restarts`` left in the window the bot is restarted after an
        exponential backoff and ``now`` joins the restart times; otherwise it
        is marked failed.
        """
        horizon = now - pd.Timedelta(seconds=self.window)
        recent = sorted(t for t in restart_times if t > horizon)
        if len(recent) >= self.max_restarts:
            return CrashDecision(
                restart=False, delay=0.0, restart_times=recent,
                reason=f"crashed {len(recent) + 1} times within {self.window:g} s "
                       f"(at most {self.max_restarts} restarts allowed)")
        delay = min(self.backoff * 2 ** len(recent), self.backoff_max)
        return CrashDecision(restart=True, delay=delay, restart_times=[*recent, now],
                             reason=f"restart {len(recent) + 1} of {self.max_restarts} "
                                    f"in {self.window:g} s, after {delay:g} s")


_UNSEEN = object()


@dataclass
class Liveness:
    """Tracks one bot's heartbeat and progress with the manager's monotonic clock.

    Comparing *changes* rather than timestamps makes the checks immune to
    clock differences between the bot's machine and the manager's.
    """

    policy: RestartPolicy
    monotonic: Callable[[], float] = time.monotonic
    _beat: object = _UNSEEN
    _beat_seen: float = field(default=0.0)
    _started: bool = False
    _progress: object = None
    _progress_seen: float = field(default=0.0)

    def __post_init__(self) -> None:
        now = self.monotonic()
        self._beat_seen = self._progress_seen = now

    def hung(self, heartbeat: object) -> str | None:
        """A reason when the heartbeat has not changed for ``hang_timeout`` seconds.

        The first value seen is the heartbeat from before the start; the hang
        timer runs from the first change (the bot's first heartbeat). Until
        then only ``start_timeout`` applies.
        """
        now = self.monotonic()
        if heartbeat != self._beat:
            self._started = self._started or self._beat is not _UNSEEN
            self._beat, self._beat_seen = heartbeat, now
            return None
        quiet = now - self._beat_seen
        if not self._started:
            if quiet > self.policy.start_timeout:
                return (f"did not start: no heartbeat for {quiet:.1f} s "
                        f"(limit {self.policy.start_timeout:g} s)")
            return None
        if quiet > self.policy.hang_timeout:
            return f"hung: no heartbeat for {quiet:.1f} s (limit {self.policy.hang_timeout:g} s)"
        return None

    def stuck(self, last_candle: pd.Timestamp | None, newest: pd.Timestamp | None,
              timeframe: pd.Timedelta) -> str | None:
        """A reason when the bot lags ``newest`` by more than ``max_lag`` candles
        without progress for ``stuck_timeout`` seconds."""
        now = self.monotonic()
        if last_candle != self._progress:
            self._progress, self._progress_seen = last_candle, now
            return None
        if newest is None or last_candle is None:
            return None
        lag = int((newest - last_candle) // timeframe)
        quiet = now - self._progress_seen
        if lag > self.policy.max_lag and quiet > self.policy.stuck_timeout:
            return (f"stuck: {lag} candles behind the newest stored candle ({newest}) "
                    f"with no progress for {quiet:.1f} s")
        return None
