"""The look-ahead guard and the warm-up check.

Two properties every strategy must have, checked at sampled candles ``t``:

* **no look-ahead**: ``compute(candles[:t+1])`` equals ``compute(candles)[:t+1]``
  (removing the future changes nothing in the past);
* **enough warm-up**: the last row of ``compute(candles[t-w+1:t+1])`` with
  ``w = strategy.warmup + margin`` equals row ``t`` of the full run (what a
  live bot with a trailing window sees is what the backtest saw).

Signals must match exactly; indicators within a tolerance (a recursive
average started later agrees only to about ``ewm_settle``'s tolerance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tcp_lab.errors import DataError, StrategyError
from tcp_lab.strategies.base import BaseStrategy, StrategyOutput, check_output
from tcp_lab.strategies.informative import (
    informative_specs,
    strip_informative,
    with_informative,
)

__all__ = ["LookaheadReport", "check_lookahead"]

#: A prefix run repeats the same arithmetic, so indicators must agree to rounding only.
_PREFIX_RTOL = 1e-9


@dataclass(frozen=True)
class LookaheadReport:
    """Outcome of :func:`check_lookahead`; truthy when both checks pass.

    Attributes
    ----------
    strategy
        ``repr`` of the strategy checked.
    lookahead_bar, lookahead_column
        First candle (close time) whose signal or indicator changed when later
        candles were removed, and which column; ``None`` when none did.
    warmup_bar, warmup_column
        First candle whose value from a trailing window of ``warmup`` candles
        differs from the full run; ``None`` when none did (or not checked).
    points
        Positions ``t`` that were checked.
    warmup
        The trailing window length used (``strategy.warmup + margin``).
    """

    strategy: str
    lookahead_bar: pd.Timestamp | None
    lookahead_column: str | None
    warmup_bar: pd.Timestamp | None
    warmup_column: str | None
    points: tuple[int, ...]
    warmup: int

    @property
    def lookahead_ok(self) -> bool:
        return self.lookahead_bar is None

    @property
    def warmup_ok(self) -> bool:
        return self.warmup_bar is None

    @property
    def ok(self) -> bool:
        return self.lookahead_ok and self.warmup_ok

    def __bool__(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        """One line: ``OK …`` or the first bad bar of each failed check."""
        if self.ok:
            return (
                f"OK {self.strategy}: no look-ahead and warm-up {self.warmup} candles "
                f"suffice at {len(self.points)} checked candles"
            )
        parts = []
        if not self.lookahead_ok:
            parts.append(
                f"look-ahead at {self.lookahead_bar}: {self.lookahead_column!r} changes when the "
                "candles after it are removed (it uses future data, e.g. shift(-1))"
            )
        if not self.warmup_ok:
            parts.append(
                f"warm-up too short at {self.warmup_bar}: {self.warmup_column!r} from a trailing "
                f"window of {self.warmup} candles differs from the full run (raise warmup)"
            )
        return f"FAILED {self.strategy}: " + "; ".join(parts)

    def raise_for_failure(self) -> None:
        """Raise :class:`StrategyError` with :attr:`message` unless the checks passed."""
        if not self.ok:
            raise StrategyError(self.message, hint="row t may use candles <= t only")

    def __str__(self) -> str:
        return self.message


def _columns(out: StrategyOutput) -> dict[str, tuple[np.ndarray, bool]]:
    """name -> (values, exact?) for every series a check compares."""
    cols: dict[str, tuple[np.ndarray, bool]] = {
        k: (np.asarray(v, dtype=bool), True) for k, v in out.signal_columns().items()
    }
    for k, v in out.indicators.items():
        cols[f"indicator {k}"] = (np.asarray(v, dtype=np.float64), False)
    if out.confidence is not None:
        cols["confidence"] = (np.asarray(out.confidence, dtype=np.float64), False)
    return cols


def _first_mismatch(
    part: dict[str, tuple[np.ndarray, bool]],
    full: dict[str, tuple[np.ndarray, bool]],
    rows: slice,
    rtol: float,
    atol: float,
) -> tuple[int, str] | None:
    """First row (relative to ``part``) and column where ``part`` differs from ``full[rows]``."""
    best: tuple[int, str] | None = None
    for name, (want_all, exact) in full.items():
        got = part.get(name, (None, exact))[0]
        want = want_all[rows]
        if got is None or got.shape != want.shape:
            return (0, name)
        if exact:
            bad = got != want
        else:
            bad = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        hits = np.flatnonzero(bad)
        if hits.size and (best is None or hits[0] < best[0]):
            best = (int(hits[0]), name)
    return best


def _change_bars(full: dict[str, tuple[np.ndarray, bool]]) -> np.ndarray:
    """Every candle next to a change of a signal: ``t-1``, ``t`` and ``t+1`` of each change.

    A look-ahead shows first where a decision flips (a signal that peeks at the next
    candle flips one candle early), so those candles are always checked.
    """
    hits = [np.array([], dtype=int)]
    for values, exact in full.values():
        if exact and values.size > 1:
            changes = np.flatnonzero(values[1:] != values[:-1]) + 1
            hits += [changes - 1, changes, changes + 1]
    return np.unique(np.concatenate(hits))


def _sample(lo: int, hi: int, points: int, rng: np.random.Generator,
            around: np.ndarray | None = None, every: bool = False) -> np.ndarray:
    """Positions in ``[lo, hi]`` to check: every one (``every``), else ``points`` evenly
    spaced, a quarter as many random ones, and all of ``around``."""
    if hi < lo:
        return np.array([], dtype=int)
    if every or hi - lo + 1 <= points:
        return np.arange(lo, hi + 1)
    even = np.linspace(lo, hi, num=max(points, 2)).round().astype(int)
    extra = rng.integers(lo, hi + 1, size=points // 4)
    near = np.array([], dtype=int) if around is None else around[(around >= lo) & (around <= hi)]
    return np.unique(np.concatenate([even, extra, near]))


def check_lookahead(
    strategy: BaseStrategy,
    candles: pd.DataFrame,
    *,
    points: int = 500,
    full: bool = False,
    margin: int = 0,
    warmup: bool = True,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    seed: int = 0,
    informative: Mapping[str, pd.DataFrame] | None = None,
    symbol: str | None = None,
) -> LookaheadReport:
    """Check that ``strategy`` never uses future candles and that its warm-up suffices.

    Parameters
    ----------
    strategy
        The strategy to check.
    candles
        At least ``strategy.warmup + margin + 2`` candles (e.g.
        ``tcp_lab.testing.make_candles(2000)``).
    points
        How many candles ``t`` to check evenly spaced (plus a quarter as many at random,
        and every candle next to a change of a signal); all of them when the series is
        shorter.
    full
        Check every candle (slow on long series: one ``compute`` per candle).
    margin
        Extra candles on top of ``strategy.warmup`` for the trailing window.
    warmup
        Also run the warm-up check.
    rtol, atol
        Tolerance for indicators and confidence (signals must match exactly).
    seed
        Seed of the random sample points.
    informative, symbol
        For a strategy that declares informative series: the other symbols' candles
        and its own symbol (as :func:`~tcp_lab.backtest.run_backtest` takes them).
        Each truncated run and each trailing window gets its informative series built
        from what it holds, as a bot does, so a misaligned series is caught too.

    Returns
    -------
    LookaheadReport
        Truthy when both checks pass; otherwise names the first bad bar.

    Raises
    ------
    DataError
        Too few candles for the checks.
    StrategyError
        ``compute`` returned something malformed.

    Examples
    --------
    >>> from tcp_lab.strategies import get_strategy
    >>> from tcp_lab.testing import make_candles
    >>> bool(check_lookahead(get_strategy("sma_cross"), make_candles(500)))
    True
    """
    label = repr(strategy)
    window = int(strategy.warmup) + int(margin)
    n = len(candles)
    if n < window + 2 or n < 3:
        raise DataError(
            f"check_lookahead({label}): {n} candles, need at least {window + 2}",
            hint="pass more candles, e.g. tcp_lab.testing.make_candles(2000)",
        )
    rng = np.random.default_rng(seed)
    candles = strip_informative(candles)
    tf = None
    if informative_specs(strategy):
        from tcp_lab.backtest.engine import candle_timeframe

        tf = candle_timeframe(candles.index)

    def run(frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, bool]]:
        view = with_informative(strategy, frame, timeframe=tf, others=informative,
                                symbol=symbol)
        return _columns(check_output(strategy.compute(view), view, label))

    whole = run(candles)
    changes = _change_bars(whole)

    look_pos: int | None = None
    look_col: str | None = None
    sampled = _sample(max(window - 1, 1), n - 2, points, rng, changes, full)
    for t in sampled:
        if look_pos is not None and t > look_pos:
            break
        part = run(candles.iloc[: t + 1])
        hit = _first_mismatch(part, whole, slice(0, t + 1), _PREFIX_RTOL, 0.0)
        if hit is not None and (look_pos is None or hit[0] < look_pos):
            look_pos, look_col = hit

    warm_pos: int | None = None
    warm_col: str | None = None
    if warmup:
        for t in _sample(window - 1, n - 1, points, rng, changes, full):
            out = run(candles.iloc[t - window + 1 : t + 1])
            last = {k: (v[-1:], exact) for k, (v, exact) in out.items()}
            hit = _first_mismatch(last, whole, slice(t, t + 1), rtol, atol)
            if hit is not None:
                warm_pos, warm_col = int(t), hit[1]
                break

    idx = candles.index
    return LookaheadReport(
        strategy=label,
        lookahead_bar=None if look_pos is None else idx[look_pos],
        lookahead_column=look_col,
        warmup_bar=None if warm_pos is None else idx[warm_pos],
        warmup_column=warm_col,
        points=tuple(int(t) for t in sampled),
        warmup=window,
    )
