"""The paper broker: a candle's signals (and live levels) to virtual fills, by the engine.

This module decides and fills *virtual* orders only. There is no code path
that places an order on an exchange: the bot package never imports an
exchange client, and a :class:`Fill` is nothing but numbers written to the
store.

There is no fill logic here: each closed candle goes through the execution
engine's compiled bar step (:func:`tcp_lab.execution.kernel.bar_nb`), the
same one :func:`tcp_lab.backtest.run_backtest` runs over all bars, on an
:class:`Account` that holds the engine's account state. So a candle history
replayed through a bot gives exactly the backtest's fills (``price="close"``),
stops and targets included (resolved by the OHLC rule at the candle's close).

>>> from tcp_lab.execution import TradingOptions
>>> b = PaperBroker(TradingOptions(fees=0.001))
>>> acct, fills = b.on_candle(Account.opening(1000.0), Flags(long_entry=True),
...                           (100.0, 100.0, 100.0, 100.0))
>>> round(fills[0].amount, 6), fills[0].side, acct.cash
(9.99001, 'buy', 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.execution import REASONS, STATE_FIELDS, TradingOptions, route_signals
from tcp_lab.execution.account import FILL_FIELDS, N_FILL, N_STATE, open_account_nb
from tcp_lab.execution.kernel import bar_nb, levels_on_nb
from tcp_lab.execution.on_trades import close_trades_bar_nb, scan_trades_nb

__all__ = ["Account", "Flags", "Fill", "PaperBroker", "signal_flags", "candle_prices",
           "check_fills_at_close"]

_F = {name: k for k, name in enumerate(FILL_FIELDS)}
_S = {name: k for k, name in enumerate(STATE_FIELDS)}
_SORTED = np.array(sorted(range(len(STATE_FIELDS)), key=STATE_FIELDS.__getitem__))
_SORTED_NAMES = tuple(STATE_FIELDS[k] for k in _SORTED)
#: Keys of accounts stored before the engine (tcp_lab 0.1): the open trade by its side.
_LEGACY = {"entry_size": "trade_size", "entry_gross": "trade_gross", "entry_fees": "trade_fees"}


@dataclass(frozen=True)
class Flags:
    """The four signals of one candle, as the engine reads them."""

    long_entry: bool = False
    long_exit: bool = False
    short_entry: bool = False
    short_exit: bool = False


@dataclass(frozen=True)
class Fill:
    """One virtual execution on a candle.

    ``amount`` is positive; ``side`` says the direction. ``realized_pnl`` is
    the P&L of the round trip this fill closed (None when it only opened
    one); ``reason`` is why it filled (``signal``, ``stop_loss``,
    ``take_profit``, ``trailing_stop``, ``reversal``).
    """

    side: str
    price: float
    amount: float
    fee: float
    realized_pnl: float | None
    reason: str = "signal"


class Account:
    """A paper account: the engine's account state (cash, position, the open round trip,
    its stop and target levels, counters), immutable from the outside.
    """

    __slots__ = ("_state",)

    def __init__(self, state: np.ndarray) -> None:
        state = np.array(state, dtype=np.float64)
        if state.shape != (N_STATE,):
            raise ValueError(f"an account has {N_STATE} fields, got {state.shape}")
        state.flags.writeable = False
        self._state = state

    @classmethod
    def opening(cls, cash: float) -> Account:
        """A fresh account holding ``cash`` and nothing else."""
        state = np.empty(N_STATE)
        open_account_nb(state, float(cash))
        return cls(state)

    @property
    def state(self) -> np.ndarray:
        """The engine's account array (read-only; :data:`~tcp_lab.execution.STATE_FIELDS`)."""
        return self._state

    def __getattr__(self, name: str) -> float:
        k = _S.get(name)
        if k is None:
            raise AttributeError(name)
        return float(self._state[k])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and np.array_equal(self._state, other._state,
                                                             equal_nan=True)

    def __hash__(self) -> int:
        return hash(self._state.tobytes())

    def __repr__(self) -> str:
        return f"Account(cash={self.cash!r}, position={self.position!r})"

    def equity(self, price: float) -> float:
        """Cash plus the position marked at ``price``."""
        return self.cash + self.position * price

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats round-trip exactly through JSON; NaN levels are None)."""
        return {name: (None if math.isnan(v) else v)
                for name, v in zip(STATE_FIELDS, self._state.tolist(), strict=True)}

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON object with sorted keys (orjson writes NaN as null).

        Raises
        ------
        ValueError
            An infinite value (a bug upstream: JSON has no infinity).
        """
        values = self._state[_SORTED]
        if np.isinf(values).any():
            raise ValueError(f"an infinite value in {self.to_dict()}")
        return orjson.dumps(dict(zip(_SORTED_NAMES, values.tolist(), strict=True))).decode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        """The account :meth:`to_dict` wrote (or one stored before the engine existed)."""
        fresh = cls.opening(float(data.get("cash", 0.0))).state.copy()
        values = dict(data)
        if "entry_side" in values:  # tcp_lab 0.1: no levels, the open trade by side
            for old, new in _LEGACY.items():
                values[new] = values.pop(old, 0.0)
            side = int(values.pop("entry_side"))
            values["trade_long"] = 1.0 if side > 0 else 0.0
            if side and values["trade_size"]:
                values["extreme"] = values["trade_gross"] / values["trade_size"]
                values["n_entries"] = 1.0
        for name, v in values.items():
            if name in _S:
                fresh[_S[name]] = np.nan if v is None else float(v)
        return cls(fresh)


def signal_flags(direction: str, entry: bool, exit: bool, short_entry: bool | None = None,
                 short_exit: bool | None = None) -> Flags:
    """How the engine reads one candle's signals for ``direction`` (``short_entry`` and
    ``short_exit`` None: the strategy gives none; then ``longshort`` reverses)."""
    return Flags(*(bool(f) for f in route_signals(direction, entry, exit, short_entry,
                                                   short_exit)))


