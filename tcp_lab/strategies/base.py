"""The strategy contract: declared parameters, one vectorized ``compute``.

A strategy declares its :class:`Parameter` s and computes, for a whole candle
frame at once, entry/exit signals and indicator series
(:class:`StrategyOutput`). Row ``t`` may use rows ``<= t`` only. The backtest
calls :meth:`BaseStrategy.compute` once on the whole history; a live bot calls
:meth:`BaseStrategy.process_data` on a trailing window of closed candles and
acts on the last row (a :class:`Signal`). The strategy never knows which.

A strategy written on NumPy arrays implements :meth:`BaseStrategy.compute_arrays`
instead of ``compute`` (the built-ins do): ``compute`` then wraps its result
in Series, and a live bot calls it directly on its window's arrays, without
building a DataFrame per candle, which is what keeps many bots on a 2-core
machine within milliseconds of a candle's close. Same code, same numbers.

Strategies use plain numpy/pandas (shared helpers in
:mod:`tcp_lab.strategies.indicators`); they never import vectorbt.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tcp_lab.errors import StrategyError
from tcp_lab.timeframes import CANDLE_COLUMNS

__all__ = [
    "Parameter",
    "StrategyOutput",
    "ArrayOutput",
    "candle_arrays",
    "Signal",
    "BaseStrategy",
    "check_output",
    "require_less",
]

_TYPES = (int, float, bool, str)


@dataclass(frozen=True)
class Parameter:
    """One tunable parameter of a strategy.

    Attributes
    ----------
    name
        Keyword used in ``parameters={...}`` and config files.
    type
        ``int``, ``float``, ``bool`` or ``str``. ``float`` accepts ints (and
        stores a float); ``int`` accepts integral numbers but not bools.
    default
        Used when the parameter is not given.
    min, max
        Inclusive bounds for numbers (``None``: unbounded).
    choices
        Allowed values (for ``str`` mostly).
    step
        Grid step for sweeps (:meth:`grid`).
    doc
        One line for ``tcp-lab strategy list`` and error hints.
    """

    name: str
    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    step: float | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise StrategyError(
                f"parameter {self.name!r}: type must be one of int, float, bool, str, "
                f"got {self.type!r}"
            )

    def describe(self) -> str:
        """What values are allowed, e.g. ``"int in [2, 500]"``."""
        text = self.type.__name__
        if self.choices is not None:
            return f"{text} in {list(self.choices)}"
        if self.min is not None or self.max is not None:
            lo = "-inf" if self.min is None else _fmt(self.min)
            hi = "inf" if self.max is None else _fmt(self.max)
            text += f" in [{lo}, {hi}]"
        return text

    def grid(self) -> list[Any]:
        """The default sweep values: ``choices``, ``(False, True)``, or min..max by step.

        Raises
        ------
        StrategyError
            A numeric parameter without ``min``, ``max`` and ``step``.
        """
        if self.choices is not None:
            return list(self.choices)
        if self.type is bool:
            return [False, True]
        if self.min is None or self.max is None or self.step is None or self.type is str:
            raise StrategyError(
                f"parameter {self.name!r} has no default grid (needs min, max and step)",
                hint=f"pass explicit values, e.g. {self.name}=[...]",
            )
        count = int(math.floor((self.max - self.min) / self.step + 1e-9)) + 1
        values = [self.min + i * self.step for i in range(count)]
        if self.type is int:
            return [int(round(v)) for v in values]
        return [float(round(v, 12)) for v in values]

    def coerce(self, value: Any, owner: str) -> Any:
        """Return ``value`` converted to :attr:`type`, or raise :class:`StrategyError`."""
        where = f"strategy {owner!r}: parameter {self.name!r}"
        expected = self.describe()
        if self.type is bool:
            ok = isinstance(value, bool | np.bool_)
            out = bool(value) if ok else None
        elif self.type is int:
            ok = isinstance(value, Integral) and not isinstance(value, bool | np.bool_)
            if not ok and isinstance(value, Real) and not isinstance(value, bool | np.bool_):
                ok = math.isfinite(float(value)) and float(value).is_integer()
            out = int(value) if ok else None
        elif self.type is float:
            ok = isinstance(value, Real) and not isinstance(value, bool | np.bool_)
            ok = ok and math.isfinite(float(value))
            out = float(value) if ok else None
        else:
            ok = isinstance(value, str)
            out = value if ok else None
        if not ok:
            raise StrategyError(
                f"{where} = {value!r} has the wrong type "
                f"({type(value).__name__}), expected {expected}",
                hint=f"{self.doc} (default {self.default!r})" if self.doc else None,
            )
        if self.choices is not None and out not in self.choices:
            guess = difflib.get_close_matches(str(out), [str(c) for c in self.choices], n=1)
            dym = f"; did you mean {guess[0]!r}?" if guess else ""
            raise StrategyError(f"{where} = {value!r} is not allowed, expected {expected}{dym}")
        if self.type in (int, float) and (
            (self.min is not None and out < self.min) or (self.max is not None and out > self.max)
        ):
            raise StrategyError(
                f"{where} = {value!r} is out of range, expected {expected}",
                hint=f"{self.doc} (default {self.default!r})" if self.doc else None,
            )
        return out


def require_less(owner: str, params: Mapping[str, Any], small: str, large: str) -> None:
    """Raise :class:`StrategyError` unless ``params[small] < params[large]`` (e.g. fast < slow).

    For :meth:`BaseStrategy.check_parameters` implementations.
    """
    if not params[small] < params[large]:
        raise StrategyError(
            f"strategy {owner!r}: parameter {small!r} = {params[small]!r} must be less than "
            f"{large!r} = {params[large]!r}",
            hint=f"pick {small} < {large}",
        )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class StrategyOutput:
    """What :meth:`BaseStrategy.compute` returns; every series is aligned to ``candles.index``.

    Attributes
    ----------
    entries
        bool: go long (or close a short) at this candle's close.
    exits
        bool: close a long at this candle's close.
    indicators
        Named indicator series (for figures and the bot's signal message).
    short_entries, short_exits
        bool, optional: open/close a short. When absent, ``direction="longshort"``
        backtests reverse on ``exits`` (short) and ``entries`` (long).
    confidence
        Optional 0..1 confidence of each candle's decision.
    stop_price, target_price
        Optional price levels for an entry on that candle (NaN: none), read at
        the entry bar: e.g. an ATR stop. They replace the ``stop_loss`` /
        ``take_profit`` options for that entry.
    """

    entries: pd.Series
    exits: pd.Series
    indicators: dict[str, pd.Series] = field(default_factory=dict)
    short_entries: pd.Series | None = None
    short_exits: pd.Series | None = None
    confidence: pd.Series | None = None
    stop_price: pd.Series | None = None
    target_price: pd.Series | None = None

    def signal_columns(self) -> dict[str, pd.Series]:
        """The signal series that are set, by name (``entries``, ``exits``, ``short_*``)."""
        out = {"entries": self.entries, "exits": self.exits}
        if self.short_entries is not None:
            out["short_entries"] = self.short_entries
        if self.short_exits is not None:
            out["short_exits"] = self.short_exits
        return out


@dataclass(frozen=True)
class ArrayOutput:
    """What :meth:`BaseStrategy.compute_arrays` returns: :class:`StrategyOutput` as arrays.

    Every array has one value per input row (signals bool, or numbers with
    NaN read as False); :meth:`to_output` aligns them to an index.
    """

    entries: np.ndarray
    exits: np.ndarray
    indicators: Mapping[str, np.ndarray] = field(default_factory=dict)
    short_entries: np.ndarray | None = None
    short_exits: np.ndarray | None = None
    confidence: np.ndarray | None = None
    stop_price: np.ndarray | None = None
    target_price: np.ndarray | None = None

    def to_output(self, index: pd.Index) -> StrategyOutput:
        """The same values as a :class:`StrategyOutput` of Series on ``index``."""

        def series(values: np.ndarray | None, name: str) -> pd.Series | None:
            # no copy (pandas 3 copies arrays by default): the arrays are the strategy's own
            return None if values is None else pd.Series(values, index=index, name=name,
                                                         copy=False)

        return StrategyOutput(
            entries=series(self.entries, "entries"),
            exits=series(self.exits, "exits"),
            indicators={k: series(v, k) for k, v in self.indicators.items()},
            short_entries=series(self.short_entries, "short_entries"),
            short_exits=series(self.short_exits, "short_exits"),
            confidence=series(self.confidence, "confidence"),
            stop_price=series(self.stop_price, "stop_price"),
            target_price=series(self.target_price, "target_price"),
        )


def candle_arrays(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns :meth:`BaseStrategy.compute_arrays` receives from a candle frame.

    ``ts`` (close times as int64 microseconds since the epoch, UTC) and every
    column of ``candles`` as its NumPy array (no copy when already numeric).
    """
    index = pd.DatetimeIndex(candles.index)
    arrays = {"ts": index.as_unit("us").asi8}
    arrays.update({str(c): candles[c].to_numpy() for c in candles.columns})
    return arrays


@dataclass(frozen=True)
class Signal:
    """One candle's decision, for the live bot.

    Attributes
    ----------
    ts
        Close time of the candle the decision was taken on (tz-aware UTC).
    action
        ``"buy"`` (enter long / cover short), ``"sell"`` (exit long / enter
        short) or ``"hold"``.
    confidence
        0..1 (1.0 for a plain buy/sell, 0.0 for hold unless the strategy says).
    price
        That candle's close.
    indicators
        Indicator values at that candle.
    """

    ts: pd.Timestamp
    action: str
    confidence: float
    price: float
    indicators: dict[str, float]


def check_output(output: Any, candles: pd.DataFrame, owner: str) -> StrategyOutput:
    """Check a ``compute`` result and return it with bool signals (NaN -> False).

    Raises
    ------
    StrategyError
        Not a :class:`StrategyOutput`, a series of the wrong length, or a
        signal series that is not boolean.
    """
    if not isinstance(output, StrategyOutput):
        raise StrategyError(
            f"strategy {owner!r}: compute() returned {type(output).__name__}, "
            "expected StrategyOutput"
        )
    n = len(candles)
    fixed: dict[str, pd.Series | None] = {}
    for key in ("entries", "exits", "short_entries", "short_exits"):
        s = getattr(output, key)
        if s is None:
            fixed[key] = None
            continue
        arr = np.asarray(s)
        if arr.shape != (n,):
            raise StrategyError(
                f"strategy {owner!r}: {key} has shape {arr.shape}, expected ({n},) "
                "(one value per candle)"
            )
        if arr.dtype != np.bool_:
            if arr.dtype.kind not in "bifO":
                raise StrategyError(f"strategy {owner!r}: {key} must be boolean, got {arr.dtype}")
            if arr.dtype.kind == "O":
                arr = pd.array(arr, dtype="boolean").fillna(False).to_numpy(dtype=bool)
            else:
                arr = np.nan_to_num(arr.astype(np.float64), nan=0.0) != 0
            fixed[key] = pd.Series(arr, index=candles.index, name=key)
        else:
            fixed[key] = s if isinstance(s, pd.Series) else pd.Series(arr, index=candles.index)
    for key, s in output.indicators.items():
        if len(s) != n:
            raise StrategyError(
                f"strategy {owner!r}: indicator {key!r} has {len(s)} rows, expected {n}"
            )
    for key in ("confidence", "stop_price", "target_price"):
        s = getattr(output, key)
        if s is not None and len(s) != n:
            raise StrategyError(f"strategy {owner!r}: {key} has {len(s)} rows, expected {n}")
    if all(fixed[k] is getattr(output, k) for k in fixed):
        return output
    return StrategyOutput(
        entries=fixed["entries"],
        exits=fixed["exits"],
        indicators=output.indicators,
        short_entries=fixed["short_entries"],
        short_exits=fixed["short_exits"],
        confidence=output.confidence,
        stop_price=output.stop_price,
        target_price=output.target_price,
    )


class BaseStrategy:
    """Base class of every strategy.

    Subclasses set :attr:`name` and :attr:`parameters`, implement
    :meth:`compute` (vectorized over the whole frame; row ``t`` uses rows
    ``<= t`` only) and :attr:`warmup`, and may override
    :meth:`check_parameters` for rules between parameters.

    Parameters
    ----------
    parameters
        Values for some or all declared parameters; the rest take defaults.

    Raises
    ------
    StrategyError
        Unknown parameter (with a did-you-mean), wrong type, out of range, or
        a rule of :meth:`check_parameters` broken. The message names the
        strategy, the parameter, the value and what was expected.

    Examples
    --------
    >>> from tcp_lab.strategies import get_strategy
    >>> s = get_strategy("sma_cross", {"fast": 5, "slow": 20})
    >>> s.params["slow"], s.warmup
    (20, 21)
    """

    name: ClassVar[str] = ""
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    #: Other series the strategy reads, ``(timeframe, symbol)`` (``None``: its own
    #: symbol), e.g. ``(("1h", None), ("4h", "ETH/USDT"))``: whatever runs the strategy
    #: adds them to the candles aligned by close time (see
    #: :mod:`tcp_lab.strategies.informative`); read them with :meth:`informative_frame`.
    informative: ClassVar[tuple[tuple[str, str | None], ...]] = ()

    def __init__(self, parameters: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = MappingProxyType(self._resolve(parameters or {}))

    # -- parameters -----------------------------------------------------------------
    @classmethod
    def _label(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def _by_name(cls) -> dict[str, Parameter]:
        return {p.name: p for p in cls.parameters}

    def _resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(given, Mapping):
            raise StrategyError(
                f"strategy {self._label()!r}: parameters must be a mapping, "
                f"got {type(given).__name__}"
            )
        declared = self._by_name()
        for key in given:
            if key not in declared:
                guess = difflib.get_close_matches(str(key), list(declared), n=1)
                dym = f"; did you mean {guess[0]!r}?" if guess else ""
                raise StrategyError(
                    f"strategy {self._label()!r}: unknown parameter {key!r}{dym}",
                    hint="parameters: " + (", ".join(declared) or "(none)"),
                )
        values = {
            p.name: p.coerce(given[p.name] if p.name in given else p.default, self._label())
            for p in self.parameters
        }
        self.check_parameters(values)
        return values

    def check_parameters(self, params: Mapping[str, Any]) -> None:
        """Check rules between parameters (e.g. ``fast < slow``); raise :class:`StrategyError`.

        Called with every parameter already type- and range-checked. The base
        implementation accepts everything.
        """

    @classmethod
    def parameter_grid(cls, **ranges: Any) -> list[dict[str, Any]]:
        """Every combination of the given values, minus those :meth:`check_parameters` rejects.

        Parameters
        ----------
        **ranges
            Per parameter: an iterable of values, a single value, or ``...``
            for the parameter's default grid (:meth:`Parameter.grid`).
            Parameters not named keep their default.

        Returns
        -------
        list of dict
            Full parameter dicts (every declared parameter), in the order of
            the cartesian product over the declared parameters.

        Raises
        ------
        StrategyError
            An unknown parameter, or a value of the wrong type or out of range.

        Examples
        --------
        >>> from tcp_lab.strategies import get_strategy
        >>> cls = type(get_strategy("sma_cross"))
        >>> cls.parameter_grid(fast=[10, 30], slow=[20, 40])
        [{'fast': 10, 'slow': 20}, {'fast': 10, 'slow': 40}, {'fast': 30, 'slow': 40}]
        """
        declared = cls._by_name()
        label = cls._label()
        axes: list[list[Any]] = []
        for key in ranges:
            if key not in declared:
                guess = difflib.get_close_matches(key, list(declared), n=1)
                dym = f"; did you mean {guess[0]!r}?" if guess else ""
                raise StrategyError(f"strategy {label!r}: unknown parameter {key!r}{dym}")
        for p in cls.parameters:
            spec = ranges.get(p.name, p.default)
            if spec is Ellipsis:
                values = p.grid()
            elif isinstance(spec, Iterable) and not isinstance(spec, str | bytes):
                values = list(spec)
            else:
                values = [spec]
            if not values:
                raise StrategyError(f"strategy {label!r}: no values given for {p.name!r}")
            axes.append([p.coerce(v, label) for v in values])
        probe = cls.__new__(cls)
        out = []
        for combo in itertools.product(*axes):
            params = dict(zip(declared, combo, strict=True))
            try:
                probe.check_parameters(params)
            except StrategyError:
                continue
            out.append(params)
        return out

    # -- computation ----------------------------------------------------------------
    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        """Signals and indicators for every candle (row ``t`` uses rows ``<= t`` only).

        Implement this, or :meth:`compute_arrays` (which this then wraps).
        """
        if not self.has_array_path:
            raise NotImplementedError(
                f"{type(self).__name__} implements neither compute() nor compute_arrays()")
        return self.compute_arrays(candle_arrays(candles)).to_output(candles.index)

    def compute_arrays(self, candles: Mapping[str, np.ndarray]) -> ArrayOutput:
        """:meth:`compute` on NumPy arrays: optional, and the fast path of live bots.

        Parameters
        ----------
        candles
            ``ts`` (int64 microseconds since the epoch, UTC, close times),
            ``open high low close volume`` (float64) and ``trade_count``
            (int64), oldest first (see :func:`candle_arrays`).

        Returns
        -------
        ArrayOutput
            One value per row in every array.
        """
        raise NotImplementedError(f"{type(self).__name__}.compute_arrays() is not implemented")

    @property
    def has_array_path(self) -> bool:
        """True when the strategy's computation is :meth:`compute_arrays`.

        That is, it implements ``compute_arrays`` and leaves ``compute`` to
        the base class (a strategy that overrides ``compute`` is computed by it).
        """
        cls = type(self)
        return (cls.compute_arrays is not BaseStrategy.compute_arrays
                and cls.compute is BaseStrategy.compute)

    @property
    def warmup(self) -> int:
        """Candles a trailing window needs so its last row equals the full run's.

        E.g. ``slow + 1`` for an SMA cross (the slow mean at this and the
        previous candle). The bot feeds at least this many closed candles.
        """
        return 1

    def informative_frame(self, candles: pd.DataFrame, timeframe: str,
                          symbol: str | None = None, *, distinct: bool = False,
                          ) -> pd.DataFrame:
        """A declared informative series from ``candles``, with plain candle columns.

        Row ``t`` holds the newest ``timeframe`` candle (of ``symbol``, default the own
        symbol) that closed at or before ``t``, and its close time in ``ts``; NaN before
        its first one. ``distinct=True`` gives each informative candle once, indexed by
        its close time: compute an indicator on the informative timeframe there, then
        bring it back to the candles with :func:`tcp_lab.align` (an hourly SMA(3) is the
        mean of 3 hours, not of 3 rows of 5m candles).

        Examples
        --------
        >>> hourly = self.informative_frame(candles, "1h", distinct=True)  # doctest: +SKIP
        >>> trend = (hourly["close"] > hourly["close"].rolling(3).mean())  # doctest: +SKIP
        >>> tcp_lab.align(trend.to_frame("up"), candles)["up"]            # doctest: +SKIP

        Raises
        ------
        StrategyError
            The series is not in ``candles``: not declared in :attr:`informative`, or
            the candles did not go through the runner that adds it.
        """
        from tcp_lab.strategies.informative import informative_name

        names = [informative_name(f, timeframe, symbol) for f in (*CANDLE_COLUMNS, "ts")]
        missing = [n for n in names if n not in candles.columns]
        if missing:
            raise StrategyError(
                f"strategy {self._label()!r}: no informative {timeframe} series"
                f"{' of ' + symbol if symbol else ''} in the candles (column {missing[0]!r})",
                hint=f"declare informative = (({timeframe!r}, {symbol!r}),) and run the "
                "strategy through run_backtest, sweep or a bot (they add it), or call "
                "tcp_lab.strategies.informative.with_informative")
        frame = candles[names].set_axis([*CANDLE_COLUMNS, "ts"], axis=1)
        if not distinct:
            return frame
        seen = frame.dropna(subset=["ts"]).drop_duplicates(subset=["ts"])
        index = pd.DatetimeIndex(seen.pop("ts"), name="ts")
        return seen.set_axis(index if index.tz is not None else index.tz_localize("UTC"))

    def get_indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The strategy's indicator series over ``candles``."""
        return dict(self.compute(candles).indicators)

    def process_data(self, window: pd.DataFrame) -> Signal:
        """The decision on the last candle of ``window`` (closed candles, oldest first).

        ``buy`` when the last row has an entry (or short exit) and no exit,
        ``sell`` when it has an exit (or short entry) and no entry, else ``hold``.

        Raises
        ------
        StrategyError
            ``window`` is empty.
        """
        if len(window) == 0:
            raise StrategyError(
                f"strategy {self._label()!r}: process_data() got an empty window",
                hint=f"pass at least {self.warmup} closed candles",
            )
        from tcp_lab.strategies.decision import last_decision  # it builds on this module

        return last_decision(self, window).signal(window.index[-1],
                                                  float(window["close"].iat[-1]))

    # -- presentation ---------------------------------------------------------------
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and dict(self.params) == dict(other.params)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.params.items())))
