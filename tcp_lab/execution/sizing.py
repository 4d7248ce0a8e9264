"""Position sizing of a portfolio: how much of the shared cash an entry may use.

=========================  ========================================================
``"all_in"``               the engine's default: all of the cash available at a long
                           entry (``run_backtest``'s ``size=1.0, size_type="percent"``),
                           all of the free cash at a short entry
``"fixed_value"``          ``size`` in quote currency per entry (``size_type="value"``)
``"fixed_fraction"``       ``size`` (0 < size <= leverage) of the portfolio equity
                           before the symbol's bar, per entry
``"equal"``                leverage * equity / ``max_positions`` per entry (/ number
                           of symbols without a cap)
``"risk_percent"``         ``size`` (0 < size <= 1) of the equity is what the entry
                           loses if its stop is hit: it trades ``size * equity /
                           distance``, where distance is the stop's share of the price
                           (the strategy's ``stop_price`` for that entry, else
                           ``stop_loss``); needs one of them
``"volatility_target"``    ``size`` is an annual volatility (0.2 = 20 %): the entry trades
                           ``size / sigma`` of the equity (at most ``leverage`` times
                           it), sigma the symbol's annualised volatility of log
                           returns over the last ``vol_window`` candles known at the
                           order
=========================  ========================================================

A value is what a long entry buys and what a short entry sells; the new side of a
reversal (``direction="longshort"``) is sized the same way. "The equity before the
symbol's bar" is the cash plus every position (a short negative) at its symbol's latest
close: the closes of this close time with ``price="close"``, the closes before it with
``price="next_open"`` (the bar's own close is not known at its open).

An entry that the cash cannot fully fund buys what the cash allows (the
engine's rule, as in ``run_backtest``); with no cash left it is skipped and
recorded (``result.skipped``, reason ``"no_cash"``). Risk-percent skips an entry
without a stop on its losing side (below a long's price, above a short's: distance
``(price - stop) / price`` for a long, ``(stop - price) / price`` for a short; reason
``"no_stop"``), volatility-target one whose volatility is not known yet (the first
``vol_window`` candles: ``"no_volatility"``). A reversal whose new side cannot be
sized that way only closes.

Shorts use vectorbt's accounting with ``cash_sharing=True`` and without ``lock_cash``
(the engine's, :mod:`tcp_lab.execution.account`): the portfolio keeps one cash and
one free cash. A short sale adds its proceeds to the cash and takes twice its value
(less the proceeds) from the free cash; covering gives that back. An all-in short sells
what the free cash allows (``"no_cash"`` when there is none); a short of a value
(fixed value, a fraction of equity) is not limited by it; a long buys with the cash,
which holds the proceeds of the open shorts. So without margin rules the gross
exposure can exceed the equity (an all-in short, then an all-in long of another symbol:
three times it); keep sizes at fractions whose sum stays below 1 to trade unlevered.
Covering a short, by signal or stop, buys at most what the cash allows.

Risk-percent and volatility-target sizes are fractions of equity like fixed
fraction: a long entry the cash cannot fund buys what the cash allows.

With ``leverage`` above 1 (``run_portfolio(leverage=, maintenance_margin=)``) "the
cash" above is the cash plus the credit: up to ``leverage - 1`` times the equity may
be borrowed at each entry, so ``"all_in"`` holds up to ``leverage`` times the equity;
the account is liquidated when its equity falls below the maintenance margin of its
positions (:mod:`tcp_lab.execution.portfolio`). The risk
is measured from the bar's price (the close, or the open with
``price="next_open"``) before slippage and fees; the fees add to the loss at the
stop.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tcp_lab.errors import ConfigError
from tcp_lab.execution.portfolio import SIZE_EQUITY_FRACTION, SIZE_RISK, SIZE_STATIC

__all__ = ["SIZINGS", "VOL_WINDOW", "Sizing", "parse_sizing", "check_vol_window",
           "volatility_fraction"]

SIZINGS = ("all_in", "fixed_value", "fixed_fraction", "equal", "risk_percent",
           "volatility_target")
#: Candles of the volatility estimate of ``"volatility_target"`` unless ``vol_window=``.
VOL_WINDOW = 30


@dataclass(frozen=True)
class Sizing:
    """A checked sizing: the engine's size options and the driver's mode."""

    name: str
    size: float  # TradingOptions.size
    size_type: str  # TradingOptions.size_type
    mode: int  # driver mode
    fraction: float  # of equity per entry (SIZE_EQUITY_FRACTION), risked (SIZE_RISK),
    # or the annual volatility target ("volatility_target": per entry, see run_portfolio)


def parse_sizing(sizing: str, size: float | None, max_positions: int | None,
                 n_symbols: int, *, leverage: float = 1.0) -> Sizing:
    """Check ``sizing``/``size`` and turn them into a :class:`Sizing`.

    Raises
    ------
    ConfigError
        Unknown sizing (with a did-you-mean), or a ``size`` missing, out of
        range or given where the sizing takes none.
    """
    owner = "run_portfolio"
    if sizing not in SIZINGS:
        close = difflib.get_close_matches(str(sizing), SIZINGS, n=1)
        raise ConfigError(f"{owner}: unknown sizing={sizing!r}, expected one of {SIZINGS}",
                          hint=f"did you mean {close[0]!r}?" if close else
                          "e.g. sizing='fixed_value', size=1_000")
    number = (isinstance(size, int | float) and not isinstance(size, bool)
              and 0 < size < math.inf)
    if sizing in ("all_in", "equal"):
        if size is not None:
            raise ConfigError(f"{owner}: sizing={sizing!r} takes no size (got size={size!r})",
                              hint="use sizing='fixed_value' or 'fixed_fraction' with size=")
        if sizing == "all_in":
            return Sizing(sizing, 1.0, "percent", SIZE_STATIC, math.nan)
        k = max_positions if max_positions is not None else n_symbols
        return Sizing(sizing, 1.0, "value", SIZE_EQUITY_FRACTION, leverage / k)
    if sizing == "fixed_value":
        if not number:
            raise ConfigError(f"{owner}: sizing='fixed_value' needs size= a positive quote "
                              f"amount per entry, got size={size!r}", hint="e.g. size=1_000")
        return Sizing(sizing, float(size), "value", SIZE_STATIC, math.nan)
    if sizing == "volatility_target":
        if not number:
            raise ConfigError(f"{owner}: sizing='volatility_target' needs size= a positive "
                              f"annual volatility, got size={size!r}",
                              hint="e.g. size=0.2 for 20 % a year")
        return Sizing(sizing, 1.0, "value", SIZE_EQUITY_FRACTION, float(size))
    what = "of equity" if sizing == "fixed_fraction" else "of equity to risk per entry"
    top = leverage if sizing == "fixed_fraction" else 1.0  # a fraction of the buying power
    if not number or size > top:
        raise ConfigError(f"{owner}: sizing={sizing!r} needs size= a fraction {what} "
                          f"in (0, {top:g}], got size={size!r}",
                          hint="e.g. size=0.1 for 10 %" if sizing == "fixed_fraction"
                          else "e.g. size=0.01 to lose 1 % of equity at the stop")
    mode = SIZE_EQUITY_FRACTION if sizing == "fixed_fraction" else SIZE_RISK
    return Sizing(sizing, 1.0, "value", mode, float(size))


def check_vol_window(vol_window: int | None, sizing: str) -> int:
    """The volatility window of ``sizing`` (``VOL_WINDOW`` when None).

    Raises
    ------
    ConfigError
        ``vol_window`` given with another sizing, or not a whole number >= 2.
    """
    owner = "run_portfolio"
    if vol_window is None:
        return VOL_WINDOW
    if sizing != "volatility_target":
        raise ConfigError(f"{owner}: vol_window= is an option of sizing='volatility_target', "
                          f"not of sizing={sizing!r}", hint="drop vol_window=")
    if isinstance(vol_window, bool) or not isinstance(vol_window, int) or vol_window < 2:
        raise ConfigError(f"{owner}: vol_window={vol_window!r}, expected a whole number of "
                          "candles >= 2", hint="e.g. vol_window=30")
    return vol_window


def volatility_fraction(close: np.ndarray, target: float, window: int, per_year: float,
                        cap: float = 1.0) -> np.ndarray:
    """Share of equity per entry for a volatility target, at each candle of one symbol.

    ``target / sigma`` (at most ``cap``, the leverage), sigma the annualised standard
    deviation (``ddof=1``) of the log returns of the last ``window`` candles up to and
    including each one; NaN for the first ``window`` candles (not known yet); all of
    ``cap`` on a flat stretch (sigma 0). Each value is computed from its own window
    alone (two-pass, no running sums), so a bot computing it on its trailing window
    gets the backtest's value bit for bit.

    >>> volatility_fraction(np.array([100.0, 101.0, 100.0, 102.0]), 0.2, 2, 365.0).round(4)
    array([   nan,    nan, 0.7439, 0.4976])
    """
    close = np.asarray(close, dtype=np.float64)
    out = np.full(len(close), np.nan)
    if len(close) <= window:
        return out
    returns = np.diff(np.log(close))
    sigma = sliding_window_view(returns, window).std(axis=1, ddof=1) * math.sqrt(per_year)
    with np.errstate(divide="ignore"):  # a flat stretch: no volatility, all of the cap
        out[window:] = np.minimum(target / sigma, cap)
    return out
