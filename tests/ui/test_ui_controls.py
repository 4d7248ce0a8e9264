"""Controls generated from parameter declarations: widget kind, bounds, values."""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest

from tcp_lab.strategies import BaseStrategy, Parameter, get_strategy, list_strategies
from tcp_lab.ui.controls import (
    MAX_SLIDER_STEPS,
    control_values,
    parameter_control,
    parameter_controls,
)


@pytest.mark.parametrize("param, kind", [
    (Parameter("mode", str, "a", choices=("a", "b")), widgets.Dropdown),
    (Parameter("n", int, 2, choices=(1, 2, 3)), widgets.Dropdown),
    (Parameter("flag", bool, True), widgets.Checkbox),
    (Parameter("w", int, 20, min=2, max=200, step=2), widgets.IntSlider),
    (Parameter("k", float, 2.0, min=0.1, max=10.0, step=0.25), widgets.FloatSlider),
    (Parameter("q", float, 0.5, min=0.0, max=1.0), widgets.FloatSlider),
    (Parameter("w", int, 20, min=1, max=100_000, step=1), widgets.BoundedIntText),
    (Parameter("w", int, 20, min=1), widgets.BoundedIntText),
    (Parameter("x", float, 1e-3, min=0.0, max=1.0, step=1e-6), widgets.BoundedFloatText),
    (Parameter("x", float, 1.0), widgets.FloatText),
    (Parameter("n", int, 1), widgets.IntText),
    (Parameter("label", str, "hi"), widgets.Text),
])
def test_control_kind_follows_the_declaration(param, kind):
    w = parameter_control(param)
    assert type(w) is kind
    assert w.value == param.default
    assert w.description == param.name


def test_slider_bounds_and_step_come_from_the_declaration():
    w = parameter_control(Parameter("w", int, 20, min=2, max=200, step=2, doc="window"))
    assert (w.min, w.max, w.step) == (2, 200, 2)
    assert "window" in w.tooltip and "[2, 200]" in w.tooltip
    t = parameter_control(Parameter("w", int, 20, min=1, max=100_000))
    assert (t.min, t.max) == (1, 100_000)
    assert (100_000 - 1) > MAX_SLIDER_STEPS  # why it is a text box


def test_every_builtin_strategy_gets_a_control_per_parameter():
    for name in list_strategies():
        cls = type(get_strategy(name))
        controls = parameter_controls(name)
        assert list(controls) == [p.name for p in cls.parameters]
        assert get_strategy(name, control_values(controls)) == get_strategy(name)


def test_starting_values_from_an_instance_or_a_mapping():
    controls = parameter_controls(get_strategy("sma_cross", {"fast": 7, "slow": 40}))
    assert control_values(controls) == {"fast": 7, "slow": 40}
    controls = parameter_controls("sma_cross", {"slow": 99})
    assert control_values(controls) == {"fast": 10, "slow": 99}


def test_values_of_a_custom_strategy_round_trip():
    class Custom(BaseStrategy):
        name = "custom_ui_test"
        parameters = (
            Parameter("mode", str, "fast", choices=("fast", "slow")),
            Parameter("flag", bool, False),
            Parameter("k", float, 1.5, min=0.5, max=3.0, step=0.5),
        )

    controls = parameter_controls(Custom)
    controls["mode"].value = "slow"
    controls["flag"].value = True
    controls["k"].value = 2.5
    assert Custom(control_values(controls)).params == {"mode": "slow", "flag": True, "k": 2.5}


def test_plotly_figure_widget_can_be_built():
    """FigureWidget needs anywidget; the panels depend on it."""
    fig = go.FigureWidget(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    with fig.batch_update():
        fig.data[0].y = (5, 6)
    assert tuple(fig.data[0].y) == (5, 6)
    assert isinstance(fig, widgets.DOMWidget)
