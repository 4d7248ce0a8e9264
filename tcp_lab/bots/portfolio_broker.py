"""The portfolio paper broker: one close time of several symbols to virtual fills.

What :class:`~tcp_lab.bots.broker.PaperBroker` is to a bot of one symbol, for a
portfolio bot: there is no fill logic here. Each close time goes through the
portfolio driver (:func:`~tcp_lab.execution.portfolio.run_portfolio_nb`, the loop
:func:`tcp_lab.run_portfolio` runs over all close times) as a run of one row that
goes on from the account the last one left (its ``carry_*`` arguments). So a
history replayed through a portfolio bot gives exactly the portfolio backtest's
fills and equity (``price="close"``; stops and targets by the OHLC rule).

Paper trading only: a :class:`~tcp_lab.bots.broker.Fill` is numbers in the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tcp_lab.bots.broker import Fill, Flags, candle_prices, check_fills_at_close
from tcp_lab.execution import REASONS, TradingOptions
from tcp_lab.execution.account import N_STATE, POSITION, open_account_nb
from tcp_lab.execution.portfolio import SKIP_REASONS, run_portfolio_nb
from tcp_lab.execution.sizing import Sizing

__all__ = ["PortfolioAccount", "SymbolBar", "PortfolioStep", "PortfolioBroker", "symbol_fills",
           "stored_positions"]

_ORDER_SIDE, _ORDER_SIZE, _ORDER_PRICE, _ORDER_FEES, _ORDER_REASON = 1, 2, 3, 4, 5
_TRIP_PNL = 7


@dataclass(frozen=True, eq=False)
class PortfolioAccount:
    """The portfolio's account between close times (immutable).

    ``states`` holds each symbol's engine state (``(S, N_STATE)``), ``book`` each
    symbol's last close, net cash flow and time positions (``(S, 4)``), ``acct``
    the shared cash, free cash and whether it was liquidated to nothing, ``steps``
    the close times processed (the time position of the next one).
    """

    states: np.ndarray
    book: np.ndarray
    acct: np.ndarray
    steps: int = 0

    def __post_init__(self) -> None:
        for a in (self.states, self.book, self.acct):
            a.flags.writeable = False

    @classmethod
    def opening(cls, n_symbols: int, cash: float) -> PortfolioAccount:
        """A fresh account of ``n_symbols`` symbols holding ``cash`` and nothing else."""
        states = np.empty((n_symbols, N_STATE))
        for s in range(n_symbols):
            open_account_nb(states[s], float(cash))
        book = np.zeros((n_symbols, 4))
        book[:, 2:] = -1.0
        return cls(states, book, np.array([float(cash), float(cash), 0.0]))

    @property
    def cash(self) -> float:
        """The shared cash (negative while borrowed)."""
        return float(self.acct[0])

    @property
    def positions(self) -> np.ndarray:
        """Each symbol's position (base units; negative: short)."""
        return self.states[:, POSITION].copy()

    @property
    def marks(self) -> np.ndarray:
        """Each symbol's last close (0 before its first candle)."""
        return self.book[:, 0].copy()

    @property
    def equity(self) -> float:
        """Cash plus every position at its symbol's last close."""
        return self.cash + float(np.dot(self.states[:, POSITION], self.book[:, 0]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortfolioAccount) and self.steps == other.steps and all(
            np.array_equal(a, b, equal_nan=True) for a, b in (
                (self.states, other.states), (self.book, other.book), (self.acct, other.acct)))

    def __hash__(self) -> int:
        return hash((self.states.tobytes(), self.book.tobytes(), self.acct.tobytes()))

    def __repr__(self) -> str:
        return f"PortfolioAccount(cash={self.cash!r}, positions={self.positions.tolist()!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats round-trip exactly; NaN is None)."""
        def plain(a: np.ndarray) -> Any:
            return [None if isinstance(v, float) and math.isnan(v) else v for v in a.tolist()] \
                if a.ndim == 1 else [plain(row) for row in a]

        return {"states": plain(self.states), "book": plain(self.book),
                "acct": plain(self.acct), "steps": self.steps}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON (orjson writes NaN as null).

        Raises
        ------
        ValueError
            An infinite value (a bug upstream: JSON has no infinity).
        """
        if any(np.isinf(a).any() for a in (self.states, self.book, self.acct)):
            raise ValueError(f"an infinite value in {self!r}")
        return orjson.dumps({"acct": self.acct.tolist(), "book": self.book.tolist(),
                             "states": self.states.tolist(), "steps": self.steps}).decode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_symbols: int) -> PortfolioAccount:
        """The account :meth:`to_dict` (or :meth:`to_json`) wrote, for ``n_symbols`` symbols.

        Raises
        ------
        ValueError
            The stored account has another number of symbols or fields.
        """
        def array(key: str, shape: tuple[int, ...]) -> np.ndarray:
            a = np.array(data[key], dtype=np.float64)  # None -> NaN
            if a.shape != shape:
                raise ValueError(f"stored portfolio account: {key} has shape {a.shape}, "
                                 f"expected {shape}")
            return a

        return cls(array("states", (n_symbols, N_STATE)), array("book", (n_symbols, 4)),
                   array("acct", (3,)), int(data.get("steps", 0)))


@dataclass(frozen=True)
class SymbolBar:
    """One symbol's candle at a close time and its strategy's decision on it."""

    open: float
    high: float
    low: float
    close: float
    flags: Flags
    stop_price: float = math.nan
    target_price: float = math.nan
    has_levels: bool = False
    confidence: float | None = None
    fraction: float = math.nan  # a volatility target's share of equity (NaN: unknown)


@dataclass(frozen=True)
class PortfolioStep:
    """What one close time did to the account."""

    account: PortfolioAccount
    fills: list[tuple[int, Fill]]  # (symbol position, fill), in the order they filled
    skipped: list[tuple[int, str]]  # (symbol position, reason) of entries not taken
    equity: float


class PortfolioBroker:
    """Turns one close time's decisions over several symbols into fills (pure, no I/O).

    Parameters
    ----------
    options
        Fees, slippage, direction, stops (size and size type: the sizing's); a bot
        acts at the close: ``price`` must be ``"close"``.
    sizing
        :func:`~tcp_lab.execution.sizing.parse_sizing`'s result.
    n_symbols, max_positions, leverage, maintenance_margin
        As for :func:`tcp_lab.run_portfolio`.
    """

    def __init__(self, options: TradingOptions, sizing: Sizing, n_symbols: int, *,
                 max_positions: int | None = None, leverage: float = 1.0,
                 maintenance_margin: float = 0.005) -> None:
        check_fills_at_close(options)
        self.options, self.sizing, self.n_symbols = options, sizing, int(n_symbols)
        self._opts = options.kernel_options()
        self._max = self.n_symbols if max_positions is None else int(max_positions)
        self._credit = float(leverage) - 1.0
        self._maintenance = float(maintenance_margin)
        self._static = np.array([[sizing.fraction if sizing.mode else 0.0]])

    def on_close_time(self, account: PortfolioAccount,
                      bars: Mapping[int, SymbolBar]) -> PortfolioStep:
        """Run one close time: ``bars`` maps each symbol position with a candle at it to
        that candle and decision (a symbol without one keeps its position, valued at
        its last close)."""
        n = self.n_symbols
        ohlc = np.zeros((4, 1, n))
        has_bar = np.zeros((1, n), dtype=bool)
        flags = np.zeros((4, 1, n), dtype=bool)
        has_levels = np.zeros(n, dtype=bool)
        stop, target = np.full((1, n), np.nan), np.full((1, n), np.nan)
        confidence = np.full((1, n), -np.inf)
        fraction = np.full((1, n), np.nan)
        for s, bar in bars.items():
            ohlc[:, 0, s] = candle_prices((bar.open, bar.high, bar.low, bar.close))
            has_bar[0, s] = True
            f = bar.flags
            flags[:, 0, s] = (f.long_entry, f.long_exit, f.short_entry, f.short_exit)
            has_levels[s] = bar.has_levels
            stop[0, s], target[0, s] = bar.stop_price, bar.target_price
            c = bar.confidence
            confidence[0, s] = -np.inf if c is None or math.isnan(c) else c
            fraction[0, s] = bar.fraction
        if not has_levels.any():
            stop = target = np.zeros((0, n))
        frac = fraction if self.sizing.name == "volatility_target" else self._static
        out = run_portfolio_nb(
            ohlc[0], ohlc[1], ohlc[2], ohlc[3], has_bar, flags[0], flags[1], flags[2], flags[3],
            stop, target, has_levels, confidence, False, self._opts, self.sizing.mode, frac,
            self._max, float(self.options.init_cash), self._credit, self._maintenance,
            account.states.copy(), account.book.copy(), account.acct.copy(), account.steps)
        equity, orders, order_sym, trips = out[0], out[5], out[6], out[7]
        skipped, states, book, acct, order_trip = out[9], out[10], out[12], out[13], out[14]
        fills = [(int(order_sym[k]), _fill(orders[k], trips, int(order_trip[k])))
                 for k in range(len(orders))]
        skips = [(int(row[1]), SKIP_REASONS[int(row[2])]) for row in skipped]
        after = PortfolioAccount(states, book, acct, account.steps + 1)
        return PortfolioStep(after, fills, skips, float(equity[0]))


def _fill(order: np.ndarray, trips: np.ndarray, trip: int) -> Fill:
    return Fill(side="buy" if order[_ORDER_SIDE] > 0 else "sell",
                price=float(order[_ORDER_PRICE]), amount=float(order[_ORDER_SIZE]),
                fee=float(order[_ORDER_FEES]),
                realized_pnl=float(trips[trip, _TRIP_PNL]) if trip >= 0 else None,
                reason=REASONS[int(order[_ORDER_REASON])])


def stored_positions(state: Mapping[str, Any]) -> tuple[float | None, dict[str, float]]:
    """Cash and position by symbol from a bot's stored state document (``bots.state``),
    of a bot of one symbol or of a portfolio bot (empty when it has no account yet)."""
    account, config = state.get("account") or {}, state.get("config") or {}
    if "states" in account:  # a portfolio bot: one engine state per symbol
        symbols = list(config.get("symbols") or [])
        rows = account["states"]
        if len(rows) != len(symbols):
            return float(account["acct"][0]), {}
        return float(account["acct"][0]), {
            s: float(row[POSITION] or 0.0) for s, row in zip(symbols, rows, strict=True)}
    if "cash" not in account:
        return None, {}
    return float(account["cash"]), {str(config.get("symbol", "?")): float(
        account.get("position") or 0.0)}


def symbol_fills(fills: Sequence[tuple[int, Fill]], symbols: Sequence[str]
                 ) -> list[dict[str, Any]]:
    """The fills as the store's rows (``symbol`` added), in the order they filled."""
    return [{"symbol": symbols[s], "side": f.side, "price": f.price, "amount": f.amount,
             "fee": f.fee, "realized_pnl": f.realized_pnl, "reason": f.reason}
            for s, f in fills]
