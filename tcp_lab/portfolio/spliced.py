"""A strategy made of other strategies, each acting on its own window of close times.

A walk-forward over a portfolio trades fold ``k``'s choice on test window ``k``
and nothing anywhere else; :class:`SplicedStrategy` says exactly that to
:func:`~tcp_lab.portfolio.run_portfolio`, so one run of the portfolio driver is
one account over every window (cash and open positions carry from window to
window, every fill is the engine's). On each window a piece's strategy is
computed on the candles up to the window's end (warm indicators, nothing later
seen) and only its signals inside the window are kept, already routed for the
run's ``direction`` (:func:`~tcp_lab.execution.options.route_signals`: all four
series are set, so a runner routes them as they are and a flat stretch closes
without reversing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tcp_lab.execution.options import route_signals
from tcp_lab.strategies import BaseStrategy, StrategyOutput, check_output

__all__ = ["Piece", "SplicedStrategy"]

_SIGNALS = ("entries", "exits", "short_entries", "short_exits")


@dataclass(frozen=True)
class Piece:
    """One window of a :class:`SplicedStrategy`.

    Attributes
    ----------
    strategy
        What decides in the window; ``None``: flat (an exit on the window's
        first candle, nothing else).
    start, end
        Close times of the window's first and last candle (inclusive).
    close_out
        Leave the window flat (a gap follows): exit on its last candle and enter
        nothing there; with orders at the next open, the exit is decided on the
        candle before the last and the last decides nothing.
    """

    strategy: BaseStrategy | None
    start: pd.Timestamp
    end: pd.Timestamp
    close_out: bool = False


class SplicedStrategy(BaseStrategy):
    """Signals of each piece's strategy on its window of close times, none elsewhere.

    Parameters
    ----------
    pieces
        Windows in time order (they do not overlap).
    at_open
        Orders fill at the next open (``price="next_open"``): see
        :attr:`Piece.close_out`.
    direction
        The run's ``direction`` (``"long"``, ``"longshort"``): each piece's
        signals are routed for it.
    informative
        The informative series the pieces' strategies read (the runner adds them).

    Examples
    --------
    >>> from tcp_lab.strategies import get_strategy
    >>> from tcp_lab.testing import make_candles
    >>> c = make_candles(300)
    >>> s = SplicedStrategy([Piece(get_strategy("sma_cross", {"fast": 5, "slow": 20}),
    ...                            c.index[100], c.index[-1])], at_open=False,
    ...                      direction="long")
    >>> bool(s.compute(c).entries.iloc[:100].any())
    False
    """

    name = "spliced"

    def __init__(self, pieces: Sequence[Piece], *, at_open: bool, direction: str,
                 informative: tuple[tuple[str, str | None], ...] = ()) -> None:
        super().__init__()
        self.pieces = tuple(pieces)
        self.at_open = bool(at_open)
        self.direction = direction
        self.informative = tuple(informative)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"SplicedStrategy({len(self.pieces)} window(s))"

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        """Each piece's signals, stop and target levels and confidence on its window."""
        n, ts = len(candles), candles.index
        flags = {k: np.zeros(n, dtype=bool) for k in _SIGNALS}
        extra = {k: np.full(n, np.nan) for k in ("confidence", "stop_price", "target_price")}
        used = set()
        for piece in self.pieces:
            rows = np.flatnonzero((ts >= piece.start) & (ts <= piece.end))
            if not len(rows):
                continue
            a, b = int(rows[0]), int(rows[-1]) + 1
            if piece.strategy is None:
                flags["exits"][a] = flags["short_exits"][a] = True
            else:
                upto = candles.iloc[:b]
                out = check_output(piece.strategy.compute(upto), upto, repr(piece.strategy))
                routed = route_signals(self.direction, *(
                    None if s is None else s.to_numpy(dtype=bool) for s in (
                        out.entries, out.exits, out.short_entries, out.short_exits)))
                for key, f in zip(_SIGNALS, routed, strict=True):
                    flags[key][a:b] = f[a:b]
                for key, arr in extra.items():
                    series = getattr(out, key)
                    if series is not None:
                        arr[a:b] = series.to_numpy(dtype=np.float64)[a:b]
                        used.add(key)
            if piece.close_out:
                last = b - 1
                if self.at_open:
                    for f in flags.values():
                        f[last] = False
                    last -= 1
                if last >= 0:
                    flags["entries"][last] = flags["short_entries"][last] = False
                    flags["exits"][last] = flags["short_exits"][last] = True
        return StrategyOutput(**{k: pd.Series(v, index=ts) for k, v in flags.items()},
                              **{k: pd.Series(extra[k], index=ts) for k in used})
