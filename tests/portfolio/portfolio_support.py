"""Helpers for portfolio tests: coded candles (the volume carries the signal) and strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput

#: ``volume`` codes read by :class:`Coded`: nothing, entry, exit, both.
NONE, ENTRY, EXIT, BOTH = 0, 1, 2, 3


class Coded(BaseStrategy):
    """Signals written into the candles: ``volume`` is the code, ``trade_count / 1000`` the
    confidence (given when ``confident``); with ``stop_distance`` > 0 each entry's stop is
    ``close * (1 - stop_distance * (1 + confidence))`` (a distance that varies by bar)."""

    name = "coded_test"
    parameters = (Parameter("confident", bool, True),
                  Parameter("stop_distance", float, 0.0, min=0.0, max=0.5))

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        code = candles["volume"].to_numpy().astype(np.int64)
        i = candles.index
        conf = candles["trade_count"].to_numpy() / 1000.0
        return StrategyOutput(
            entries=pd.Series((code & ENTRY) != 0, index=i),
            exits=pd.Series((code & EXIT) != 0, index=i),
            confidence=pd.Series(conf, index=i) if self.params["confident"] else None,
            stop_price=(pd.Series(candles["close"] * (1 - d * (1 + conf)), index=i)
                        if (d := self.params["stop_distance"]) > 0 else None),
        )


def coded_candles(close, codes, confidence, keep=None, timeframe: str = "1h",
                  start: str = "2024-01-01 01:00") -> pd.DataFrame:
    """Candles on the ``timeframe`` grid from ``start`` with the given closes, signal codes and
    confidences (0..1); ``keep`` (bool) drops the rows where it is False (gaps)."""
    close = np.asarray(close, dtype=float)
    o = np.r_[close[0], close[:-1]]
    idx = pd.date_range(start, periods=len(close), freq=timeframe, tz="UTC", unit="us",
                        name="ts")
    df = pd.DataFrame(
        {"open": o, "high": np.maximum(o, close) * 1.01, "low": np.minimum(o, close) * 0.99,
         "close": close, "volume": np.asarray(codes, dtype=float),
         "trade_count": np.round(np.asarray(confidence) * 1000).astype(np.int64)},
        index=idx,
    )
    return df if keep is None else df[np.asarray(keep, dtype=bool)]


#: ``volume`` bits read by :class:`CodedLS`: long entry, long exit, short entry, short exit.
LE, LX, SE, SX = 1, 2, 4, 8


class CodedLS(BaseStrategy):
    """:class:`Coded` with short signals: ``volume`` holds the bits :data:`LE` ... :data:`SX`
    (with ``shorts`` False only ``LE``/``LX`` are read, as entries and exits, and
    ``direction="longshort"`` reverses on them); ``trade_count / 1000`` is the confidence.
    With ``stop_distance`` > 0 the stop of a bar with ``LE`` is ``close * (1 - d * (1 +
    confidence))``, of any other bar ``close * (1 + d * (1 + confidence))`` (above a short)."""

    name = "coded_ls_test"
    parameters = (Parameter("shorts", bool, True),
                  Parameter("stop_distance", float, 0.0, min=0.0, max=0.5))

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        code = candles["volume"].to_numpy().astype(np.int64)
        i = candles.index
        conf = candles["trade_count"].to_numpy() / 1000.0
        d = self.params["stop_distance"]
        sign = np.where((code & LE) != 0, -1.0, 1.0)
        flag = lambda bit: pd.Series((code & bit) != 0, index=i)  # noqa: E731
        shorts = self.params["shorts"]
        return StrategyOutput(
            entries=flag(LE), exits=flag(LX),
            short_entries=flag(SE) if shorts else None,
            short_exits=flag(SX) if shorts else None,
            confidence=pd.Series(conf, index=i),
            stop_price=(pd.Series(candles["close"].to_numpy() * (1 + sign * d * (1 + conf)),
                                  index=i) if d > 0 else None),
        )


@st.composite
def coded_universes(draw, codes, step=0.05):
    """1 to 4 symbols of 3 to 12 coded hourly candles each (random walk of log steps up to
    ``step``, signal codes drawn from ``codes``, confidences, gaps; two candles at least)."""
    n_symbols = draw(st.integers(1, 4))
    n = draw(st.integers(3, 12))
    out = {}
    for k in range(n_symbols):
        steps = draw(st.lists(st.floats(-step, step), min_size=n, max_size=n))
        close = 100.0 * np.exp(np.cumsum(steps))
        drawn = draw(st.lists(st.sampled_from(codes), min_size=n, max_size=n))
        conf = draw(st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=n, max_size=n))
        keep = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        keep[0] = keep[1] = True  # at least two candles
        out[f"S{k}"] = coded_candles(close, drawn, conf, keep)
    return out
