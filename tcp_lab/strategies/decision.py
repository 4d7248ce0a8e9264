"""The decision on the last candle of a window: what a live bot acts on.

:func:`last_decision` runs a strategy on a trailing window and reads its last
row as a :class:`Decision`. A strategy with an array path
(:meth:`~tcp_lab.strategies.BaseStrategy.compute_arrays`) is run on the
window's arrays, with no DataFrame built; any other one through ``compute``
on a frame and :func:`~tcp_lab.strategies.check_output`. Both read the last
row by the same rules (NaN signals are False, ``buy`` needs an entry and no
exit), so :meth:`BaseStrategy.process_data`, the bot and the backtest agree.

Examples
--------
>>> from tcp_lab.strategies import get_strategy
>>> from tcp_lab.testing import make_candles
>>> d = last_decision(get_strategy("sma_cross", {"fast": 2, "slow": 5}), make_candles(20))
>>> d.action in ("buy", "sell", "hold"), sorted(d.indicators)
(True, ['sma_fast', 'sma_slow'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tcp_lab.errors import StrategyError
from tcp_lab.strategies.base import (
    ArrayOutput,
    BaseStrategy,
    Signal,
    StrategyOutput,
    candle_arrays,
    check_output,
)

__all__ = ["Decision", "last_decision", "frame_of"]

_SIGNALS = ("entries", "exits", "short_entries", "short_exits")


@dataclass(frozen=True, slots=True)
class Decision:
    """A strategy's output on the last row of a window."""

    entry: bool
    exit: bool
    short_entry: bool | None
    short_exit: bool | None
    confidence: float | None
    indicators: dict[str, float]
    stop_price: float = math.nan
    target_price: float = math.nan
    #: The strategy sets stop or target levels (a series, NaN where the options rule),
    #: as the backtest reads it per symbol.
    has_levels: bool = False

    @property
    def action(self) -> str:
        """``buy`` (entry or short exit, no exit), ``sell`` (the reverse) or ``hold``."""
        buy = self.entry or bool(self.short_exit)
        sell = self.exit or bool(self.short_entry)
        return "buy" if buy and not sell else "sell" if sell and not buy else "hold"

    def signal(self, ts: pd.Timestamp, price: float) -> Signal:
        """The :class:`Signal` of this decision for the candle closing at ``ts``."""
        action = self.action
        if self.confidence is not None:
            confidence = self.confidence
        else:
            confidence = 0.0 if action == "hold" else 1.0
        return Signal(ts=ts, action=action, confidence=confidence, price=price,
                      indicators=self.indicators)

    @classmethod
    def of_output(cls, out: StrategyOutput) -> Decision:
        """The last row of a checked :class:`StrategyOutput` (see ``check_output``)."""

        def last(s: pd.Series | None) -> bool | None:
            return None if s is None else bool(s.iat[-1])

        conf = out.confidence
        confidence = None if conf is None or pd.isna(conf.iat[-1]) else float(conf.iat[-1])

        def level(s: pd.Series | None) -> float:
            return math.nan if s is None else float(s.iat[-1])

        return cls(entry=bool(out.entries.iat[-1]), exit=bool(out.exits.iat[-1]),
                   short_entry=last(out.short_entries), short_exit=last(out.short_exits),
                   confidence=confidence,
                   indicators={k: float(v.iat[-1]) for k, v in out.indicators.items()},
                   stop_price=level(out.stop_price), target_price=level(out.target_price),
                   has_levels=out.stop_price is not None or out.target_price is not None)

    @classmethod
    def of_arrays(cls, out: ArrayOutput, n: int, owner: str) -> Decision:
        """The last row of an :class:`ArrayOutput` over ``n`` rows (checked like ``check_output``).

        Raises
        ------
        StrategyError
            Not an ``ArrayOutput``, an array of the wrong length, or a signal
            array that is not boolean or numeric.
        """
        if not isinstance(out, ArrayOutput):
            raise StrategyError(f"strategy {owner!r}: compute_arrays() returned "
                                f"{type(out).__name__}, expected ArrayOutput")
        flags = {key: _last_flag(getattr(out, key), key, n, owner) for key in _SIGNALS}
        indicators = {}
        for key, values in out.indicators.items():
            indicators[key] = float(_last(values, f"indicator {key!r}", n, owner))
        confidence = None
        if out.confidence is not None:
            value = float(_last(out.confidence, "confidence", n, owner))
            confidence = None if math.isnan(value) else value
        levels = {key: math.nan if getattr(out, key) is None else
                  float(_last(getattr(out, key), key, n, owner))
                  for key in ("stop_price", "target_price")}
        return cls(entry=bool(flags["entries"]), exit=bool(flags["exits"]),
                   short_entry=flags["short_entries"], short_exit=flags["short_exits"],
                   confidence=confidence, indicators=indicators, **levels,
                   has_levels=out.stop_price is not None or out.target_price is not None)


def _last(values: np.ndarray, what: str, n: int, owner: str) -> object:
    shape = np.shape(values)
    if shape != (n,):
        raise StrategyError(f"strategy {owner!r}: {what} has shape {shape}, expected ({n},) "
                            "(one value per candle)")
    return values[-1]


def _last_flag(values: np.ndarray | None, key: str, n: int, owner: str) -> bool | None:
    if values is None:
        return None
    value = _last(values, key, n, owner)
    kind = np.asarray(values).dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iuf":
        return bool(value == value and value != 0)  # NaN -> False
    if kind == "O":
        return bool(pd.array([value], dtype="boolean").fillna(False)[0])
    dtype = np.asarray(values).dtype
    raise StrategyError(f"strategy {owner!r}: {key} must be boolean, got {dtype}")


def frame_of(arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """A candle frame (index ``ts``, UTC) from :func:`candle_arrays`-style columns."""
    index = pd.DatetimeIndex(np.asarray(arrays["ts"], dtype="datetime64[us]"),
                             name="ts").tz_localize("UTC")
    return pd.DataFrame({k: v for k, v in arrays.items() if k != "ts"}, index=index, copy=False)


def last_decision(strategy: BaseStrategy,
                  window: pd.DataFrame | Mapping[str, np.ndarray], *,
                  label: str | None = None) -> Decision:
    """Run ``strategy`` on ``window`` (closed candles, oldest first) and decide on its last row.

    ``window`` is a candle frame or its arrays (:func:`candle_arrays`); the
    strategy's array path is used when it has one. ``label`` names the
    strategy in errors (default ``repr(strategy)``; a bot passes its own,
    built once).

    Raises
    ------
    StrategyError
        The strategy's output is malformed (wrong type, length or dtype).
    """
    label = repr(strategy) if label is None else label
    if strategy.has_array_path:
        arrays = candle_arrays(window) if isinstance(window, pd.DataFrame) else window
        n = len(arrays["ts"])
        return Decision.of_arrays(strategy.compute_arrays(arrays), n, label)
    frame = window if isinstance(window, pd.DataFrame) else frame_of(window)
    return Decision.of_output(check_output(strategy.compute(frame), frame, label))
