"""The emulator's clock: wall time, optionally shifted and sped up for rehearsals."""

from __future__ import annotations

import time
from collections.abc import Callable

from tcp_lab.errors import ConfigError
from tcp_lab.timeframes import to_utc_timestamp

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """Emulated "now" in epoch milliseconds.

    ``now = start + (wall - wall_at_creation) * speed``. With the defaults it is the
    wall clock; ``start`` moves it (e.g. into the past, to replay a known day) and
    ``speed`` makes it run faster (``60``: one emulated minute per second).

    Parameters
    ----------
    start
        Emulated time at creation (tz-aware timestamp, ISO string with offset, or epoch
        ms); default: the wall clock.
    speed
        How many emulated seconds pass per wall second (> 0).
    wall
        Source of wall time in seconds (for tests).

    Examples
    --------
    >>> clock = EmulatorClock(start="2024-03-01T00:00Z", speed=60)
    >>> clock.now_ms() >= 1709251200000
    True
    """

    def __init__(self, start: object = None, speed: float = 1.0,
                 wall: Callable[[], float] = time.time) -> None:
        if not (isinstance(speed, int | float) and speed > 0):
            raise ConfigError(f"clock speed must be a number > 0, got {speed!r}",
                              hint="1 is real time, 60 runs one minute per second")
        self._wall = wall
        self._wall0 = wall()
        if start is None:
            self._start = int(self._wall0 * 1000)
        elif isinstance(start, int) and not isinstance(start, bool):
            self._start = start
        else:
            self._start = int(to_utc_timestamp(start, name="start").value // 1_000_000)
        self.speed = float(speed)

    def now_ms(self) -> int:
        """The emulated time now, in epoch milliseconds."""
        return self._start + int((self._wall() - self._wall0) * 1000 * self.speed)

    def __repr__(self) -> str:
        return f"EmulatorClock(now_ms={self.now_ms()}, speed={self.speed:g})"
