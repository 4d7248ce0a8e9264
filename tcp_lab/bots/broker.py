"""The paper broker: pure logic from a candle's signal flags to a virtual fill.

This module decides and fills *virtual* orders only. There is no code path
that places an order on an exchange: the bot package never imports an
exchange client, and a :class:`Fill` is nothing but numbers written to the
store.

The fill model is the backtest's, rule for rule, so that a candle history
replayed through a bot gives exactly the fills of
:func:`tcp_lab.backtest.run_backtest` (``price="close"``): vectorbt's
``Portfolio.from_signals`` with its defaults (no accumulation, conflicting
signals ignored, opposite entries reverse, ``min_size`` 1e-8, partial fills
allowed, no cash locking) and its float tolerances. Concretely, at the
candle's close ``c``:

- a buy fills at ``c * (1 + slippage)``, a sell at ``c * (1 - slippage)``;
- the fee is ``fee * amount * fill_price``;
- ``percent`` sizing spends ``size * cash`` including the fee
  (``amount = size * cash / (1 + fee) / fill_price``); ``value`` buys
  ``size / c`` units; ``amount`` buys ``size`` units (less if cash is short);
- an exit sells the whole position; a reversal (``longshort``) closes it and
  opens the opposite one in one fill;
- realised P&L follows vectorbt's exit trades: the closed size times the
  price difference, minus the entry fees of that size and the exit fees.

>>> b = PaperBroker(fee=0.001, slippage=0.0, size=1.0, size_type="percent", direction="long")
>>> acct, fill = b.on_signal(Account.opening(1000.0), Flags(long_entry=True), price=100.0)
>>> round(fill.amount, 6), fill.side, acct.cash
(9.99001, 'buy', 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from tcp_lab.errors import ConfigError, StrategyError

__all__ = ["Account", "Flags", "Fill", "PaperBroker", "SIZE_TYPES", "DIRECTIONS"]

SIZE_TYPES = ("percent", "value", "amount")
DIRECTIONS = ("long", "longshort")

# vectorbt's float tolerances (vectorbt.utils.math_) and default minimum order size.
_REL_TOL = 1e-9
_ABS_TOL = 1e-12
_MIN_SIZE = 1e-8

# Order directions (vectorbt's Direction enum order).
_LONG_ONLY, _SHORT_ONLY, _BOTH = 0, 1, 2
_INF = math.inf


def _is_close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


def _is_close_or_less(a: float, b: float) -> bool:
    return True if _is_close(a, b) else a < b


def _is_less(a: float, b: float) -> bool:
    return False if _is_close(a, b) else a < b


def _sign(x: float) -> float:
    return 0.0 if x == 0 else math.copysign(1.0, x)


def _add(a: float, b: float) -> float:
    """``a + b`` with vectorbt's snap to exactly zero."""
    if _sign(a) != _sign(b):
        zero = _is_close(abs(a), abs(b))
    else:
        zero = _is_close(a + b, 0.0)
    return 0.0 if zero else a + b


def _snap(x: float) -> float:
    return 0.0 if _is_close(x, 0.0) else x


@dataclass(frozen=True)
class Flags:
    """The four signals of one candle, as the simulation reads them."""

    long_entry: bool = False
    long_exit: bool = False
    short_entry: bool = False
    short_exit: bool = False


@dataclass(frozen=True)
class Fill:
    """One virtual execution at a candle's close.

    ``amount`` is positive; ``side`` says the direction. ``realized_pnl`` is
    the P&L of the part of a position this fill closed (None when it only
    opened one).
    """

    side: str
    price: float
    amount: float
    fee: float
    realized_pnl: float | None


