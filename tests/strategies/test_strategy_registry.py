"""Finding strategies: registry names, dotted paths, JSON configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.strategies import (
    BaseStrategy,
    get_strategy,
    list_strategies,
    load_strategy_config,
    register_strategy,
    registry,
)

CONFIG = Path(__file__).parents[2] / "config" / "strategies"
BUILTINS = ["bollinger_breakout", "ema_cross", "macd", "rsi_reversion", "sma_cross"]


def test_builtins_are_listed():
    assert set(BUILTINS) <= set(list_strategies())


def test_unknown_name_suggests():
    with pytest.raises(StrategyError, match="'ema_crss'; did you mean 'ema_cross'"):
        get_strategy("ema_crss")


@pytest.mark.parametrize("path", ["peeking_strategies:AlwaysLong", "peeking_strategies.AlwaysLong"])
def test_dotted_path_loading(fixtures_on_path, path):
    s = get_strategy(path)
    assert type(s).__name__ == "AlwaysLong" and s.name == "always_long"
    assert "always_long" not in list_strategies()  # loading by path does not register


def test_dotted_path_errors(fixtures_on_path):
    with pytest.raises(StrategyError, match="cannot import module 'no_such_module'"):
        get_strategy("no_such_module:Thing")
    with pytest.raises(StrategyError, match="no attribute 'AlwaysLng'; did you mean 'AlwaysLong'"):
        get_strategy("peeking_strategies:AlwaysLng")
    with pytest.raises(StrategyError, match="expected a BaseStrategy subclass"):
        get_strategy("peeking_strategies:np")


def test_class_is_accepted():
    cls = type(get_strategy("sma_cross"))
    assert get_strategy(cls, {"fast": 3}).params["fast"] == 3


def test_register_strategy(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_strategy
    class Mine(BaseStrategy):
        name = "mine_for_test"

    assert "mine_for_test" in list_strategies()
    assert isinstance(get_strategy("mine_for_test"), Mine)

    class Other(BaseStrategy):
        name = "mine_for_test"

    with pytest.raises(StrategyError, match="is taken by"):
        register_strategy(Other)

    class Nameless(BaseStrategy):
        pass

    with pytest.raises(StrategyError, match="has no name"):
        register_strategy(Nameless)
    with pytest.raises(StrategyError, match="not a BaseStrategy subclass"):
        register_strategy(int)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_has_a_config_with_its_defaults(name):
    s = load_strategy_config(CONFIG / f"{name}.json")
    assert s.name == name
    assert s == get_strategy(name)


def test_config_errors(tmp_path):
    p = tmp_path / "s.json"
    with pytest.raises(ConfigError, match="does not exist"):
        load_strategy_config(p)
    p.write_text("{nope")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_strategy_config(p)
    p.write_text(json.dumps({"strategy": "sma_cross", "params": {}}))
    with pytest.raises(ConfigError, match="unknown key 'params'; did you mean 'parameters'"):
        load_strategy_config(p)
    p.write_text(json.dumps({"parameters": {}}))
    with pytest.raises(ConfigError, match="'strategy' must name a strategy"):
        load_strategy_config(p)
    p.write_text(json.dumps({"strategy": "sma_cross", "parameters": {"fast": 50}}))
    with pytest.raises(StrategyError, match="must be less than 'slow'"):
        load_strategy_config(p)
