"""Controls shared by the panels that run a strategy: the strategy picker, fees/slippage/cash."""

from __future__ import annotations

import ipywidgets as widgets

from tcp_lab.errors import StrategyError
from tcp_lab.strategies import get_strategy, list_strategies

__all__ = ["STYLE", "strategy_picker", "simulation_controls"]

#: Descriptions as wide as they need to be (no truncated labels).
STYLE = {"description_width": "initial"}


def strategy_picker(strategy: str, owner: str) -> widgets.Dropdown:
    """A dropdown of the registered strategies with ``strategy`` selected.

    Raises
    ------
    StrategyError
        An unknown name (with a did-you-mean), or a dotted path whose class is
        not registered (the picker lists registered ones only).
    """
    options = list_strategies()
    if strategy not in options:
        name = type(get_strategy(strategy)).name
        if name not in options:
            raise StrategyError(f"{owner}: strategy {strategy!r} is not registered",
                                hint="decorate its class with @register_strategy")
        strategy = name
    return widgets.Dropdown(options=options, value=strategy, description="strategy")


def simulation_controls(
    fees: float, slippage: float, init_cash: float,
) -> tuple[widgets.BoundedFloatText, widgets.BoundedFloatText, widgets.BoundedFloatText]:
    """The fees, slippage and initial cash boxes, in that order."""
    return (
        widgets.BoundedFloatText(value=fees, min=0.0, max=0.999, step=0.0005,
                                 description="fees", style=STYLE),
        widgets.BoundedFloatText(value=slippage, min=0.0, max=0.999, step=0.0005,
                                 description="slippage", style=STYLE),
        widgets.BoundedFloatText(value=init_cash, min=1e-9, max=1e15,
                                 description="init cash", style=STYLE),
    )