@dataclass(frozen=True)
class Account:
    """A paper account: cash, position and the open trade's bookkeeping.

    ``debt`` and ``free_cash`` follow vectorbt's short-selling accounting;
    ``entry_*`` are the open trade's size, gross entry value and entry fees
    (for realised P&L); ``entry_side`` is +1 long, -1 short, 0 flat.
    """

    cash: float
    position: float = 0.0
    debt: float = 0.0
    free_cash: float = 0.0
    entry_size: float = 0.0
    entry_gross: float = 0.0
    entry_fees: float = 0.0
    entry_side: int = 0

    @classmethod
    def opening(cls, cash: float) -> Account:
        """A fresh account holding ``cash`` and nothing else."""
        return cls(cash=float(cash), free_cash=float(cash))

    def equity(self, price: float) -> float:
        """Cash plus the position marked at ``price``."""
        return self.cash + self.position * price

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats round-trip exactly through JSON)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Account:
        """The account :meth:`to_dict` wrote."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields = {k: int(v) if k == "entry_side" else float(v) for k, v in fields.items()}
        return cls(**fields)


@dataclass(frozen=True)
class _Exec:
    size: float
    price: float
    fees: float
    buy: bool


class PaperBroker:
    """Turns signal flags into fills on an :class:`Account` (pure, no I/O).

    Parameters
    ----------
    fee, slippage
        Fractions per fill.
    size, size_type
        Position sizing (see the module docstring).
    direction
        ``"long"`` or ``"longshort"``.

    Raises
    ------
    ConfigError
        The same invalid combinations :func:`run_backtest` rejects.
    """

    def __init__(self, *, fee: float, slippage: float, size: float, size_type: str,
                 direction: str) -> None:
        if size_type not in SIZE_TYPES:
            raise ConfigError(f"size_type={size_type!r}, expected one of {SIZE_TYPES}")
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction={direction!r}, expected one of {DIRECTIONS}")
        if not (0 <= fee < 1 and 0 <= slippage < 1) or not size > 0:
            raise ConfigError(f"fee={fee!r}, slippage={slippage!r}, size={size!r} out of range")
        if size_type == "percent" and size < 1 and direction == "longshort":
            raise ConfigError("size < 1 of equity cannot reverse positions",
                              hint="use size 1.0, size_type 'value', or direction 'long'")
        self.fee = float(fee)
        self.slippage = float(slippage)
        self.direction = direction
        # Same mapping as the backtest: all-in percent is an infinite amount.
        if size_type == "percent" and size >= 1:
            self._size, self._size_type = _INF, "amount"
        else:
            self._size, self._size_type = float(size), size_type

    # -- signals -> flags ------------------------------------------------------------------
    def flags(self, entry: bool, exit: bool, short_entry: bool | None = None,
              short_exit: bool | None = None) -> Flags:
        """How the simulation reads one candle's signals for this broker's direction.

        ``short_entry``/``short_exit`` are None when the strategy does not
        produce them; then ``longshort`` reverses on ``exit``/``entry``.
        """
        if self.direction == "long":
            return Flags(long_entry=entry, long_exit=exit)
        if short_entry is None and short_exit is None:
            return Flags(long_entry=entry, short_entry=exit)
        return Flags(entry, exit, bool(short_entry), bool(short_exit))

    # -- one candle --------------------------------------------------------------------------
    def on_signal(self, account: Account, flags: Flags,
                  price: float) -> tuple[Account, Fill | None]:
        """Apply one candle's flags at its close ``price``.

        Returns
        -------
        (Account, Fill or None)
            The account after the candle and the fill, if an order filled.
        """
        if not (math.isfinite(price) and price > 0):
            raise StrategyError(f"paper broker: cannot fill at price {price!r}")
        order = self._order(account.position, flags, price)
        if order is None:
            return account, None
        size, size_type, direction = order
        state, result = self._execute(account, size, size_type, direction, price)
        if result is None:
            return account, None
        return self._book(state, result)

    def _order(self, position: float, f: Flags, price: float) -> tuple[float, str, int] | None:
        """vectorbt's signal resolution and ``signals_to_size`` (accumulation off)."""
        le, lx, se, sx = f.long_entry, f.long_exit, f.short_entry, f.short_exit
        if le or se:
            if le and lx:  # conflicts are ignored
                le = lx = False
            if se and sx:
                se = sx = False
            if le and se:
                le = se = False
        size, size_type = self._size, self._size_type

        def reverse(pos: float) -> tuple[float, str, int]:
            if size_type == "percent":  # rejected in __init__; kept for safety
                raise ConfigError("percent sizing does not support position reversal")
            extra = size / price if size_type == "value" else size
            return pos + extra, "amount", _BOTH

        if position > 0:
            if se:
                sz, st, d = reverse(abs(position))
                return -sz, st, d
            if lx:
                return -abs(position), "amount", _LONG_ONLY
            return None
        if position < 0:
            if le:
                return reverse(abs(position))
            if sx:
                return abs(position), "amount", _SHORT_ONLY
            return None
        if le:
            return size, size_type, _BOTH
        if se:
            return -size, size_type, _BOTH
        return None

    def _execute(self, a: Account, size: float, size_type: str, direction: int,
                 price: float) -> tuple[Account, _Exec | None]:
        """vectorbt's ``execute_order_nb`` for the options the bots use."""
        cash, position = _snap(a.cash), _snap(a.position)
        debt, free_cash = _snap(a.debt), _snap(a.free_cash)
        if size_type == "value":
            size, size_type = size / price, "amount"
        if size_type == "amount" and direction != _LONG_ONLY and size < 0 and math.isinf(size):
            size, size_type = -1.0, "percent"
        percent = math.nan
        if size_type == "percent":
            percent, size = abs(size), _sign(size) * _INF
        state = replace(a, cash=cash, position=position, debt=debt, free_cash=free_cash)
        if size > 0:
            return self._buy(state, size, price, direction, percent)
        return self._sell(state, -size, price, direction, percent)

    def _buy(self, a: Account, size: float, price: float, direction: int,
             percent: float) -> tuple[Account, _Exec | None]:
        fees = self.fee
        adj_price = price * (1 + self.slippage)
        cash_limit = a.cash
        if not math.isnan(percent):
            cash_limit = min(cash_limit, percent * cash_limit)
        if direction in (_LONG_ONLY, _BOTH):
            if cash_limit == 0:
                return a, None
        elif a.position == 0:
            return a, None
        adj_size = min(-a.position, size) if direction == _SHORT_ONLY else size
        if adj_size == 0:
            return a, None
        req_cash = adj_size * adj_price
        req_fees = req_cash * fees + 0.0
        total = req_cash + req_fees
        if _is_close_or_less(total, cash_limit):
            final_size, fees_paid, final_req = adj_size, req_fees, total
        else:
            max_req = _add(cash_limit, -0.0) / (1 + fees)
            if max_req <= 0:
                return a, None
            final_size = max_req / adj_price
            fees_paid = cash_limit - max_req
            final_req = cash_limit
        if _is_close(adj_size, 0) or _is_less(final_size, _MIN_SIZE):
            return a, None
        new_cash = _add(a.cash, -final_req)
        new_position = _add(a.position, final_size)
        if a.position < 0:
            short_size = final_size if new_position < 0 else abs(a.position)
            debt_diff = short_size * (a.debt / abs(a.position))
            new_debt = _add(a.debt, -debt_diff)
            new_free = _add(a.free_cash + 2 * debt_diff, -final_req)
        else:
            new_debt, new_free = a.debt, _add(a.free_cash, -final_req)
        state = replace(a, cash=new_cash, position=new_position, debt=new_debt, free_cash=new_free)
        return state, _Exec(final_size, adj_price, fees_paid, True)

    def _sell(self, a: Account, size: float, price: float, direction: int,
              percent: float) -> tuple[Account, _Exec | None]:
        fees = self.fee
        adj_price = price * (1 - self.slippage)
        if direction == _LONG_ONLY:
            size_limit = min(a.position, size)
        elif math.isinf(size) and not math.isnan(percent):
            long_size = max(a.position, 0.0)
            total_free = _add(a.free_cash, long_size * adj_price * (1 - fees))
            if total_free <= 0:
                if a.position <= 0:
                    return a, None
                size_limit = long_size
            else:
                max_short = _add(total_free, -0.0) / (adj_price * (1 + fees))
                size_limit = _add(long_size, max_short)
                if size_limit <= 0:
                    return a, None
        else:
            size_limit = size
        if not math.isnan(percent):
            size_limit = percent * size_limit
        if direction in (_SHORT_ONLY, _BOTH):
            if math.isinf(size_limit):
                raise StrategyError("paper broker: attempt to go short infinitely")
        elif a.position == 0:
            return a, None
        if _is_close(size_limit, 0) or _is_less(size_limit, _MIN_SIZE):
            return a, None
        acq = size_limit * adj_price
        fees_paid = acq * fees + 0.0
        final_acq = _add(acq, -fees_paid)
        if final_acq < 0:
            return a, None
        new_cash = a.cash + final_acq
        new_position = _add(a.position, -size_limit)
        if new_position < 0:
            short_size = size_limit if a.position < 0 else abs(new_position)
            short_value = short_size * adj_price
            new_debt = a.debt + short_value
            new_free = _add(a.free_cash, _add(final_acq, -2 * short_value))
        else:
            new_debt, new_free = a.debt, a.free_cash + final_acq
        state = replace(a, cash=new_cash, position=new_position, debt=new_debt, free_cash=new_free)
        return state, _Exec(size_limit, adj_price, fees_paid, False)

    # -- trade bookkeeping (vectorbt's exit trades) -----------------------------------------
    @staticmethod
    def _book(a: Account, e: _Exec) -> tuple[Account, Fill]:
        side = 1 if e.buy else -1
        size_sum, gross, fees_sum = a.entry_size, a.entry_gross, a.entry_fees
        direction = a.entry_side
        pnl: float | None = None
        if direction == 0:
            direction, size_sum, gross, fees_sum = side, 0.0, 0.0, 0.0
        if side == direction:
            size_sum += e.size
            gross += e.size * e.price
            fees_sum += e.fees
        elif _is_close_or_less(e.size, size_sum):
            exit_size = size_sum if _is_close(e.size, size_sum) else e.size
            pnl = _trade_pnl(exit_size, gross / size_sum, exit_size / size_sum * fees_sum,
                             e.price, e.fees, direction)
            if _is_close(e.size, size_sum):
                direction, size_sum, gross, fees_sum = 0, 0.0, 0.0, 0.0
            else:
                fraction = (size_sum - e.size) / size_sum
                size_sum, gross, fees_sum = size_sum * fraction, gross * fraction, \
                    fees_sum * fraction
        else:  # reversal: close the open trade, open the opposite one with the rest
            closed_fees = size_sum / e.size * e.fees
            pnl = _trade_pnl(size_sum, gross / size_sum, fees_sum, e.price, closed_fees,
                             direction)
            size_sum = e.size - size_sum
            gross = size_sum * e.price
            fees_sum = e.fees - closed_fees
            direction = -direction
        state = replace(a, entry_size=size_sum, entry_gross=gross, entry_fees=fees_sum,
                        entry_side=direction)
        fill = Fill(side="buy" if e.buy else "sell", price=e.price, amount=e.size, fee=e.fees,
                    realized_pnl=pnl)
        return state, fill


def _trade_pnl(size: float, entry_price: float, entry_fees: float, exit_price: float,
               exit_fees: float, direction: int) -> float:
    diff = _add(size * exit_price, -(size * entry_price))
    if diff != 0 and direction < 0:
        diff *= -1
    return diff - entry_fees - exit_fees