def candle_prices(candle: Sequence[float]) -> tuple[float, float, float, float]:
    """Open, high, low and close of a candle a paper broker fills on (each finite, > 0).

    Raises
    ------
    StrategyError
        A price that is not a positive number.
    """
    o, h, lo, c = (float(x) for x in candle)
    if not all(math.isfinite(x) and x > 0 for x in (o, h, lo, c)):
        raise StrategyError(f"paper broker: cannot fill on candle {tuple(candle)!r}")
    return o, h, lo, c


def check_fills_at_close(options: TradingOptions) -> None:
    """A paper bot fills at the close of the candle it decides on.

    Raises
    ------
    ConfigError
        ``price="next_open"``.
    """
    if options.price != "close":
        raise ConfigError("a paper bot fills at the close of the candle it decides on",
                          hint="use price 'close' for bots")


class PaperBroker:
    """Turns one candle's signals into fills on an :class:`Account` (pure, no I/O).

    Parameters
    ----------
    options
        The bot's trading options (fees, slippage, sizing, direction, stop,
        target, trailing stop). A bot acts at the candle's close: ``price``
        must be ``"close"``.

    Raises
    ------
    ConfigError
        ``price="next_open"`` (a bot fills at the close of the candle it decided on).
    """

    def __init__(self, options: TradingOptions) -> None:
        check_fills_at_close(options)
        self.options = options
        self.direction = options.direction
        self._opts = options.kernel_options()
        self._fills = np.zeros((2, N_FILL))

    def flags(self, entry: bool, exit: bool, short_entry: bool | None = None,
              short_exit: bool | None = None) -> Flags:
        """How the engine reads one candle's signals for this broker's direction.

        ``short_entry``/``short_exit`` are None when the strategy does not
        produce them; then ``longshort`` reverses on ``exit``/``entry``.
        """
        return signal_flags(self.direction, entry, exit, short_entry, short_exit)

    def on_candle(self, account: Account, flags: Flags, candle: Sequence[float],
                  stop_price: float = math.nan, target_price: float = math.nan,
                  ) -> tuple[Account, list[Fill]]:
        """Resolve the live stop and target on ``candle`` (open, high, low, close), then
        act on ``flags`` at its close.

        ``stop_price``/``target_price`` are the strategy's levels for an entry
        on this candle (NaN: from the options).

        Returns
        -------
        (Account, list of Fill)
            The account after the candle and its fills, oldest first (at most two:
            a stop or target, then the close's order).
        """
        o, h, lo, c = candle_prices(candle)
        state = account.state.copy()
        use_levels = levels_on_nb(self._opts, not (math.isnan(stop_price)
                                                   and math.isnan(target_price)))
        n = bar_nb(state, o, h, lo, c, flags.long_entry, flags.long_exit, flags.short_entry,
                   flags.short_exit, float(stop_price), float(target_price), False, use_levels,
                   self._opts, self._fills)
        return self._after(account, state, n)

    def on_trades_candle(self, account: Account, flags: Flags, trades: Sequence[np.ndarray],
                         close: float, stop_price: float = math.nan,
                         target_price: float = math.nan) -> tuple[Account, list[Fill]]:
        """Resolve the live stop and target on a candle's market trades, then act on ``flags``
        at its ``close`` (the trades rule of :mod:`tcp_lab.execution.on_trades`).

        ``trades`` is ``(ts, price, amount)``: the candle's trades in time order
        (``ts`` in epoch microseconds), those after the previous candle's close.
        """
        if not (math.isfinite(close) and close > 0):
            raise StrategyError(f"paper broker: cannot fill at price {close!r}")
        state = account.state.copy()
        self._scan(state, trades)
        n = close_trades_bar_nb(state, float(close), flags.long_entry, flags.long_exit,
                                flags.short_entry, flags.short_exit, float(stop_price),
                                float(target_price), self._opts, self._fills)
        return self._after(account, state, n)

    def scan_trades(self, account: Account, trades: Sequence[np.ndarray]) -> Account:
        """The account after its live stop and target met ``trades`` (the first trades of a
        candle, in time order), before that candle's close.

        An exit that triggered is under way (``exit_ready``, ``exit_reason``)
        and what it filled so far (``bar_exit_size``, ``bar_exit_value``) is
        booked only at the close: :meth:`on_trades_candle` is this scan on all
        the candle's trades, then the close. A bot uses it to see a stop or
        target hit while the candle is still forming.
        """
        state = account.state.copy()
        self._scan(state, trades)
        return Account(state)

    def _scan(self, state: np.ndarray, trades: Sequence[np.ndarray]) -> None:
        ts, price, amount = (np.ascontiguousarray(a, dtype=np.float64) for a in trades)
        if len(price):
            scan_trades_nb(state, price, ts, amount, 0, len(price), float(price.min()),
                           float(price.max()), self._opts)

    def _after(self, account: Account, state: np.ndarray, n: int) -> tuple[Account, list[Fill]]:
        if n == 0 and np.array_equal(state, account.state, equal_nan=True):
            return account, []  # nothing moved (the peak of a trailing stop may have)
        return Account(state), [_fill(self._fills[j]) for j in range(n)]


def _fill(row: np.ndarray) -> Fill:
    closed = row[_F["closed_size"]] > 0
    return Fill(side="buy" if row[_F["side"]] > 0 else "sell", price=float(row[_F["price"]]),
                amount=float(row[_F["size"]]), fee=float(row[_F["fees"]]),
                realized_pnl=float(row[_F["pnl"]]) if closed else None,
                reason=REASONS[int(row[_F["reason"]])])
