"""Find strategies by name: the registry, dotted paths and JSON configs."""

from __future__ import annotations

import difflib
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.strategies.base import BaseStrategy

__all__ = ["register_strategy", "get_strategy", "list_strategies", "load_strategy_config"]

_REGISTRY: dict[str, type[BaseStrategy]] = {}
_CONFIG_KEYS = ("strategy", "parameters", "description")


def register_strategy(cls: type[BaseStrategy]) -> type[BaseStrategy]:
    """Register a strategy class under its ``name`` (usable as a class decorator).

    Raises
    ------
    StrategyError
        ``cls`` is not a :class:`BaseStrategy` subclass, has no ``name``, or the
        name is taken by another class.

    Examples
    --------
    >>> from tcp_lab.strategies import BaseStrategy, register_strategy
    >>> @register_strategy                  # doctest: +SKIP
    ... class Hold(BaseStrategy):
    ...     name = "hold"
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseStrategy)):
        raise StrategyError(f"register_strategy: {cls!r} is not a BaseStrategy subclass")
    if not cls.name or not isinstance(cls.name, str):
        raise StrategyError(
            f"register_strategy: {cls.__qualname__} has no name",
            hint='set a class attribute, e.g. name = "my_strategy"',
        )
    old = _REGISTRY.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise StrategyError(
            f"register_strategy: name {cls.name!r} is taken by "
            f"{old.__module__}.{old.__qualname__}",
            hint="choose another name",
        )
    _REGISTRY[cls.name] = cls
    return cls


def list_strategies() -> list[str]:
    """Names of the registered strategies, sorted.

    Examples
    --------
    >>> "sma_cross" in list_strategies()
    True
    """
    return sorted(_REGISTRY)


def _import_path(path: str) -> type[BaseStrategy]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise StrategyError(
            f"strategy path {path!r} is not of the form 'package.module:Class'",
            hint="e.g. 'my_strategies.trend:TrendFollower'",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise StrategyError(
            f"strategy path {path!r}: cannot import module {module_name!r} ({e})",
            hint="is the package installed or on sys.path?",
        ) from e
    try:
        cls = getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        guess = difflib.get_close_matches(attr, names, n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise StrategyError(
            f"strategy path {path!r}: module {module_name!r} has no attribute {attr!r}{dym}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, BaseStrategy)):
        raise StrategyError(
            f"strategy path {path!r} names {type(cls).__name__} {attr!r}, "
            "expected a BaseStrategy subclass"
        )
    return cls


def get_strategy(
    name: str | type[BaseStrategy], parameters: Mapping[str, Any] | None = None
) -> BaseStrategy:
    """Build a strategy from a registry name, a dotted path or a class.

    Parameters
    ----------
    name
        A registered name (``"sma_cross"``), a dotted path
        (``"pkg.mod:Class"`` or ``"pkg.mod.Class"``) or a strategy class.
    parameters
        Parameter values; missing ones take their defaults.

    Raises
    ------
    StrategyError
        Unknown name (with a did-you-mean), an unimportable path, or invalid
        parameters.

    Examples
    --------
    >>> get_strategy("sma_cross", {"fast": 5, "slow": 20})
    SmaCross(fast=5, slow=20)
    """
    if isinstance(name, type) and issubclass(name, BaseStrategy):
        cls = name
    elif not isinstance(name, str):
        raise StrategyError(f"strategy must be a name or a class, got {type(name).__name__}")
    elif name in _REGISTRY:
        cls = _REGISTRY[name]
    elif ":" in name or "." in name:
        cls = _import_path(name)
    else:
        guess = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise StrategyError(
            f"unknown strategy {name!r}{dym}",
            hint="known: " + ", ".join(list_strategies()) + " (or a dotted path 'pkg.mod:Class')",
        )
    return cls(parameters)


def load_strategy_config(path: str | Path) -> BaseStrategy:
    """Build the strategy a JSON config file describes.

    The file holds ``{"strategy": "sma_cross", "parameters": {...}}`` and
    optionally ``"description"``; other keys are rejected.

    Raises
    ------
    ConfigError
        The file is missing, is not valid JSON, or has unknown/missing keys.
    StrategyError
        Unknown strategy or invalid parameters.

    Examples
    --------
    >>> load_strategy_config("config/strategies/sma_cross.json")  # doctest: +SKIP
    SmaCross(fast=10, slow=30)
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"strategy config {p} does not exist") from None
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"strategy config {p}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"strategy config {p}: expected a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in _CONFIG_KEYS:
            guess = difflib.get_close_matches(key, _CONFIG_KEYS, n=1)
            dym = f"; did you mean {guess[0]!r}?" if guess else ""
            raise ConfigError(
                f"strategy config {p}: unknown key {key!r}{dym}",
                hint="keys: " + ", ".join(_CONFIG_KEYS),
            )
    if not isinstance(data.get("strategy"), str):
        raise ConfigError(
            f"strategy config {p}: 'strategy' must name a strategy",
            hint='e.g. {"strategy": "sma_cross", "parameters": {"fast": 10, "slow": 30}}',
        )
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"strategy config {p}: 'parameters' must be a JSON object")
    return get_strategy(data["strategy"], params)
