"""Trading options: one set of names, validated once, for backtests, sweeps, bots and batches.

>>> opts = TradingOptions(fees=0.001, stop_loss=0.02)
>>> opts.kernel_options()[:2].tolist()
[0.001, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from tcp_lab.errors import ConfigError
from tcp_lab.execution.account import SIZE_AMOUNT, SIZE_PERCENT, SIZE_VALUE

__all__ = ["TradingOptions", "DIRECTIONS", "PRICES", "SIZE_TYPES", "LEVEL_OPTIONS",
           "route_signals"]

DIRECTIONS = ("long", "longshort")
PRICES = ("close", "next_open")
SIZE_TYPES = ("percent", "value", "amount")
#: Options that are fractions of the entry fill price (or of the peak) and can be swept.
LEVEL_OPTIONS = ("stop_loss", "take_profit", "trailing_stop")
_SIZE_CODES = {"amount": SIZE_AMOUNT, "value": SIZE_VALUE, "percent": SIZE_PERCENT}


@dataclass(frozen=True)
class TradingOptions:
    """How orders fill: the same for ``run_backtest``, ``sweep``, bots and batches.

    Attributes
    ----------
    fees
        Fraction of the traded value paid per fill (0.001 = 0.1 %).
    slippage
        Fraction a market or stop fill moves against us (a target, a limit
        order, fills at its price).
    init_cash
        Starting capital (quote currency).
    size, size_type
        ``"percent"``: fraction of equity per entry (1.0 = all in);
        ``"value"``: a quote amount per entry; ``"amount"``: base units per entry.
    direction
        ``"long"`` or ``"longshort"``.
    price
        ``"close"``: signals fill at their candle's close; ``"next_open"``: at
        the next candle's open.
    stop_loss, take_profit
        Fractions of the entry fill price (None: off); e.g. 0.02 puts a long's
        stop 2 % below its entry.
    trailing_stop
        Fraction below the highest price since entry (a long; above the
        lowest for a short), None: off.
    latency_ms
        On market trades only: a triggered stop fills at the first trade at
        or after trigger + latency (None: at the trigger).
    max_volume_share
        On market trades only: a stop or target fill takes at most this
        share of each trade's amount from the trigger on; the rest fills on
        later trades (None: all at once).
    """

    fees: float = 0.001
    slippage: float = 0.0
    init_cash: float = 10_000.0
    size: float = 1.0
    size_type: str = "percent"
    direction: str = "long"
    price: str = "close"
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    latency_ms: float | None = None
    max_volume_share: float | None = None

    def __post_init__(self) -> None:
        self.check()

    # -- validation, once --------------------------------------------------------------
    def check(self, owner: str = "trading options") -> None:
        """Raise :class:`ConfigError` naming ``owner`` and the bad value."""

        def bad(what: str, hint: str) -> ConfigError:
            return ConfigError(f"{owner}: {what}", hint=hint)

        if self.direction not in DIRECTIONS:
            raise bad(f"direction={self.direction!r}, expected one of {DIRECTIONS}",
                      "use 'long' or 'longshort'")
        if self.price not in PRICES:
            raise bad(f"price={self.price!r}, expected one of {PRICES}",
                      "use 'close' (default) or 'next_open'")
        if self.size_type not in SIZE_TYPES:
            raise bad(f"size_type={self.size_type!r}, expected one of {SIZE_TYPES}",
                      "default 'percent'")
        for name in ("fees", "slippage"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not 0 <= v < 1:
                raise bad(f"{name}={v!r}: expected a fraction in [0, 1)",
                          "0.001 is 0.1 % per fill")
        if not isinstance(self.init_cash, int | float) or not 0 < self.init_cash < math.inf:
            raise bad(f"init_cash={self.init_cash!r} must be positive", "e.g. init_cash=10_000")
        s = self.size
        if not isinstance(s, int | float) or not 0 < s < math.inf or (
                self.size_type == "percent" and s > 1):
            raise bad(f"size={s!r} with size_type={self.size_type!r}",
                      "percent: a fraction of equity in (0, 1]; value/amount: a positive number")
        if self.size_type == "percent" and s < 1 and self.direction == "longshort":
            raise bad("size < 1 of equity cannot reverse positions (vectorbt's rule)",
                      "use size=1.0, size_type='value', or direction='long'")
        for name in LEVEL_OPTIONS:
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int | float) or not 0 < v < 1):
                raise bad(f"{name}={v!r}: expected a fraction in (0, 1) or None",
                          f"e.g. {name}=0.02 for 2 % of the entry price")
        v = self.latency_ms
        if v is not None and (not isinstance(v, int | float) or not 0 <= v < math.inf):
            raise bad(f"latency_ms={v!r}: expected milliseconds >= 0 or None",
                      "e.g. latency_ms=250")
        v = self.max_volume_share
        if v is not None and (not isinstance(v, int | float) or not 0 < v <= 1):
            raise bad(f"max_volume_share={v!r}: expected a fraction in (0, 1] or None",
                      "e.g. max_volume_share=0.1 takes at most 10 % of each trade")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], owner: str = "trading options",
                     ) -> TradingOptions:
        """Options from a dict; an unknown key is an error with a did-you-mean."""
        import difflib

        names = [f.name for f in fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                raise ConfigError(f"{owner}: unknown trading option {key!r}",
                                  hint=f"did you mean {close[0]!r}?" if close else
                                  "known: " + ", ".join(names))
        try:
            return cls(**dict(values))
        except ConfigError as e:
            raise ConfigError(str(e).replace("trading options", owner, 1)) from None

    def with_(self, **changes: Any) -> TradingOptions:
        """A copy with some options changed (validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (JSON-ready)."""
        return asdict(self)

    # -- what the kernel reads -----------------------------------------------------------
    @property
    def has_levels(self) -> bool:
        """A stop, target or trailing stop is set."""
        return any(getattr(self, n) is not None for n in LEVEL_OPTIONS)

    @property
    def needs_trade_times(self) -> bool:
        """Latency or a volume share is set: the kernel reads trade times and amounts."""
        return self.latency_ms is not None or self.max_volume_share is not None

    def kernel_options(self) -> np.ndarray:
        """The :data:`~tcp_lab.execution.kernel.OPTION_FIELDS` array.

        All-in percent sizing is vectorbt's infinite amount (the whole cash,
        fees included).
        """
        size, size_type = float(self.size), _SIZE_CODES[self.size_type]
        if self.size_type == "percent" and size >= 1:
            size, size_type = math.inf, SIZE_AMOUNT
        off = lambda v: 0.0 if v is None else float(v)  # noqa: E731
        return np.array([self.fees, self.slippage, size, size_type, off(self.stop_loss),
                         off(self.take_profit), off(self.trailing_stop),
                         off(self.latency_ms) * 1000.0, off(self.max_volume_share)],
                        dtype=np.float64)


def route_signals(direction: str, entries: Any, exits: Any, short_entries: Any = None,
                  short_exits: Any = None) -> tuple[Any, Any, Any, Any]:
    """A strategy's four signals as the kernel's (long entry, long exit, short entry, short exit).

    ``long``: short signals are ignored. ``longshort`` without short signals
    reverses: an exit opens a short, an entry covers it and goes long. Works on
    arrays (the backtest) and on single booleans (the bot); a missing signal
    is ``False`` (broadcast against ``entries`` for arrays).
    """
    never = np.zeros_like(entries) if isinstance(entries, np.ndarray) else False
    if direction == "long":
        return entries, exits, never, never
    if short_entries is None and short_exits is None:
        return entries, never, exits, never
    return (entries, exits, never if short_entries is None else short_entries,
            never if short_exits is None else short_exits)
