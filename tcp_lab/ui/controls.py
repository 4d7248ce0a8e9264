"""Widgets generated from a strategy's declared parameters.

One control per :class:`~tcp_lab.strategies.Parameter`, chosen by its
declaration:

=========================================  ==========================================
declaration                                control
=========================================  ==========================================
``choices``                                ``Dropdown``
``bool``                                   ``Checkbox``
``int`` with min, max, at most             ``IntSlider`` (step: the declared step or 1)
:data:`MAX_SLIDER_STEPS` steps apart
``float`` with min, max, at most           ``FloatSlider`` (step: the declared step or
:data:`MAX_SLIDER_STEPS` steps apart       1/100 of the range)
``int``/``float`` with a wider range       ``BoundedIntText``/``BoundedFloatText``
``int``/``float`` without bounds           ``IntText``/``FloatText``
``str``                                    ``Text``
=========================================  ==========================================

A slider over 100 000 values cannot be aimed, so wide ranges get a text box
that still enforces the bounds. Each control's tooltip is the parameter's doc
and allowed values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from tcp_lab.strategies import BaseStrategy, Parameter, get_strategy

__all__ = ["MAX_SLIDER_STEPS", "parameter_control", "parameter_controls", "control_values"]

#: Ranges with more steps than this get a text box instead of a slider.
MAX_SLIDER_STEPS = 1000
_INT_LIMIT = 2**53  # what a JavaScript number holds exactly
_FLOAT_LIMIT = 1e300  # finite: widget state travels as JSON, which has no infinity
_STYLE = {"description_width": "initial"}


def _steps(p: Parameter, step: float) -> float:
    return (float(p.max) - float(p.min)) / step if step > 0 else math.inf


def parameter_control(p: Parameter, value: Any = None) -> widgets.ValueWidget:
    """The control for one parameter, set to ``value`` (default: the parameter's default).

    Examples
    --------
    >>> from tcp_lab.strategies import Parameter
    >>> w = parameter_control(Parameter("k", float, 2.0, min=0.5, max=4.0, step=0.5))
    >>> type(w).__name__, w.value
    ('FloatSlider', 2.0)
    """
    value = p.default if value is None else value
    common: dict[str, Any] = {"description": p.name, "style": _STYLE,
                              "tooltip": f"{p.doc} ({p.describe()})" if p.doc else p.describe()}
    if p.choices is not None:
        return widgets.Dropdown(options=list(p.choices), value=value, **common)
    if p.type is bool:
        return widgets.Checkbox(value=bool(value), indent=False, **common)
    if p.type is str:
        return widgets.Text(value=str(value), **common)
    bounded = p.min is not None and p.max is not None
    if p.type is int:
        step = int(p.step or 1)
        if bounded and _steps(p, step) <= MAX_SLIDER_STEPS:
            return widgets.IntSlider(value=int(value), min=int(p.min), max=int(p.max), step=step,
                                     continuous_update=False, **common)
        if p.min is not None or p.max is not None:
            lo = int(p.min) if p.min is not None else -_INT_LIMIT
            hi = int(p.max) if p.max is not None else _INT_LIMIT
            return widgets.BoundedIntText(value=int(value), min=lo, max=hi, step=step, **common)
        return widgets.IntText(value=int(value), step=step, **common)
    step = float(p.step) if p.step else None
    if bounded:
        slider_step = step or (float(p.max) - float(p.min)) / 100
        if _steps(p, slider_step) <= MAX_SLIDER_STEPS:
            return widgets.FloatSlider(value=float(value), min=float(p.min), max=float(p.max),
                                       step=slider_step, continuous_update=False,
                                       readout_format=".4g", **common)
    if p.min is not None or p.max is not None:
        lo = float(p.min) if p.min is not None else -_FLOAT_LIMIT
        hi = float(p.max) if p.max is not None else _FLOAT_LIMIT
        return widgets.BoundedFloatText(value=float(value), min=lo, max=hi, step=step, **common)
    return widgets.FloatText(value=float(value), step=step, **common)


def parameter_controls(
    strategy: str | type[BaseStrategy] | BaseStrategy, values: Mapping[str, Any] | None = None,
) -> dict[str, widgets.ValueWidget]:
    """One control per declared parameter of ``strategy``, by name, in declaration order.

    Parameters
    ----------
    strategy
        A registry name, a strategy class or instance (an instance's values
        are the starting values).
    values
        Starting values for some parameters (default: their defaults).

    Raises
    ------
    StrategyError
        An unknown strategy name.

    Examples
    --------
    >>> {k: type(w).__name__ for k, w in parameter_controls("rsi_reversion").items()}
    {'period': 'BoundedIntText', 'lower': 'FloatSlider', 'upper': 'FloatSlider'}
    """
    if isinstance(strategy, BaseStrategy):
        cls: type[BaseStrategy] = type(strategy)
        start = dict(strategy.params) | dict(values or {})
    else:
        cls = strategy if isinstance(strategy, type) else type(get_strategy(strategy))
        start = dict(values or {})
    return {p.name: parameter_control(p, start.get(p.name)) for p in cls.parameters}


def control_values(controls: Mapping[str, widgets.ValueWidget]) -> dict[str, Any]:
    """The current value of each control, by parameter name."""
    return {name: w.value for name, w in controls.items()}
