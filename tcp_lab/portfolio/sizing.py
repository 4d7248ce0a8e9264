"""Position sizing of a portfolio: how much of the shared cash an entry may use.

=================  ==========================================================
``"all_in"``       the engine's default: all of the cash available at the
                   entry (``run_backtest``'s ``size=1.0, size_type="percent"``)
``"fixed_value"``  ``size`` in quote currency per entry (``size_type="value"``)
``"fixed_fraction"`` ``size`` (0 < size <= 1) of the portfolio equity before the
                   symbol's bar, per entry
``"equal"``        equity / ``max_positions`` per entry (equity / number of
                   symbols without a cap)
=================  ==========================================================

"The equity before the symbol's bar" is the cash plus every position at its symbol's
latest close: the closes of this close time with ``price="close"``, the closes before it
with ``price="next_open"`` (the bar's own close is not known at its open).

An entry that the cash cannot fully fund buys what the cash allows (the
engine's rule, as in ``run_backtest``); with no cash left it is skipped and
recorded (``result.skipped``, reason ``"no_cash"``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from tcp_lab.errors import ConfigError
from tcp_lab.portfolio.driver import SIZE_EQUITY_FRACTION, SIZE_STATIC

__all__ = ["SIZINGS", "Sizing", "parse_sizing"]

SIZINGS = ("all_in", "fixed_value", "fixed_fraction", "equal")


@dataclass(frozen=True)
class Sizing:
    """A checked sizing: the engine's size options and the driver's mode."""

    name: str
    size: float  # TradingOptions.size
    size_type: str  # TradingOptions.size_type
    mode: int  # driver mode
    fraction: float  # of equity per entry (SIZE_EQUITY_FRACTION)


def parse_sizing(sizing: str, size: float | None, max_positions: int | None,
                 n_symbols: int) -> Sizing:
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
        return Sizing(sizing, 1.0, "value", SIZE_EQUITY_FRACTION, 1.0 / k)
    if sizing == "fixed_value":
        if not number:
            raise ConfigError(f"{owner}: sizing='fixed_value' needs size= a positive quote "
                              f"amount per entry, got size={size!r}", hint="e.g. size=1_000")
        return Sizing(sizing, float(size), "value", SIZE_STATIC, math.nan)
    if not number or size > 1:
        raise ConfigError(f"{owner}: sizing='fixed_fraction' needs size= a fraction of equity "
                          f"in (0, 1], got size={size!r}", hint="e.g. size=0.1 for 10 %")
    return Sizing(sizing, 1.0, "value", SIZE_EQUITY_FRACTION, float(size))
