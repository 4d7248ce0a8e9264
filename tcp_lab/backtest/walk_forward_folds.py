"""Walk-forward folds: train and test windows as candle positions, by counts or durations.

:func:`fold_windows` is the one definition of a fold that
:func:`~tcp_lab.backtest.walk_forward_analysis.walk_forward` uses (and the tests
restate candle by candle).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.engine import candle_timeframe
from tcp_lab.backtest.metrics import grid_slots
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.timeframes import Timeframe

__all__ = ["fold_windows", "Window", "stitched_years", "stitched_slots"]

log = logging.getLogger(__name__)

_YEAR_US = 365 * 86400 * 1_000_000

#: A window length: a candle count, or a duration (``"90D"``, ``"12h"``, ``pd.Timedelta``).
Window = int | str | pd.Timedelta | dt.timedelta | np.timedelta64
_HINT = "a candle count (test=1440) or a duration (train='90D', test='12h', pd.Timedelta)"


def _window(value: Any, name: str, owner: str = "walk_forward") -> int | pd.Timedelta:
    """A window length: a positive candle count or a positive duration."""
    if isinstance(value, bool) or not isinstance(
            value, int | np.integer | str | pd.Timedelta | dt.timedelta | np.timedelta64):
        raise ConfigError(f"{owner}: {name}={value!r} is neither a candle count nor a "
                          "duration", hint=f"pass {_HINT}")
    if isinstance(value, int | np.integer):
        if value < 1:
            raise ConfigError(f"{owner}: {name}={value!r} must be at least 1 candle",
                              hint=f"pass {_HINT}")
        return int(value)
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{owner}: {name}={value!r} is not a duration",
                          hint=f"pass {_HINT}") from None
    if td is pd.NaT or td <= pd.Timedelta(0):
        raise ConfigError(f"{owner}: {name}={value!r} must be a positive duration",
                          hint=f"pass {_HINT}")
    return td


def fold_windows(
    index: pd.DatetimeIndex, *, train: Window, test: Window, step: Window | None = None,
    anchored: bool = False, timeframe: str | Timeframe | None = None,
    owner: str = "walk_forward",
) -> list[tuple[int, int, int, int]]:
    """The folds of a walk-forward over candles stamped ``index``, as positions.

    Parameters
    ----------
    index
        Candle close times (validated candles' index).
    train, test, step
        Candle counts (``int``), or durations (``"90D"``, ``"12h"``,
        ``pd.Timedelta``): all counts or all durations. ``step`` (default
        ``test``, at least ``test``) moves each fold on from the one before.
    anchored
        Every train window starts at the first candle (else it slides).
    timeframe
        Candle timeframe (durations count from the first candle's open);
        inferred from ``index`` when omitted.
    owner
        The function named in error messages.

    Returns
    -------
    list of tuple
        ``(train_start, train_stop, test_start, test_stop)`` per fold,
        half-open ranges of positions; fold ``i`` (from 0) trains on candles
        ``[i * step, i * step + train)`` (from 0 when anchored) and tests on
        the next ``test`` candles, while the test window fits. With durations
        the same rule holds on time: from the first candle's open ``t0``,
        fold ``i`` trains on candles closing in ``(t0 + i * step,
        t0 + i * step + train]`` and tests on those closing in the next
        ``test``; a fold whose train window holds fewer than 2 candles or
        whose test window holds none (missing data) is left out.

    Raises
    ------
    ConfigError
        A window that is not a positive count or duration, counts mixed with
        durations, ``step`` shorter than ``test``, a train window under 2
        candles, or windows longer than the data.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> fold_windows(make_candles(10).index, train=4, test=2)
    [(0, 4, 4, 6), (2, 6, 6, 8), (4, 8, 8, 10)]
    """
    tr, te = _window(train, "train", owner), _window(test, "test", owner)
    st = te if step is None else _window(step, "step", owner)
    kinds = {type(x) is int for x in (tr, te, st)}
    if len(kinds) > 1:
        raise ConfigError(f"{owner}: train={train!r}, test={test!r}, step={step!r} mix "
                          "candle counts and durations", hint="give all as counts or all as "
                          "durations")
    if st < te:
        raise ConfigError(f"{owner}: step={step!r} is shorter than test={test!r}: test "
                          "windows would overlap and could not be traded as one account",
                          hint="use step >= test (the default is step = test)")
    n = len(index)
    if isinstance(tr, int):
        if tr < 2:
            raise ConfigError(f"{owner}: train={train!r}: a train window needs at least 2 "
                              "candles", hint="e.g. train=1000")
        if tr + te > n:
            raise ConfigError(f"{owner}: train={train!r} + test={test!r} candles is more than "
                              f"the {n} candles given", hint="shorten the windows or pass more "
                              "candles")
        return [(0 if anchored else s, s + tr, s + tr, s + tr + te)
                for s in range(0, n - tr - te + 1, st)]
    tf = candle_timeframe(index, timeframe)
    ts = index.as_unit("us").asi8
    t0 = int(ts[0]) - tf.us
    tr_us, te_us, st_us = (int(x / pd.Timedelta(microseconds=1)) for x in (tr, te, st))
    if t0 + tr_us + te_us > ts[-1]:
        span = pd.Timedelta(int(ts[-1]) - t0, unit="us")
        raise ConfigError(f"{owner}: train={train!r} + test={test!r} is longer than the "
                          f"candles ({span} from {index[0]} to {index[-1]}, {n} candles)",
                          hint="shorten the windows or pass more candles")
    folds, skipped = [], 0
    for s in range(t0, int(ts[-1]) - tr_us - te_us + 1, st_us):
        a, b, c = np.searchsorted(ts, [t0 if anchored else s, s + tr_us, s + tr_us + te_us],
                                  side="right")
        if b - a >= 2 and c > b:
            folds.append((int(a), int(b), int(b), int(c)))
        else:
            skipped += 1
    if skipped:
        log.warning("%s: %d fold(s) left out: fewer than 2 train or no test candles "
                    "(missing data)", owner, skipped)
    if not folds:
        raise DataError(f"{owner}: no fold with train={train!r} and test={test!r} has at "
                        "least 2 train candles and 1 test candle", hint="use longer windows")
    return folds


def stitched_years(ts: np.ndarray, windows: Sequence[tuple[int, int, int, int]],
                   tf: Timeframe) -> float:
    """Years the stitched test windows span: each window, plus the step between adjacent
    ones (one candle across a gap).

    ``ts``: the candles' close times in microseconds; ``windows``: :func:`fold_windows`.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> from tcp_lab.timeframes import parse_timeframe
    >>> ts = make_candles(10).index.as_unit("us").asi8
    >>> round(stitched_years(ts, [(0, 4, 4, 6), (2, 6, 6, 8)], parse_timeframe("1m")) * 525600)
    3
    """
    us = sum(int(ts[d - 1] - ts[c]) for _, _, c, d in windows)
    for (_, _, _, d), (_, _, c, _) in zip(windows[:-1], windows[1:], strict=True):
        us += int(ts[c] - ts[d - 1]) if c == d else tf.us
    return us / _YEAR_US


def stitched_slots(ts: np.ndarray, windows: Sequence[tuple[int, int, int, int]],
                   tf: Timeframe) -> np.ndarray:
    """Grid slots of the stitched test windows' candles (missing candles count as slots;
    as :func:`stitched_years`, one slot across a gap between windows).

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> from tcp_lab.timeframes import parse_timeframe
    >>> ts = make_candles(10).index.as_unit("us").asi8
    >>> stitched_slots(ts, [(0, 2, 2, 4), (4, 6, 6, 8)], parse_timeframe("1m")).tolist()
    [0, 1, 2, 3]
    """
    parts, offset, prev = [], 0, -1
    for _, _, c, d in windows:
        if prev >= 0:
            offset += int(ts[c] - ts[prev]) // tf.us if c == prev + 1 else 1
        part = grid_slots(ts[c:d], tf.us) + offset
        parts.append(part)
        offset, prev = int(part[-1]), d - 1
    return np.concatenate(parts)
