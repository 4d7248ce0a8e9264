"""Shared CLI helpers: read a candle file, parse ``--parameters``, build a strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tcp_lab.errors import ConfigError


def read_candles_file(path: str | Path) -> pd.DataFrame:
    """Candles from a ``.parquet`` or ``.csv`` file with a ``ts`` column or index.

    Times must carry a time zone (``2024-01-01T00:01:00Z``); they are
    validated by the caller.

    Raises
    ------
    DataError
        Missing file, unknown extension or unreadable content.
    """
    from tcp_lab.data.providers.replay import read_table

    return read_table(path, what="candle file")


def parse_parameters(text: str | None) -> dict[str, Any] | None:
    """The ``--parameters`` JSON object, or None.

    Raises
    ------
    ConfigError
        Not valid JSON or not an object.
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"--parameters is not valid JSON ({e.msg} at column {e.colno})",
            hint='e.g. --parameters \'{"fast": 10, "slow": 30}\'',
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"--parameters must be a JSON object, got {type(value).__name__}")
    return value


def build_strategy(name: str, parameters: str | None):
    """A strategy from a registry name, a dotted path or a ``.json`` config file."""
    from tcp_lab.strategies import get_strategy, load_strategy_config

    params = parse_parameters(parameters)
    if name.endswith(".json"):
        strategy = load_strategy_config(name)
        if params:
            strategy = type(strategy)({**strategy.params, **params})
        return strategy
    return get_strategy(name, params)
