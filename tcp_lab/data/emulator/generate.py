"""The random processes behind the emulated market (pure numpy, no caching, no server).

Two levels, both seeded by ``(seed, symbol key, purpose, index)`` so any day can be
generated on its own:

1. **Days** (:func:`day_levels`), generated in chunks of :data:`CHUNK_DAYS` days and
   chained: a volatility multiplier following a log-AR(1) (volatility clusters over
   days), the day's log return ``N(0, (sigma_day * vol)^2)``, and the day's trade count
   ``Poisson(rate * 1440 * vol^1.2 * weekday factor)``. Cumulative counts give each
   day's first aggregate trade id, so ids are consecutive across days.
2. **Trades of one day** (:func:`day_trades`): the count is spread over minutes by a
   multinomial with an hour-of-day activity profile times gamma noise (bursty
   minutes); times are uniform milliseconds within each minute; the latent mid price
   is a Brownian bridge from the day's open to its close sampled at the trade times,
   with variance proportional to elapsed time times minute activity (busy minutes move
   more). Takers buy more often on up-ticks; a buy prints one tick above the bid (the
   bid-ask bounce). Sizes are log-normal in quote notional.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tcp_lab.data.emulator.specs import SymbolSpec

__all__ = ["CHUNK_DAYS", "DAY_MS", "MINUTE_MS", "MINUTES_PER_DAY", "DayLevels",
           "DayTrades", "day_levels", "day_trades", "hour_profile"]

DAY_MS = 86_400_000
MINUTE_MS = 60_000
MINUTES_PER_DAY = 1440
CHUNK_DAYS = 256

_VOL_OF_VOL = 0.35
_VOL_PERSISTENCE = 0.85
_WEEKEND_ACTIVITY = 0.75
_SIZE_SIGMA = 1.5
_PURPOSE_DAYS, _PURPOSE_TRADES = 1, 2


def _rng(seed: int, key: int, purpose: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(key), purpose, int(index)])


def hour_profile() -> np.ndarray:
    """Relative activity of each minute of the UTC day (mean 1).

    Busiest around the US session (14-16 UTC), quietest around 03-06 UTC, with a
    burst in the first minute of every hour.
    """
    h = np.arange(MINUTES_PER_DAY) / 60.0
    prof = 1.0 + 0.35 * np.cos(2 * np.pi * (h - 15) / 24) + 0.10 * np.cos(2 * np.pi * (h - 14) / 8)
    prof[::60] *= 1.5
    return prof / prof.mean()


_PROFILE = hour_profile()


@dataclass(frozen=True, slots=True)
class DayLevels:
    """Day-level state, one entry per day since genesis (day ``d`` starts at genesis + d days)."""

    log_open: np.ndarray  # log price at the day's start
    log_ret: np.ndarray  # the day's log return
    vol: np.ndarray  # volatility multiplier (mean about 1)
    log_vol: np.ndarray  # AR(1) state behind ``vol`` (kept so extending is exact)
    count: np.ndarray  # aggregate trades in the day (int64)
    first_id: np.ndarray  # id of the day's first trade (int64)

    def __len__(self) -> int:
        return len(self.count)


def day_levels(spec: SymbolSpec, seed: int, genesis_ms: int, n_days: int,
               previous: DayLevels | None = None) -> DayLevels:
    """Day-level state for days ``0 .. n_days-1`` (extends ``previous`` if given).

    Only whole chunks are generated, so the result may hold more than ``n_days`` days.
    """
    have = 0 if previous is None else len(previous)
    if previous is not None and have >= n_days:
        return previous
    parts = {"log_open": [], "log_ret": [], "vol": [], "log_vol": [], "count": [],
             "first_id": []}
    if previous is None:
        log_p, lv, next_id = np.log(spec.start_price), 0.0, spec.first_id
    else:
        parts = {k: [getattr(previous, k)] for k in parts}
        log_p = float(previous.log_open[-1] + previous.log_ret[-1])
        lv = float(previous.log_vol[-1])
        next_id = int(previous.first_id[-1] + previous.count[-1])
    sigma_day = spec.annual_vol / np.sqrt(365.0)
    innov = np.sqrt(1 - _VOL_PERSISTENCE**2) * _VOL_OF_VOL
    for chunk in range(have // CHUNK_DAYS, -(-n_days // CHUNK_DAYS)):
        rng = _rng(seed, spec.key, _PURPOSE_DAYS, chunk)
        e = rng.standard_normal(CHUNK_DAYS)
        z = rng.standard_normal(CHUNK_DAYS)
        lvs = np.empty(CHUNK_DAYS)
        for i in range(CHUNK_DAYS):  # AR(1): sequential, but only 256 steps
            lv = _VOL_PERSISTENCE * lv + innov * e[i]
            lvs[i] = lv
        vol = np.exp(lvs - _VOL_OF_VOL**2 / 2)
        days = chunk * CHUNK_DAYS + np.arange(CHUNK_DAYS)
        weekday = ((genesis_ms // DAY_MS + days) + 3) % 7  # Monday = 0
        activity = np.where(weekday >= 5, _WEEKEND_ACTIVITY, 1.0)
        lam = spec.trades_per_minute * MINUTES_PER_DAY * vol**1.2 * activity
        count = rng.poisson(lam).astype(np.int64)
        ret = sigma_day * vol * z
        opens = log_p + np.concatenate(([0.0], np.cumsum(ret[:-1])))
        ids = next_id + np.concatenate(([0], np.cumsum(count[:-1])))
        log_p = float(opens[-1] + ret[-1])
        next_id = int(ids[-1] + count[-1])
        for k, v in zip(parts, (opens, ret, vol, lvs, count, ids), strict=True):
            parts[k].append(v)
    return DayLevels(**{k: np.concatenate(v) for k, v in parts.items()})


@dataclass(frozen=True, slots=True)
class DayTrades:
    """All aggregate trades of one day, in time (= id) order."""

    time: np.ndarray  # int64 epoch ms
    price_ticks: np.ndarray  # int64, price / tick
    lots: np.ndarray  # int64, quantity / step
    buyer_maker: np.ndarray  # bool: True when the taker sold
    first_id: int
    minute_counts: np.ndarray  # int64[1440]: trades per minute of the day

    def __len__(self) -> int:
        return len(self.time)

    @property
    def ids(self) -> np.ndarray:
        return self.first_id + np.arange(len(self.time), dtype=np.int64)


def day_trades(spec: SymbolSpec, seed: int, levels: DayLevels, day: int,
               day_start_ms: int) -> DayTrades:
    """Generate every aggregate trade of day ``day`` (starting at ``day_start_ms``)."""
    rng = _rng(seed, spec.key, _PURPOSE_TRADES, day)
    n = int(levels.count[day])
    minute_of_day = (day_start_ms // MINUTE_MS + np.arange(MINUTES_PER_DAY)) % MINUTES_PER_DAY
    act = _PROFILE[minute_of_day] * rng.gamma(4.0, 0.25, MINUTES_PER_DAY)
    counts = rng.multinomial(n, act / act.sum()).astype(np.int64)
    t_rel = np.repeat(np.arange(MINUTES_PER_DAY, dtype=np.int64) * MINUTE_MS, counts)
    t_rel += rng.integers(0, MINUTE_MS, n, dtype=np.int64)
    t_rel.sort()
    # Brownian bridge of the log mid from 0 to the day's return, sampled at trade times
    w = act / act.mean()
    sig2_ms = (spec.annual_vol / np.sqrt(365.0) * levels.vol[day]) ** 2 / DAY_MS
    var = sig2_ms * np.diff(t_rel, prepend=0) * w[t_rel // MINUTE_MS]
    last = int(t_rel[-1]) if n else 0
    var_end = sig2_ms * (DAY_MS - last) * w[-1]
    z = rng.standard_normal(n + 1)
    s = np.cumsum(np.sqrt(var) * z[:n])
    c = np.cumsum(var)
    s_end = (s[-1] if n else 0.0) + np.sqrt(var_end) * z[n]
    c_end = (c[-1] if n else 0.0) + var_end
    x = s + (c / c_end) * (levels.log_ret[day] - s_end) if c_end > 0 else s
    mid = np.exp(levels.log_open[day] + x)
    taker_buy = rng.random(n) < 0.5 + 0.3 * np.tanh(z[:n])
    ticks = np.maximum(np.floor(mid / spec.tick).astype(np.int64) + taker_buy, 1)
    notional = spec.median_notional * np.exp(_SIZE_SIGMA * rng.standard_normal(n))
    lots = np.maximum(np.rint(notional / mid / spec.step), 1).astype(np.int64)
    return DayTrades(time=day_start_ms + t_rel, price_ticks=ticks, lots=lots,
                     buyer_maker=~taker_buy, first_id=int(levels.first_id[day]),
                     minute_counts=counts)
