"""The supervision policy: rolling restart budget, backoff, hang and stuck detection."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.bots.policy import Liveness, RestartPolicy
from tcp_lab.errors import ConfigError

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


def test_three_restarts_per_rolling_hour_then_failed():
    policy = RestartPolicy(backoff=1.0, backoff_max=60.0)
    times: list[pd.Timestamp] = []
    delays = []
    for m in (0, 10, 20):
        d = policy.on_crash(times, minutes(m))
        assert d.restart
        times, delays = d.restart_times, [*delays, d.delay]
    assert delays == [1.0, 2.0, 4.0]
    fourth = policy.on_crash(times, minutes(30))
    assert not fourth.restart and "4 times" in fourth.reason
    # an hour after the first crash, that one no longer counts
    later = policy.on_crash(times, minutes(61))
    assert later.restart and later.delay == 4.0 and len(later.restart_times) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 600), min_size=1, max_size=12))
def test_never_more_than_max_restarts_in_any_window(gaps):
    policy = RestartPolicy(max_restarts=3, window=3600.0)
    times: list[pd.Timestamp] = []
    now, restarts = T0, []
    for gap in gaps:
        now = now + pd.Timedelta(seconds=gap)
        d = policy.on_crash(times, now)
        if d.restart:
            times = d.restart_times
            restarts.append(now)
        else:
            recent = [t for t in restarts if t > now - pd.Timedelta(hours=1)]
            assert len(recent) >= 3
    for t in restarts:
        in_window = [u for u in restarts if t - pd.Timedelta(hours=1) < u <= t]
        assert len(in_window) <= 3


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_hang_is_a_heartbeat_that_stops_changing_after_the_first_one():
    clock = FakeMonotonic()
    live = Liveness(RestartPolicy(heartbeat_interval=1.0, hang_timeout=5.0,
                                  start_timeout=60.0), clock)
    assert live.hung(None) is None  # the row as it was before the start
    clock.t = 30.0
    assert live.hung(None) is None  # starting (e.g. a host restoring many bots): no hang yet
    assert live.hung(minutes(0)) is None  # its first heartbeat: the hang timer starts
    clock.t = 34.0
    assert live.hung(minutes(0)) is None
    clock.t = 36.0
    assert "no heartbeat for 6.0 s" in live.hung(minutes(0))
    assert live.hung(minutes(1)) is None  # it beat again


def test_a_bot_that_never_beats_did_not_start():
    clock = FakeMonotonic()
    live = Liveness(RestartPolicy(heartbeat_interval=1.0, hang_timeout=5.0,
                                  start_timeout=60.0), clock)
    assert live.hung(minutes(0)) is None  # an old heartbeat from a previous run
    clock.t = 59.0
    assert live.hung(minutes(0)) is None
    clock.t = 61.0
    assert "did not start: no heartbeat for 61.0 s" in live.hung(minutes(0))


def test_stuck_is_lag_without_progress():
    clock = FakeMonotonic()
    live = Liveness(RestartPolicy(max_lag=3, stuck_timeout=10.0), clock)
    tf = pd.Timedelta(minutes=1)
    assert live.stuck(minutes(0), minutes(10), tf) is None
    clock.t = 20.0
    assert "10 candles behind" in live.stuck(minutes(0), minutes(10), tf)
    assert live.stuck(minutes(1), minutes(10), tf) is None  # progress: catching up
    clock.t = 40.0
    assert live.stuck(minutes(1), minutes(3), tf) is None  # behind by 2 only


def test_invalid_policies():
    with pytest.raises(ConfigError):
        RestartPolicy(start_timeout=0)
    with pytest.raises(ConfigError):
        RestartPolicy(heartbeat_interval=5.0, hang_timeout=2.0)
    with pytest.raises(ConfigError):
        RestartPolicy(max_lag=0)
